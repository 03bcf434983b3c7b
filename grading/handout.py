"""The student's starter folder for PA1, made from the kit's own solution and the grader's grading.toml.

    python -m grading.handout --out handout/                  # or: make handout
    python -m grading.handout --out pa1/ --config pa1.toml    # your rubric: its points and parts, and the grader's

Writes, into OUT:
- nn_numpy.py and cnn_numpy.py, the body of every part grading.toml's [handout] lists replaced by a `raise
  NotImplementedError` naming it; every signature, docstring and equation, the training loop and main() kept.
  The parts are found in the code's own structure (its syntax tree), so the kit's files carry no markers.
  cnn_numpy.py trains with its own layers (the kit's fast path, a solution itself, is left out).
- common/: the data loading, figures and run harness, given whole (no framework anywhere in it);
- check.py and check_data.json: the public checks (grading/handout_check.py) and a correct solution's answers
  to them, numbers only;
- README.md: the tasks per module with their equations and points, what to hand in, the report's figures, the
  late schedule — all read from the same grading.toml the grader reads, so the two cannot disagree.

An OUT that holds anything but an earlier handout is refused; a new handout replaces an old one as a whole.
"""

import argparse
import ast
import json
import shutil
import sys
import tempfile
from pathlib import Path

from common.errors import UsageError
from grading.rubric import DEFAULT, FIGURES, MODELS, read_toml

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
MARK = ".pa1-handout"
FILES = ("nn_numpy.py", "cnn_numpy.py")
NOT_HANDED_OUT = ("harness_torch.py",)   # common/ files only the PyTorch scripts use
POINT_PREFIXES = {"softmax": ("softmax.", "loss.")}   # a module's parts in [points], where not "<module>."
FAST_LAYERS = '''    p.add_argument("--layers", choices=["textbook", "fast"], default="fast",
                   help="textbook: the Conv2d and MaxPool2d of this file, whole batches in one process; fast: "
                        "fast_cnn/, the same network laid out for speed, each batch as two halves (default: "
                        "%(default)s)")
'''
FAST_PATH_DOC = """Two paths compute the same network. --layers textbook trains with the classes of this file through
nn_numpy.train_epoch. --layers fast (the default, so the report's run takes seconds, not minutes) uses
fast_cnn/: the same layers laid out for the CPU's caches, each batch as two halves in two processes. The two
start from the same weights and see the same batches; tests/test_fast_layers.py proves that they compute the
same values and gradients (up to rounding).
"""
TEXTBOOK_DOC = """It trains with the classes of this file through nn_numpy.train_epoch, one batch at a time (the
report's five epochs take several minutes on a laptop: try --epochs 1 --limit-train 2000 first).
"""
TEXTBOOK_ONLY = '''    p.add_argument("--layers", choices=["textbook"], default="textbook",
                   help="the Conv2d and MaxPool2d of this file (the kit's fast path is not part of the handout)")
'''


def read_rubric(config):
    """grading.toml's tables, an instructor's file over the kit's defaults (no seed drawn: nothing is graded)."""
    default = read_toml(DEFAULT, "the kit's rubric")
    data = read_toml(config, "--config") if Path(config).resolve() != DEFAULT.resolve() else default
    return {section: {**default.get(section, {}), **data.get(section, {})}
            for section in ("points", "late", "report", "handout", "ban", "integration")}


def parts_of(rubric):
    """{file: [qualname]} and {module: [(file, qualname)]} of [handout]."""
    by_file, by_module = {}, {}
    for module, entries in rubric["handout"].items():
        for entry in entries:
            file, _, qualname = entry.partition(":")
            if file not in FILES or not qualname:
                raise UsageError(f"[handout] {module}: {entry!r} is not <nn_numpy.py or cnn_numpy.py>:<name>")
            by_file.setdefault(file, []).append(qualname)
            by_module.setdefault(module, []).append((file, qualname))
    return by_file, by_module


def definitions(tree):
    """{qualname: def node} of the module's functions and its classes' methods."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            found.update({f"{node.name}.{item.name}": item for item in node.body if isinstance(item, ast.FunctionDef)})
    return found


def body_span(node, lines):
    """(first, last) 1-based lines of a def's body after its docstring, comments just above it included."""
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and \
        isinstance(body[0].value.value, str)
    if has_doc:
        return body[0].end_lineno + 1, node.end_lineno
    first = body[0].lineno
    while first - 1 > node.lineno and lines[first - 2].strip().startswith("#"):
        first -= 1
    return first, node.end_lineno


