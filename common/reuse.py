"""Whether a run already on disk can stand for the run reproduce.py is about to make: the same configuration,
seed and code. Pure decisions over metrics.json records; reproduce.py runs the processes.

    from common.reuse import code_digest, decide, verify
    digest = code_digest(ROOT / "cnn_numpy.py")       # 'sha256:…' of the kit's code that script runs + versions
    decision = decide(record, wanted, digest)          # Decision("reuse" | "verify" | "train", why)
    decision = verify(record, first_epoch, digest)     # first_epoch(): the run's first epoch again, fresh record

Code identity: common/run.py records ``code``, the digest of the script and every module of the kit it
imports, directly or not (nn_numpy.py, common/*.py, fast_cnn/*.py, ...; third-party packages only by their
version: numpy always, torch where imported). The source is normalised first (ast.parse, docstrings dropped,
ast.dump), so comments, docstrings and layout do not count; a change of code does, and so does a refactor that
keeps every number (which the first-epoch check then accepts).

A record without ``code`` (older than this), or with another digest, is checked by its numbers: the first epoch
is trained again with the same flags and compared bit for bit (FIRST_EPOCH); if identical, the run is reused
and its record gains the digest in ``code_verified``, so the next call trusts it without checking.
"""

import ast
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The hyperparameter and data flags a record's config must match (descriptive strings such as architecture or
# split_batches may be reworded and are not compared). A key the script has no flag for is not compared.
COMPARED = ("epochs", "lr", "batch_size", "seed", "limit_train", "dtype", "device", "optimizer", "momentum",
            "init", "shuffle", "permute_pixels", "eval_train", "layers")
ABSENT = {"layers": "fast", "shuffle": "epoch"}  # what a record made before the flag existed ran with
# Per-epoch fields that do not depend on the run's total epoch count: the whole training set is evaluated
# after the last epoch only (--eval-train last), which a 1-epoch run does after epoch 1 and a longer run does
# not; that adds train_loss/train_acc to the entry but changes none of these.
FIRST_EPOCH = ("test_loss", "test_acc", "train_loss_running", "order_digest")
VERSIONED = ("numpy", "torch")  # third-party packages whose version is part of the digest, where imported
REUSE, VERIFY, TRAIN = "reuse", "verify", "train"


@dataclass(frozen=True)
class Decision:
    action: str   # REUSE, VERIFY (check the first epoch), TRAIN
    why: str


# --- code identity -------------------------------------------------------------------------------------------

def normalised(source):
    """ast.dump of ``source`` without its docstrings (and without line numbers): what the code does."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def module_file(name, root):
    """The kit's file for module ``name`` (a package's __init__.py), or None if it is not the kit's."""
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(tree, path, root):
    """Every module an import statement in ``tree`` (anywhere: lazy imports count) may load, as dotted names."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1] if package else []
                base = ".".join([*parent, base] if base else parent)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import module`
    return [n for n in names if n]


def kit_modules(script, root=ROOT):
    """(the kit's files ``script`` runs, sorted; the top-level names of the other packages it imports)."""
    root = Path(root).resolve()
    seen, others, todo = set(), set(), [Path(script).resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(ast.parse(path.read_text()), path, root):
            parts = name.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            found = [module_file(".".join(parts[:i]), root) for i in range(1, len(parts) + 1)]
            todo += [f for f in found if f is not None]
            if found[0] is None:
                others.add(parts[0])
    return sorted(seen), others


def code_digest(script, root=ROOT):
    """'sha256:<hex>' over the normalised source of the kit's modules ``script`` runs (with their paths) and the
    versions of numpy and, where imported, torch."""
    root = Path(root).resolve()
    files, others = kit_modules(script, root)
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(root).as_posix()}\0{normalised(path.read_text())}\0".encode())
    for package in VERSIONED:
        if package in others or package == "numpy":
            h.update(f"{package}=={version(package)}\0".encode())
    return "sha256:" + h.hexdigest()


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


# --- the decision ------------------------------------------------------------------------------------------

def config_changes(recorded, wanted):
    """['lr 0.1 -> 0.01', ...] for the COMPARED keys of ``wanted`` (the config this call would run) that the
    record's config does not match; a key missing from the record counts as ABSENT says."""
    changes = []
    for key in COMPARED:
        if key in wanted and recorded.get(key, ABSENT.get(key)) != wanted[key]:
            changes.append(f"{key} {recorded.get(key, ABSENT.get(key))!r} -> {wanted[key]!r}")
    return changes


def machine_id():
    """A short fingerprint of this machine's arithmetic: CPU model, architecture, host and NumPy's BLAS. Another
    CPU (or BLAS) may round differently, so a run is trusted without a check only on the machine that made or
    checked it."""
    import platform

    import numpy as np

    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):  # NumPy before 1.26 prints its configuration only
        blas = {}
    text = "|".join([platform.machine(), platform.node(), cpu or platform.processor(), str(blas.get("name")),
                     str(blas.get("version"))])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def decide(record, wanted, digest, machine=None):
    """What to do about the run a record (None: no record on disk) stands for, given the config this call would
    run and the code's digest now. ``machine`` (machine_id()): a run is then reused unchecked only when it was
    trained, or its first epoch checked, on this machine with this code; None: the machine is not asked."""
    if record is None:
        return Decision(TRAIN, "no run on disk")
    if record.get("interrupted") or not record.get("history") or not record.get("final"):
        return Decision(TRAIN, "the run on disk did not finish")
    changes = config_changes(record.get("config", {}), wanted)
    if changes:
        return Decision(TRAIN, "its configuration differs: " + ", ".join(changes))
    if machine is not None:
        if record.get("code") == digest and record.get("machine") == machine:
            return Decision(REUSE, "same configuration, seed, code and machine")
        if f"{digest}@{machine}" in record.get("code_verified", []):
            return Decision(REUSE, "same configuration and seed; its first epoch matched this code on this "
                                   "machine before")
        if record.get("code") == digest:
            return Decision(VERIFY, "same code, but trained on another machine (or before machines were "
                                    "recorded): another CPU may round differently")
    elif record.get("code") == digest:
        return Decision(REUSE, "same configuration, seed and code")
    elif digest in record.get("code_verified", []):
        return Decision(REUSE, "same configuration and seed; its first epoch matched this code before")
    if record.get("code") is None:  # no field, or an evaluation of a checkpoint saved before digests
        return Decision(VERIFY, "recorded before code digests")
    return Decision(VERIFY, "the code changed since")


def first_epoch_differences(recorded, fresh):
    """The FIRST_EPOCH fields in which two records' first epochs differ (exact comparison, as JSON gives them)."""
    a, b = recorded["history"][0], fresh["history"][0]
    return [key for key in FIRST_EPOCH if key not in a or a.get(key) != b.get(key)]


def verify(record, first_epoch, digest):
    """Decide a VERIFY: ``first_epoch()`` trains the first epoch again with the run's flags and returns its
    record (None if it failed). Identical -> REUSE (mark the record with mark_verified), else TRAIN."""
    fresh = first_epoch()
    if fresh is None:
        return Decision(TRAIN, "the first-epoch check did not run")
    differs = first_epoch_differences(record, fresh)
    if differs:
        return Decision(TRAIN, "its first epoch differs under this code (" + ", ".join(differs) + ")")
    return Decision(REUSE, "its first epoch matched bit for bit")


def mark_verified(record, digest):
    """The record with ``digest`` (for reproduce.py: "digest@machine") added to code_verified (a copy; nothing
    else changes)."""
    verified = [d for d in record.get("code_verified", []) if d != digest]
    return {**record, "code_verified": [*verified, digest]}
