"""One student's code graded: every module part run in the sandbox on the class's secret inputs, judged here.

    calls = probe_calls(rubric.seed, (train_images, train_labels))      # grading/code_checks.py, once per class
    graded = grade_code("class/PA1_2024_alice", calls, rubric, student_id="2024")
    graded.rows          # [Row] one per rubric part: pass, fail, missing, banned, error or timeout
    graded.points, graded.seconds, graded.audit     # what was imported, stood in for, dropped, refused

The sandbox (grading/sandbox.py) runs grading/inside/ beside the one student's files and sends back raw arrays;
grading/code_checks.py judges them here, in the grader's own process. The framework ban is checked twice: the
imports written in each file (static_bans) and those the runner's audit hook saw at run time; a part found in a
file that imports a banned framework is "banned", naming the line.
"""

import ast
import dataclasses
import os
import re
import time
from pathlib import Path

import numpy as np

from grading.code_checks import Row, judge
from grading.sandbox import Limits, run_student, summary

INSIDE = Path(__file__).resolve().parent / "inside"
MODULES = ("linear", "relu", "softmax", "loss", "sgd", "conv", "pool")
SHARED_SIZE = 100_000      # arrays this large that several parts share are sent once per sandbox
MAX_SOURCE = 2 << 20       # bytes of a .py file read for its imports


@dataclasses.dataclass
class StudentCode:
    rows: list                          # [Row], in the rubric's order
    points: float
    seconds: float
    audit: dict                         # the runner's record (imports, stand-ins, dropped, load_errors, actions)
    bans: dict                          # file -> ["nn.py:3 imports torch", ...] (static and run time)
    sandboxed: bool
    files: list                         # the .py files looked at


def python_files(folder):
    """The student's .py files, relative posix paths, as the sandbox copies them (no hidden folders, no links)."""
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__"
                         and not os.path.islink(os.path.join(parent, d)))
        for name in sorted(names):
            path = Path(parent, name)
            if name.endswith(".py") and not path.is_symlink() and path.is_file():
                found.append(path.relative_to(folder).as_posix())
    return found


def static_bans(folder, files, banned):
    """{file: ["file:line imports torch", ...]} of the imports of ``banned`` frameworks written in the files."""
    bans = {}
    for rel in files:
        path = Path(folder, rel)
        try:
            if path.stat().st_size > MAX_SOURCE:
                continue
            tree = ast.parse(path.read_bytes(), filename=rel)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                if name.partition(".")[0] in banned:
                    bans.setdefault(rel, []).append(f"{rel}:{node.lineno} imports {name.partition('.')[0]}")
    return bans


def runtime_bans(audit, banned):
    """The same from the audit hook's record ("torch (nn.py:3)"): imports made while the files loaded or ran."""
    bans = {}
    for entry in audit.get("banned", []):
        module, _, where = str(entry).partition(" (")
        rel, _, line = where.rstrip(")").rpartition(":")
        if module in banned and rel:
            bans.setdefault(rel, []).append(f"{rel}:{line} imports {module} (at run time)")
    return bans


def files_in(found):
    """The student's files a probe's description names ("linear: src/layers.py:Dense(in=7, out=5), ...")."""
    return set(re.findall(r"([\w./-]+\.py):", found or ""))


def sandbox_parts(calls, overrides):
    """(the parts to run, the inputs they share): big arrays that several calls hold under one name go once."""
    holders = {}
    for call in calls:
        for key, value in call.inputs.items():
            holders.setdefault(key, []).append(value)
    shared = {key: values[0] for key, values in holders.items()
              if len(values) > 1 and values[0].size >= SHARED_SIZE and all(v is values[0] for v in values)}
    parts = []
    for call in calls:
        args = dict(call.args)
        if call.module in MODULES and overrides.get(call.module):
            args["override"] = overrides[call.module]
        elif call.module not in MODULES and overrides:
            args["overrides"] = dict(overrides)
        parts.append({"part": call.name, "probe": call.probe, "args": args,
                      "inputs": {k: v for k, v in call.inputs.items() if k not in shared}})
    return parts, shared


def unfinished(call, result):
    """The rows of a call that did not finish: missing (discovery could not settle it, or a part still raises
    NotImplementedError, as the handout's blanks do), timeout, or error."""
    note = result.note or result.status
    if note.startswith("Missing: "):
        verdict, note = "missing", re.sub(r" \((probes|finding|networks)\.py:\d+\)$", "", note[len("Missing: "):])
    elif note.startswith("NotImplementedError"):   # the handout's blank body (python -m grading.handout)
        verdict, note = "missing", f"not written yet ({note})"
    else:
        verdict = "timeout" if result.status == "timeout" else "error"
    return [Row(part, verdict, None, note) for part in call.parts]