def blank(source, qualnames, filename):
    """(source with each qualname's body a `raise NotImplementedError`, {qualname: [the body's lines]})."""
    tree, lines = ast.parse(source), source.splitlines(keepends=True)
    found = definitions(tree)
    absent = [q for q in qualnames if q not in found]
    if absent:
        raise UsageError(f"[handout]: {', '.join(absent)} not defined in {filename}")
    removed = {}
    for qualname in sorted(qualnames, key=lambda q: -found[q].lineno):   # bottom up: line numbers stay valid
        node = found[qualname]
        first, last = body_span(node, lines)
        removed[qualname] = [line.rstrip("\n") for line in lines[first - 1:last]]
        indent = " " * (node.col_offset + 4)
        lines[first - 1:last] = [f'{indent}raise NotImplementedError("{qualname}: write it (see the docstring; '
                                 f'python check.py)")\n']
    return "".join(lines), removed


def handed_out_sources(rubric):
    """{file: text} of the two blanked files, and {file: {qualname: removed lines}}."""
    by_file, _ = parts_of(rubric)
    texts, removed = {}, {}
    for file in FILES:
        text, removed[file] = blank((ROOT / file).read_text(encoding="utf-8"), by_file.get(file, []), file)
        if file == "cnn_numpy.py":
            if text.count(FAST_LAYERS) != 1:
                raise UsageError("cnn_numpy.py's --layers flag changed: update grading/handout.py's FAST_LAYERS")
            if text.count(FAST_PATH_DOC) != 1:
                raise UsageError("cnn_numpy.py's docstring changed: update grading/handout.py's FAST_PATH_DOC")
            text = text.replace(FAST_LAYERS, TEXTBOOK_ONLY).replace(FAST_PATH_DOC, TEXTBOOK_DOC)
        texts[file] = text
    return texts, removed


def check_answers():
    """check_data.json: the kit's own solution's answers to the public checks."""
    import cnn_numpy
    import nn_numpy
    from grading import handout_check

    return handout_check.answers(nn_numpy, cnn_numpy)


def docstring_of(file, qualname):
    tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
    node = definitions(tree)[qualname]
    own = ast.get_docstring(node) or ""
    owner = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == qualname.split(".")[0]), None)
    return (ast.get_docstring(owner) if owner is not None and "." in qualname else ""), own


def points_of(module, points):
    prefixes = POINT_PREFIXES.get(module, (f"{module}.",))
    return {part: value for part, value in points.items() if part.startswith(prefixes)}


def plural_points(value):
    return f"{value:g} point{'' if value == 1 else 's'}"


