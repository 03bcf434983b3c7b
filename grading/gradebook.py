"""The class's gradebook: which files to grade, copies among them, z-scores against the kit's seeds, and the
files an instructor takes away (grades.csv, scores.csv, summary.md, histogram.png, Gradescope results.json).

    submissions = find_submissions(Path("export"))   # [(submission, [model files])], sorted by name
    rows = [...]                                      # one dict per file (grading.grader's result + names)
    flag_duplicates(rows, references)                 # marks copies "flagged", naming the other file
    add_z_scores(rows, seed_accuracies(Path("figures")))
    write_outputs(out_dir, rows, ...)

Pure functions over rows, apart from the writers at the end; nothing here reads a submitted file's content.
"""

import datetime
import json
import os
import shutil
from pathlib import Path

import numpy as np

from common.io import OutputSet, strict_json
from common.models import MODELS
from grading import csvfile
from grading.loaders import SUFFIXES

COLUMNS = ("submission", "file", "model", "test_acc", "test_loss", "status", "note", "z_score", "evaluated_with",
           "format", "sha256")
STATUSES = ("graded", "flagged", "refused", "unreadable", "no model")
SCORE_COLUMNS = ("submission", "score", "file", "model", "status", "note")
# A submission with nothing graded takes the status of its worst file, in this order (worst first).
WORST_FIRST = ("refused", "unreadable", "no model")
# Weights equal within these tolerances (float16 rounding included) are the same weights.
SAME_WEIGHTS = {"rtol": 1e-3, "atol": 1e-6}


def plural(n, word):
    """"1 submission", "2 submissions"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def mean_std(values):
    """(mean, sample standard deviation) of ``values``."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def gets_row(entry):
    """Whether a folder entry (os.DirEntry) that is no folder gets a row: a model file by its name (.pkl,
    .pickle, .npz, .npy, .pt or .pth, not hidden), whatever it is (a link, a FIFO: refused when graded), and
    a symbolic link to a folder (refused, never followed: is_dir() reads the link's target's type, opening
    nothing)."""
    if entry.name.startswith("."):
        return False
    return os.path.splitext(entry.name)[1].lower() in SUFFIXES or (entry.is_symlink() and entry.is_dir())