def settle_conventions(rows, allow):
    """A fused softmax takes the loss's verdict; a convention grading.toml allows passes where the whole
    network's gradient check does."""
    by_part = {row.part: row for row in rows}
    soft, loss, check = by_part.get("softmax.backward"), by_part.get("loss.backward"), by_part.get("mlp.gradient_check")
    if soft is not None and soft.verdict == "fused":
        soft.verdict = loss.verdict if loss is not None else "missing"
        soft.error = loss.error if loss is not None else None
        soft.detail += f" ({soft.verdict} there)"
    for row in rows:
        convention = row.extra.get("convention")
        if row.verdict == "fail" and convention:
            if convention in allow and check is not None and check.verdict == "pass":
                row.verdict = "pass"
                row.detail += f"; accepted: grading.toml allows {convention!r} and the whole network's gradient " \
                              "check passes"
            else:
                row.detail += f" (a convention, not necessarily a bug: see mlp.gradient_check; grading.toml can " \
                              f"allow {convention!r})"


def apply_bans(rows, bans):
    for row in rows:
        hit = sorted({line for file in files_in(row.found) for line in bans.get(file, [])})
        if hit:
            row.verdict, row.error = "banned", None
            row.detail = f"{'; '.join(hit[:3])}: the NumPy part may not use a deep-learning framework " \
                         f"(found: {row.found or 'the part'})"


def grade_code(folder, calls, rubric, student_id="", sandbox=True, limits=None):
    """StudentCode of one student's folder: ``calls`` (probe_calls of the class's seed) run in one sandbox (more
    after a crash or a timeout), judged with ``rubric``; a per-student override in the rubric points the search."""
    started = time.monotonic()
    files = python_files(folder)
    limits = limits or Limits(**{k: v for k, v in rubric.limits.items() if k in Limits.__dataclass_fields__})
    overrides = {k: str(v) for k, v in rubric.students.get(str(student_id), {}).items()}
    banned = set(rubric.banned)
    if not files:
        rows = [Row(part, "missing", None, "no .py file in the submission") for call in calls for part in call.parts]
        return StudentCode(order(rows, rubric), 0.0, 0.0, {}, {}, sandbox, files)
    parts, shared = sandbox_parts(calls, overrides)
    results = run_student(folder, parts, shared, probe_dir=str(INSIDE), limits=limits, sandbox=sandbox)
    config = rubric.judge_config()
    rows, audit = [], {}
    for call, result in zip(calls, results):
        audit = result.audit or audit
        if result.status != "done":
            rows += unfinished(call, result)
            continue
        try:
            rows += judge(call, result.arrays, str(result.meta.get("found", "")), config)
        except (KeyError, ValueError, TypeError, IndexError) as error:  # arrays of the wrong kind or shape
            rows += [Row(part, "fail", None, f"its result could not be judged: {type(error).__name__}: {error}",
                         str(result.meta.get("found", ""))) for part in call.parts]
    settle_conventions(rows, set(rubric.allow))
    bans = static_bans(folder, files, banned)
    for file, lines in runtime_bans(audit, banned).items():  # a line the file's text already shows, once
        written = {line.rpartition(" imports ")[0] for line in bans.get(file, [])}
        bans.setdefault(file, []).extend(line for line in lines if line.rpartition(" imports ")[0] not in written)
    apply_bans(rows, bans)
    rows = order(rows, rubric)
    points = sum(rubric.points.get(row.part, 0.0) for row in rows if row.verdict == "pass")
    return StudentCode(rows, points, time.monotonic() - started, audit, bans, sandbox, files)


def order(rows, rubric):
    """The rows in the rubric's order, one per part (a part with no row is missing)."""
    by_part = {row.part: row for row in rows}
    return [by_part.get(part) or Row(part, "missing", None, "not tested") for part in rubric.points]


def audit_line(graded):
    """One line of what the sandbox saw: stand-ins, banned imports, refused actions, files that did not load."""
    return summary(graded.audit)


def mnist_slice(images, labels):
    """(N, 784) float64 in [0, 1] and int labels, as probe_calls takes the training set."""
    return np.asarray(images, dtype=np.float64).reshape(len(images), -1), np.asarray(labels)