def readme(rubric):
    """The handout's README.md, from the rubric."""
    _, by_module = parts_of(rubric)
    points = {k: float(v) for k, v in rubric["points"].items()}
    banned = ", ".join(rubric["ban"].get("modules", ()))
    out = ["# PA1: an MLP and a CNN on MNIST, forward and backward passes by hand", "",
           "Write the body of every part below: each now raises `NotImplementedError`. The docstrings state what "
           "each computes, with its equation and shapes; everything else (the data loading, the training loop, "
           "the figures, `main`) is given whole. **NumPy only:** `nn_numpy.py` and `cnn_numpy.py` may not import "
           f"{banned} (the grader bans them).", "",
           "    python check.py              # the public checks of every part you have written",
           "    python check.py conv         # one module",
           "    python nn_numpy.py --epochs 1 --limit-train 2000     # the MLP end to end (MNIST_DIR=... or ./data)",
           "    python cnn_numpy.py --epochs 1 --limit-train 2000 --batch-size 8 --lr 0.05", "",
           "`check.py` prints, per part, your output against a known answer and your gradients against finite "
           "differences of your own forward. The grader's tests are hidden and differ (other shapes and seeds, "
           "ties, stride); only a part that passes them earns its points.", "", "## The tasks", ""]
    seen_classes = set()
    for module, entries in by_module.items():
        share = points_of(module, points)
        out += [f"### {module} ({plural_points(sum(share.values()))})", ""]
        for file, qualname in entries:
            class_doc, own = docstring_of(file, qualname)
            out.append(f"- `{qualname}` in `{file}`" + ("" if "." in qualname else
                       ": a stepping stone, checked by check.py; the grader tests the class that follows"))
            owner = qualname.split(".")[0]
            if class_doc and owner not in seen_classes:
                seen_classes.add(owner)
                out += ["", "  ```", *[f"  {line}" for line in class_doc.splitlines()], "  ```"]
            if own:
                out += ["", "  ```", *[f"  {line}" for line in own.splitlines()], "  ```"]
        out += ["", "Graded: " + ", ".join(f"`{part}` {value:g}" for part, value in share.items()) + ".", ""]
    handed = {part for module in by_module for part in points_of(module, points)}
    whole = {part: value for part, value in points.items() if part not in handed}
    integration = rubric["integration"]
    figure_points = float(rubric["report"].get("figure_points", 0))
    report_total = figure_points * len(MODELS) * len(FIGURES)
    out += ["### The networks as a whole", "",
            "Your own layers composed into the report's networks: " +
            ", ".join(f"`{part}` {value:g}" for part, value in whole.items()) + ". `mlp.train`: your Linear, ReLU, "
            "softmax and loss in the 784-128-64-10 MLP, trained 300 steps of plain SGD on MNIST training images, "
            f"must reach {float(integration.get('mlp_accuracy', 0.8)):.0%} on held-out training images; "
            "`cnn.overfit`: your conv and max pooling in the report's CNN must bring its loss on one batch to "
            f"{float(integration.get('cnn_loss_ratio', 0.5)):g} of its first value in 20 steps. "
            "`mlp.gradient_check` compares the whole MLP's gradient with finite differences. A part worth 0 is "
            "shown in your feedback only (the stride variants: the report's networks use stride 1 convolutions "
            "and 2x2 pooling).", "",
            "Each part is tested on the grader's own hidden inputs against a float64 reference; a backward must be "
            "the true gradient of its own forward. Partial credit: each part earns its points on its own, even "
            "where the whole network does not train.", "",
            f"The code is worth {sum(points.values()):g} points and the report {report_total:g}: "
            f"{sum(points.values()) + report_total:g} in all.", "",
            "## The other half: the same networks with a framework", "",
            "The assignment asks for each network twice. This folder is the half without a framework; write the "
            "same MLP and CNN with PyTorch (or TensorFlow) yourself, in files of their own (for example "
            "`nn_torch.py` and `cnn_torch.py`), with the same architectures and the report's figures. Those "
            "files may import the framework; `nn_numpy.py` and `cnn_numpy.py` may not.", "",
            "## What to hand in", "",
            "One zip, `PA1_<studentID>_<name>.zip` (for example `PA1_202412345_이경민.zip`), holding your code and "
            "your report as a PDF. No datasets, no weights.", ""]
    names = {"loss_graph": "the train/test loss graph", "confusion_matrix": "the 10×10 probability confusion "
             "matrix", "top3_images": "the top-3 images of each class"}
    out += [f"The report shows, for each of the four models ({', '.join(f'`{m}`' for m in MODELS)}): "
            + "; ".join(names[f] for f in FIGURES) + f". Each of these {len(MODELS) * len(FIGURES)} figures is "
            f"worth {figure_points:g} points ({report_total:g} in all); give each a "
            "caption that names it and its model.", "", "## Late work", "",
            "| handed in up to | keeps |", "|---|---|", "| the due time | 100% |"]
    for hours, share in sorted(rubric["late"].get("schedule", [])):
        out.append(f"| {hours / 24:g} day{'s' if hours != 24 else ''} late | {share:.0%} |")
    out += ["| later | 0% |", "", "Code copied from classmates or the internet gets no grade; citing your sources "
            "and using LLMs is allowed.", ""]
    return "\n".join(out)


def write_handout(out, config=DEFAULT):
    """Write the handout into ``out`` (see the module's docstring); returns the files written."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARK).is_file())):
        raise UsageError(f"{out} exists and is not a handout written by this command: give another --out")
    rubric = read_rubric(config)
    texts, _ = handed_out_sources(rubric)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".handout-", dir=out.parent))   # beside OUT: the rename stays on one disk
    try:
        for file, text in texts.items():
            (stage / file).write_text(text, encoding="utf-8")
        shutil.copytree(ROOT / "common", stage / "common", ignore=shutil.ignore_patterns(
            "__pycache__", *NOT_HANDED_OUT))
        shutil.copy(HERE / "handout_check.py", stage / "check.py")
        (stage / "check_data.json").write_text(json.dumps(check_answers()) + "\n", encoding="utf-8")
        (stage / "README.md").write_text(readme(rubric), encoding="utf-8")
        (stage / MARK).write_text("written by python -m grading.handout; replaced whole by the next\n")
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
        out.chmod(0o755)   # mkdtemp's 0700 would keep the class's TAs out of a shared folder
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m grading.handout", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="handout", help="the folder to write (default: %(default)s)")
    p.add_argument("--config", default=str(DEFAULT), help="the rubric (default: the kit's grading/grading.toml)")
    args = p.parse_args(argv)
    files = write_handout(Path(args.out), Path(args.config))
    print(f"grading.handout: {len(files)} files in {args.out}/: the two files with their parts blank, check.py, "
          f"README.md, common/")


if __name__ == "__main__":
    from common.cli import run_main

    sys.exit(run_main(main, "grading.handout"))