def submitted_files(root):
    """The paths under the folder ``root`` that get a row (see :func:`gets_row`), at any depth, sorted by their
    path in it: hidden folders skipped, symbolic links listed but never followed, nothing opened. A folder
    that cannot be listed is skipped."""
    found, folders = [], [root]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith("."):
                            folders.append(Path(entry.path))
                    elif gets_row(entry):
                        found.append(Path(entry.path))
        except OSError:
            continue
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def find_submissions(folder):
    """[(submission name, [files that get a row])]: each subfolder is one submission (its files found at any
    depth, hidden folders skipped), and so is each model file directly inside ``folder``. No symbolic link is
    followed: a link named like a model file, a link to a folder and a FIFO are listed, for grading.loaders to
    refuse, each its own row (a link to a folder directly inside ``folder`` is one submission of one row)."""
    submissions = []
    with os.scandir(folder) as scanned:
        entries = sorted(scanned, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            submissions.append((entry.name, submitted_files(Path(entry.path))))
        elif gets_row(entry):
            submissions.append((entry.name, [Path(entry.path)]))
    return submissions


# --- copies ---------------------------------------------------------------------------------------------------

def same_weights(a, b):
    return (a["architecture"] == b["architecture"] and a["signature"] is not None and b["signature"] is not None
            and np.allclose(a["signature"], b["signature"], **SAME_WEIGHTS))


def flag_duplicates(rows, references):
    """Flag each row that copies another submission's file or a reference: an identical file, or weights equal up
    to layout or float precision. ``references``: [{"name", "sha256", "architecture", "signature"}]."""
    for i, row in enumerate(rows):
        if row["sha256"] is None:
            continue
        copies = []
        for reference in references:
            if reference["sha256"] == row["sha256"]:
                copies.append(f"{reference['name']} (identical file)")
            elif same_weights(row, reference):
                copies.append(f"{reference['name']} (same weights)")
        for other in rows:
            if other is row or other["submission"] == row["submission"] or other["sha256"] is None:
                continue
            if other["sha256"] == row["sha256"]:
                copies.append(f"{other['submission']}/{other['file']} (identical file)")
            elif same_weights(row, other):
                copies.append(f"{other['submission']}/{other['file']} (same weights)")
        if copies:
            row["notes"].insert(0, "duplicate of " + ", ".join(copies))
            if row["status"] == "graded":
                row["status"] = "flagged"


# --- the kit's seeds -----------------------------------------------------------------------------------------

def seed_accuracies(figures):
    """{model: [test accuracy in percent, one per committed seed]} from figures/<model>/metrics.json and
    figures/seeds/seed*/<model>/metrics.json, read now (they are regenerated with the kit); unreadable ones
    are left out."""
    accuracies = {}
    for model in MODELS:
        paths = [figures / model / "metrics.json", *sorted(figures.glob(f"seeds/seed*/{model}/metrics.json"))]
        for path in paths:
            try:
                value = json.loads(path.read_text(encoding="utf-8"))["final"]["test_acc"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if isinstance(value, (int, float)):
                accuracies.setdefault(model, []).append(100 * value)
    return accuracies


def add_z_scores(rows, seeds):
    """Each evaluated row's z-score: (test_acc - the seeds' mean) / their sample std, for its model."""
    for row in rows:
        values = seeds.get(row["model"], [])
        if row["test_acc"] is None or len(values) < 2:
            row["z_score"] = None
            continue
        mean, std = mean_std(values)
        row["z_score"] = (row["test_acc"] - mean) / std if std > 0 else None


# --- the outputs ------------------------------------------------------------------------------------------------

def csv_text(rows):
    """grades.csv: one row per file, the COLUMNS (through grading.csvfile, so that no cell is a formula)."""
    return csvfile.csv_text(COLUMNS, ({column: cell(row, column) for column in COLUMNS} for row in rows))


def cell(row, column):
    if column == "note":
        return "; ".join(row["notes"])
    value = row.get(column)
    if value is None:
        return ""
    if column == "test_acc":
        return f"{value:.2f}"
    if column in ("test_loss", "z_score"):
        return f"{value:.4f}" if np.isfinite(value) else str(value)
    return str(value)


def best_rows(rows):
    """{submission: the row that gives its score, or None}: the graded or flagged file with the best test
    accuracy (at equal accuracy a graded file before a flagged one, then the first by name). scores.csv and
    Gradescope's results.json both take their score from it."""
    best = {}
    for row in rows:
        best.setdefault(row["submission"], None)
        if row["test_acc"] is None or row["status"] not in ("graded", "flagged"):
            continue
        current = best[row["submission"]]
        if current is None or (row["test_acc"], row["status"] == "graded") > (current["test_acc"],
                                                                                current["status"] == "graded"):
            best[row["submission"]] = row
    return best


def scores_text(rows):
    """scores.csv: one row per submission, the score to paste into a gradebook (see :func:`best_rows`)."""
    by_submission, lines = {}, []
    for row in rows:
        by_submission.setdefault(row["submission"], []).append(row)
    for submission, best in best_rows(rows).items():
        files = by_submission[submission]
        others = f"best of {len(files)} files (grades.csv has each)" if len(files) > 1 else ""
        if best is not None:
            notes = [*(best["notes"] if best["status"] == "flagged" else []), *([others] if others else [])]
            lines.append([submission, f"{best['test_acc']:.2f}", best["file"], best["model"], best["status"],
                          "; ".join(notes)])
        else:
            worst = min(files, key=lambda row: WORST_FIRST.index(row["status"]))
            note = "; ".join(worst["notes"])
            lines.append([submission, "", worst["file"], worst["model"], worst["status"],
                          f"{worst['file']}: {note}" if worst["file"] and len(files) > 1 else note])
    return csvfile.csv_text(SCORE_COLUMNS, (dict(zip(SCORE_COLUMNS, line)) for line in lines))


def counts(rows):
    """"3 graded, 1 flagged, 1 refused": how many rows have each status."""
    found = [(status, sum(row["status"] == status for row in rows)) for status in STATUSES]
    return ", ".join(f"{n} {status}" for status, n in found if n) or "no files"


def summary_markdown(rows, seeds, command, references_line, histogram_name, warning=None):
    """summary.md: the scores per model against the kit's seeds, each submission's z-score, what needs a look;
    ``warning`` (the original's weights not checked) right under the title."""
    evaluated = [row for row in rows if row["test_acc"] is not None]
    lines = [f"# Grades of {plural(len({row['submission'] for row in rows}), 'submission')}", "",
             *([f"**Warning: {warning}.**", ""] if warning else []),
             "One score per submission (the best of its graded or flagged files) in `scores.csv`; every file "
             "in `grades.csv`.", "",
             f"Written by `{command}` on {datetime.date.today().isoformat()}: {len(rows)} rows, {counts(rows)}. "
             f"Test accuracy on the 10,000 MNIST test images, in %; z = (accuracy − the kit's seeds' mean) / "
             f"their standard deviation, for the same model.", "", references_line, "",
             "## Scores per model", "",
             "| model | files | mean | median | min | max | the kit's seeds: mean ± sd (n) |", "|---|---|---|---|---|---|---|"]
    for model in MODELS:
        scores = [row["test_acc"] for row in evaluated if row["model"] == model]
        kit = seeds.get(model, [])
        kit_text = (f"{mean_std(kit)[0]:.2f} ± {mean_std(kit)[1]:.2f} ({len(kit)})" if len(kit) > 1
                    else f"{kit[0]:.2f} (1)" if kit else "none on disk")
        if scores or kit:
            stats = (f"{np.mean(scores):.2f} | {np.median(scores):.2f} | {min(scores):.2f} | {max(scores):.2f}"
                     if scores else "— | — | — | —")
            lines.append(f"| {model} | {len(scores)} | {stats} | {kit_text} |")
    if evaluated:
        lines += ["", f"![test accuracy of the submissions beside the kit's seeds]({histogram_name})"]
    lines += ["", "## Each file", "", "| submission | file | model | test acc (%) | z | status |", "|---|---|---|---|---|---|"]
    for row in rows:
        z = "" if row.get("z_score") is None else f"{row['z_score']:+.2f}"
        acc = "" if row["test_acc"] is None else f"{row['test_acc']:.2f}"
        lines.append(f"| {md(row['submission'])} | {md(row['file'])} | {row['model']} | {acc} | {z} | "
                     f"{row['status']} |")
    look = [row for row in rows if row["status"] != "graded"]
    lines += ["", "## To look at", ""]
    if look:
        lines += ["| submission | file | status | note |", "|---|---|---|---|"]
        lines += [f"| {md(row['submission'])} | {md(row['file'])} | {row['status']} | {md('; '.join(row['notes']))} |"
                  for row in look]
    else:
        lines.append("Nothing: every file was graded without a flag.")
    return "\n".join(lines) + "\n"


def md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


SEED_BAND_MIN_WIDTH = 0.02  # the seeds' band is drawn at least this fraction of the x axis wide


def histogram_figure(rows, seeds):
    """One panel per model present: the submissions' test accuracies (files counted in whole numbers), and the
    kit's seeds as a red band (mean ± sd, drawn at least 2% of the axis wide, so that it shows) with
    its mean as a line, labelled with the numbers; one legend, outside the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from common.plots import STYLE

    models = [m for m in MODELS if any(row["model"] == m and row["test_acc"] is not None for row in rows)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.4), squeeze=False)
        handles, widened = {}, False
        for ax, model in zip(axes[0], models):
            scores = [row["test_acc"] for row in rows if row["model"] == model and row["test_acc"] is not None]
            *_, bars = ax.hist(scores, bins=min(30, max(5, len(scores))), color="tab:blue", alpha=0.8,
                               edgecolor="white")
            handles.setdefault("submitted files", bars[0])
            kit = seeds.get(model, [])
            if kit:
                mean, std = mean_std(kit)
                low, high = min(scores + kit), max(scores + kit)
                ax.set_xlim(low - 0.05 * max(high - low, 1.0), high + 0.05 * max(high - low, 1.0))
                width = max(2 * std, SEED_BAND_MIN_WIDTH * (ax.get_xlim()[1] - ax.get_xlim()[0]))
                widened = widened or width > 2 * std
                band = ax.axvspan(mean - width / 2, mean + width / 2, color="tab:red", alpha=0.3, zorder=0)
                line = ax.axvline(mean, color="tab:red", linewidth=1.2)
                handles.setdefault("band", band)
                handles.setdefault("the kit's seeds: mean", line)
                spread = f" ± {std:.2f}" if len(kit) > 1 else ""
                left = mean > sum(ax.get_xlim()) / 2  # the label on the side with more room
                ax.annotate(f"kit: {mean:.2f}{spread}\n({plural(len(kit), 'seed')})", xy=(mean, 1),
                            xycoords=("data", "axes fraction"), xytext=(-4 if left else 4, -4),
                            textcoords="offset points", ha="right" if left else "left", va="top", fontsize=8,
                            color="tab:red")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # room for the seeds' label above the bars
            ax.set_title(f"{model}: {plural(len(scores), 'file')}")
            ax.set_xlabel("test accuracy (%)")
            ax.set_ylabel("files")
        if "band" in handles:
            handles = {("the kit's seeds: mean ± 1 sd" + ("\n(drawn at least 2% of the axis wide)" if widened else "")
                        if label == "band" else label): handle for label, handle in handles.items()}
        fig.tight_layout()
        fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8,
                   frameon=False)
    return fig


def plot_histogram(path, rows, seeds):
    """histogram.png: :func:`histogram_figure`, saved."""
    from common.plots import save

    save(histogram_figure(rows, seeds), path)


def gradescope_results(rows):
    """{submission: Gradescope results.json}: score = scores.csv's, the best test accuracy among its graded or
    flagged files (0 if none; :func:`best_rows`), out of 100; one test per file, its status and note as output."""
    results = {}
    best = best_rows(rows)
    for row in rows:
        entry = results.setdefault(row["submission"], {"score": 0.0, "max_score": 100.0, "tests": []})
        accuracy = "" if row["test_acc"] is None else f"test accuracy {row['test_acc']:.2f}%; "
        entry["tests"].append({"name": row["file"] or "(no model file)",
                               "status": "passed" if row["status"] == "graded" else "failed",
                               "output": f"{accuracy}{row['status']}" + (f": {'; '.join(row['notes'])}"
                                                                         if row["notes"] else "")})
    for submission, entry in results.items():
        chosen = best[submission]
        if chosen is None:
            entry["output"] = "No submitted model was graded: 0%."
        else:
            entry["score"] = round(chosen["test_acc"], 2)
            entry["output"] = (f"Best test accuracy of the submitted models: {entry['score']:.2f}% "
                               f"({chosen['file']}, {chosen['status']}).")
    return results


def write_outputs(out_dir, rows, seeds, command, references_line, gradescope, warning=None, code=None):
    """grades.csv, scores.csv, summary.md (``warning`` at its top), histogram.png (when something was evaluated)
    and, with ``gradescope``, gradescope/<submission>/results.json: all switched into place as one set. With
    ``code`` (the code graded, grading.cli.grade_class_code), the code's files instead (write_code_outputs)."""
    if code is not None:
        return write_code_outputs(out_dir, rows, seeds, command, references_line, warning, code)
    with OutputSet() as outputs:
        outputs_written = [out_dir / "grades.csv", out_dir / "scores.csv", out_dir / "summary.md"]
        outputs.path(out_dir / "grades.csv").write_text(csv_text(rows), encoding="utf-8")
        outputs.path(out_dir / "scores.csv").write_text(scores_text(rows), encoding="utf-8")
        outputs.path(out_dir / "summary.md").write_text(
            summary_markdown(rows, seeds, command, references_line, "histogram.png", warning), encoding="utf-8")
        if any(row["test_acc"] is not None for row in rows):
            plot_histogram(outputs.path(out_dir / "histogram.png"), rows, seeds)
            outputs_written.append(out_dir / "histogram.png")
        if gradescope:
            for submission, result in gradescope_results(rows).items():
                outputs.path(out_dir / "gradescope" / submission / "results.json").write_text(
                    strict_json(result, indent=2) + "\n", encoding="utf-8")
    return outputs_written


def safe_name(text):
    """A file name of a student id: letters, digits, '.', '-' and '_' kept, the rest '_'."""
    name = "".join(c if c.isalnum() or c in ".-_" else "_" for c in str(text)).lstrip(".")
    return name[:100] or "_"


def write_code_outputs(out_dir, rows, seeds, command, references_line, warning, code):
    """modules.csv, scores.csv (one row per student: code points, and the weights' test accuracy where weights
    were handed in), summary.md (the code's, then the weights'), feedback/<student_id>.html,
    gradescope/<student_id>/results.json, and grades.csv and histogram.png where weights were handed in."""
    from grading import classbook, feedback
    from grading.copies import similarity_csv

    students, rubric = code["students"], code["rubric"]
    weights = [row for row in rows if row["file"]]
    with OutputSet() as outputs:
        written = [out_dir / name for name in ("modules.csv", "scores.csv", "summary.md")]
        outputs.path(out_dir / "modules.csv").write_text(classbook.modules_text(students, rubric), encoding="utf-8")
        outputs.path(out_dir / "scores.csv").write_text(classbook.scores_text(students, rubric), encoding="utf-8")
        text = classbook.summary_markdown(students, rubric, command, code["sandboxed"], code["seconds"],
                                          code.get("copies"))
        if weights:
            text += "\n" + summary_markdown(weights, seeds, command, references_line, "histogram.png", warning) \
                .replace("\n# ", "\n## ").replace("\n## ", "\n### ").replace("# Grades of", "## Weights: grades of", 1)
            outputs.path(out_dir / "grades.csv").write_text(csv_text(weights), encoding="utf-8")
            written.append(out_dir / "grades.csv")
            if any(row["test_acc"] is not None for row in weights):
                plot_histogram(outputs.path(out_dir / "histogram.png"), weights, seeds)
                written.append(out_dir / "histogram.png")
        outputs.path(out_dir / "summary.md").write_text(text, encoding="utf-8")
        if code.get("copies") is not None:
            outputs.path(out_dir / "similarity.csv").write_text(similarity_csv(code["copies"]), encoding="utf-8")
            written.append(out_dir / "similarity.csv")
            report = Path(out_dir) / ".copies" / "report.html"
            if report.is_file():
                outputs.path(out_dir / "similarity.html").write_bytes(report.read_bytes())
                written.append(out_dir / "similarity.html")
        names = {}
        for student in students:
            name = safe_name(student.id)
            name = name if name not in names else safe_name(student.folder)
            names[name] = student
            outputs.path(out_dir / "feedback" / f"{name}.html").write_text(
                feedback.feedback_html(student, rubric), encoding="utf-8")
            outputs.path(out_dir / "gradescope" / name / "results.json").write_text(
                strict_json(classbook.gradescope(student, rubric), indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(Path(out_dir) / ".copies", ignore_errors=True)
    return written + [out_dir / "feedback", out_dir / "gradescope"]
