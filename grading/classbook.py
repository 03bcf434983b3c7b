"""The class's code gradebook: what an instructor takes away from grading the code a class hands in.

    student = Student("PA1_2024123_Ada_Lovelace", code=grade_code(...), weights=[rows of grades.csv])
    student.id, student.name                          # "2024123", "Ada Lovelace"
    modules_text(students, rubric)                    # modules.csv: one row per student and module part
    scores_text(students, rubric)                     # scores.csv: one row per student
    feedback_html(student, rubric, sandboxed=True)    # feedback/<student_id>.html
    gradescope(student, rubric)                       # gradescope/<student_id>/results.json
    summary_markdown(students, rubric, command)       # summary.md: totals, the pass rate of every part

Pure functions over the graded results; grading/gradebook.py writes them as one set with the weights' files.
"""

import dataclasses
import datetime
import html
import re

import numpy as np

from grading import csvfile
from grading.sandbox import summary

MODULE_COLUMNS = ("student_id", "module", "part", "verdict", "points", "max_points", "detail")
SCORE_COLUMNS = ("student_id", "name", "code_points", "max_points", "total", "status", "note", "seconds",
                 "test_acc", "weights_file")
FOLDER = re.compile(r"^PA1_([^_]+)_(.+)$", re.I)
NO_SANDBOX = "graded WITHOUT the sandbox (--no-sandbox): the student's code ran as the grader's user"


@dataclasses.dataclass
class Student:
    folder: str                     # the submission's folder name
    code: object = None             # grading.code_grade.StudentCode, or None (no code graded)
    weights: list = dataclasses.field(default_factory=list)   # the student's rows of grades.csv
    error: str = ""                 # why the code could not be graded at all

    @property
    def id(self):
        match = FOLDER.match(self.folder)
        return match.group(1) if match else self.folder

    @property
    def name(self):
        match = FOLDER.match(self.folder)
        return match.group(2).replace("_", " ") if match else ""

    @property
    def points(self):
        return self.code.points if self.code is not None else 0.0

    def best_weights(self):
        graded = [r for r in self.weights if r.get("test_acc") is not None and r["status"] in ("graded", "flagged")]
        return max(graded, key=lambda r: (r["test_acc"], r["status"] == "graded"), default=None)


def fmt(points):
    return f"{points:g}"


def status(student):
    if student.error:
        return "error"
    if student.code is None or not student.code.files:
        return "no code"
    return "graded"


def modules_text(students, rubric):
    lines = []
    for student in students:
        for row in (student.code.rows if student.code is not None else []):
            max_points = rubric.points.get(row.part, 0.0)
            lines.append({"student_id": student.id, "module": row.part.partition(".")[0], "part": row.part,
                          "verdict": row.verdict, "points": fmt(max_points if row.verdict == "pass" else 0),
                          "max_points": fmt(max_points), "detail": row.detail})
    return csvfile.csv_text(MODULE_COLUMNS, lines)


def note(student):
    """What the instructor should know of a student's row, in one line."""
    parts = [student.error] if student.error else []
    code = student.code
    if code is not None:
        counts = {}
        for row in code.rows:
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
        parts.append(", ".join(f"{n} {v}" for v, n in counts.items()))
        if any(row.verdict == "banned" for row in code.rows):
            parts.append("framework imports in the NumPy part: " + "; ".join(ban_lines(code))[:300])
        if not code.sandboxed:
            parts.append(NO_SANDBOX)
    flagged = [r for r in student.weights if r["status"] == "flagged"]
    parts += [f"weights {r['file']}: {'; '.join(r['notes'])}" for r in flagged]
    return "; ".join(p for p in parts if p)


def scores_text(students, rubric):
    lines = []
    for student in students:
        best = student.best_weights()
        lines.append({"student_id": student.id, "name": student.name, "code_points": fmt(student.points),
                      "max_points": fmt(rubric.max_points), "total": fmt(student.points), "status": status(student),
                      "note": note(student),
                      "seconds": f"{student.code.seconds:.1f}" if student.code is not None else "",
                      "test_acc": f"{best['test_acc']:.2f}" if best else "",
                      "weights_file": best["file"] if best else ""})
    return csvfile.csv_text(SCORE_COLUMNS, lines)


# --- feedback -------------------------------------------------------------------------------------------------

STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;
text-align:left}th{background:#f3f3f3}.pass{color:#176317;font-weight:600}.fail,.banned,.error,.timeout{color:#a3171b;
font-weight:600}.missing{color:#8a5a00;font-weight:600}code{font-size:90%}.warn{background:#fff2d6;padding:.5rem}"""


def feedback_html(student, rubric):
    e = html.escape
    code = student.code
    title = f"PA1 code feedback: {student.id}" + (f" ({student.name})" if student.name else "")
    out = [f"<!doctype html><html lang=en><meta charset=utf-8><title>{e(title)}</title><style>{STYLE}</style>",
           f"<h1>{e(title)}</h1>",
           f"<p><b>{fmt(student.points)} of {fmt(rubric.max_points)} points</b> for the code "
           f"({e(status(student))}).</p>"]
    if student.error:
        out.append(f"<p class=warn>{e(student.error)}</p>")
    if code is not None and not code.sandboxed:
        out.append(f"<p class=warn>{e(NO_SANDBOX)}.</p>")
    if code is not None and code.rows:
        out += ["<h2>What was tested</h2><p>Each part of each module was called on inputs drawn from the class's "
                "secret seed and compared with the grader's float64 NumPy reference (relative error "
                "max |a − b| / max(1e-8, |a| + |b|)). Backward must give the true vector-Jacobian product of that "
                "part's own forward. Only <code>pass</code> earns the part's points.</p>",
                "<table><tr><th>part</th><th>verdict</th><th>points</th><th>your result beside the tolerance</th>"
                "</tr>"]
        for row in code.rows:
            got = fmt(rubric.points.get(row.part, 0) if row.verdict == "pass" else 0)
            out.append(f"<tr><td><code>{e(row.part)}</code></td><td class={e(row.verdict)}>{e(row.verdict)}</td>"
                       f"<td>{got} / {fmt(rubric.points.get(row.part, 0))}</td><td>{e(row.detail)}</td></tr>")
        out.append("</table>")
        found = list(dict.fromkeys(row.found for row in code.rows if row.found))
        out += ["<h2>What was found where</h2><ul>"] + [f"<li>{e(f)}</li>" for f in found] + ["</ul>"]
        out += ["<h2>What the sandbox saw</h2>", sandbox_record(code)]
    elif code is not None:
        out.append("<p>No <code>.py</code> file was handed in.</p>")
    if student.weights:
        out += ["<h2>Weights handed in</h2><table><tr><th>file</th><th>model</th><th>test accuracy</th><th>status"
                "</th><th>note</th></tr>"]
        for r in student.weights:
            acc = "" if r.get("test_acc") is None else f"{r['test_acc']:.2f}%"
            out.append(f"<tr><td>{e(r['file'])}</td><td>{e(str(r.get('model') or ''))}</td><td>{acc}</td>"
                       f"<td>{e(r['status'])}</td><td>{e('; '.join(r['notes']))}</td></tr>")
        out.append("</table>")
    out.append(f"<p><small>Graded {datetime.date.today().isoformat()} by the kit's grade.py.</small></p></html>")
    return "\n".join(out) + "\n"


def sandbox_record(code):
    """The audit record as a list: files read, imports stood in for, top-level statements not run, refusals."""
    e, audit = html.escape, code.audit or {}
    items = [f"files: {', '.join(code.files)}"]
    if audit.get("standins"):
        items.append("imports the sandbox lacks, given an inert stand-in: " + ", ".join(audit["standins"]))
    if audit.get("dropped"):
        items.append(f"top-level statements not run (only imports, definitions and simple assignments are loaded): "
                     f"{len(audit['dropped'])}, e.g. " + ", ".join(audit["dropped"][:5]))
    if audit.get("load_errors"):
        items.append("files that did not load: " + "; ".join(audit["load_errors"]))
    if audit.get("actions"):
        items.append("attempted, and refused or contained by the sandbox (no network, no other files, a process "
                     "limit): " + "; ".join(audit["actions"][:20]))
    if code.bans:
        items.append("files that import a deep-learning framework (a NumPy module found in one of them is banned; "
                     "a framework script of its own is allowed): " + "; ".join(ban_lines(code)))
    return "<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"


def ban_lines(code):
    """"nn.py:3 imports torch", once per line of the student's files."""
    return list(dict.fromkeys(line for file_lines in code.bans.values() for line in file_lines))


def gradescope(student, rubric):
    """Gradescope's results.json: one test per module part (its points, its verdict and detail as output)."""
    tests = []
    for row in (student.code.rows if student.code is not None else []):
        max_points = rubric.points.get(row.part, 0.0)
        tests.append({"name": row.part, "score": max_points if row.verdict == "pass" else 0.0,
                      "max_score": max_points, "output": f"{row.verdict}: {row.detail}"})
    best = student.best_weights()
    if student.weights:
        tests.append({"name": "weights (test accuracy, no points)", "score": 0.0, "max_score": 0.0,
                      "output": f"{best['file']}: {best['test_acc']:.2f}% on the MNIST test set" if best else
                      "no handed-in weights file could be evaluated"})
    output = f"{fmt(student.points)} of {fmt(rubric.max_points)} points for the code."
    if student.code is not None and not student.code.sandboxed:
        output += f" {NO_SANDBOX}."
    return {"score": student.points, "max_score": rubric.max_points, "output": output, "tests": tests}


# --- summary --------------------------------------------------------------------------------------------------

def histogram_lines(totals, maximum, bins=10):
    """A text histogram of the totals in ``bins`` equal bins of [0, maximum]."""
    if not totals or maximum <= 0:
        return ["(no totals)"]
    counts = np.histogram(np.clip(totals, 0, maximum), bins=bins, range=(0, maximum))[0]
    width = maximum / bins
    return ["```"] + [f"{i * width:5.1f}–{(i + 1) * width:5.1f} | {'#' * n} {n}" for i, n in enumerate(counts)] + \
        ["```"]


def pass_rates(students, rubric):
    """[(part, points, passed, tested, {verdict: n})], hardest first (lowest pass rate, then most points)."""
    rates = []
    for part, points in rubric.points.items():
        verdicts = [row.verdict for s in students if s.code is not None and s.code.files for row in s.code.rows
                    if row.part == part]
        tally = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
        rates.append((part, points, tally.get("pass", 0), len(verdicts), tally))
    return sorted(rates, key=lambda r: (r[1] == 0, r[2] / r[3] if r[3] else 1, -r[1], r[0]))


def summary_markdown(students, rubric, command, sandboxed, seconds):
    graded = [s for s in students if s.code is not None and s.code.files]
    totals = [s.points for s in graded]
    lines = [f"# Code grades of {len(students)} student{'s' if len(students) != 1 else ''}", ""]
    if not sandboxed:
        lines += [f"**Warning: {NO_SANDBOX}.**", ""]
    lines += [f"Written by `{command}` on {datetime.date.today().isoformat()} in {seconds:.0f} s; rubric "
              f"`{rubric.path}` ({fmt(rubric.max_points)} points), hidden inputs from the class's seed in "
              f"`{rubric.secret_path}`. One row per student in `scores.csv`, one per part in `modules.csv`, "
              f"each student's feedback in `feedback/`.", ""]
    if totals:
        lines += [f"{len(graded)} with code: mean {np.mean(totals):.1f}, median {np.median(totals):.1f}, "
                  f"min {min(totals):g}, max {max(totals):g} of {fmt(rubric.max_points)}.", ""]
    lines += ["## Totals", ""] + histogram_lines(totals, rubric.max_points)
    lines += ["", "## Pass rate per module part (hardest first; parts worth no points last)", "",
              "| part | points | passed | rate | other verdicts |", "|---|---|---|---|---|"]
    for part, points, passed, tested, tally in pass_rates(students, rubric):
        others = ", ".join(f"{n} {v}" for v, n in tally.items() if v != "pass")
        rate = f"{passed / tested:.0%}" if tested else "—"
        lines.append(f"| `{part}` | {fmt(points)} | {passed}/{tested} | {rate} | {others} |")
    look = [s for s in students if status(s) != "graded" or any(
        r.verdict in ("error", "timeout", "banned") for r in s.code.rows)]
    lines += ["", "## To look at", ""]
    if look:
        lines += ["| student | status | note |", "|---|---|---|"]
        lines += [f"| {md(s.id)} | {status(s)} | {md(note(s))} |" for s in look]
    else:
        lines.append("Nothing: every student's code ran without an error, a timeout or a banned import.")
    audits = [summary(s.code.audit) for s in graded if s.code.audit]
    if any(audits):
        lines += ["", f"The sandbox recorded stand-ins or refusals for {sum(bool(a) for a in audits)} students "
                      "(each feedback file lists them)."]
    return "\n".join(lines) + "\n"


def md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")
