"""grade.py's command: the folder of submissions found, each file graded in a worker, the gradebook written.

    python grade.py submissions/                 # grading.cli.main(): see grade.py for every form
"""

import os
import shlex
import sys
import time
from pathlib import Path

from common.cli import Parser, positive_float, positive_int
from common.data import load_mnist
from common.errors import UsageError
from common.io import check_writable
from common.original_pickle import FILES as ORIGINAL_FILES
from grading.gradebook import plural

ROOT = Path(__file__).resolve().parent.parent
# Where the original report's two pickles are looked for without --original, in this order: ../shared/original
# beside the repository, then data/original, where `python reproduce.py --original` downloads them.
ORIGINAL_FOLDERS = (ROOT.parent / "shared" / "original", ROOT / "data" / "original")
HOW_TO_GET_ORIGINAL = "python reproduce.py --original fetches them into data/original"
TRAIN_IMAGES = 500  # training images that settle a layout the shapes leave open


def build_parser():
    p = Parser(prog="grade.py", description="Grade every submitted model in a folder: one row per model file in "
                                            "OUT/grades.csv, with OUT/summary.md and OUT/histogram.png.")
    p.add_argument("submissions", metavar="SUBMISSIONS",
                   help="the folder of submissions: one subfolder per student (or model files directly in it)")
    p.add_argument("--out", default="graded", help="folder for the outputs (default: %(default)s)")
    p.add_argument("--gradescope", action="store_true",
                   help="also write OUT/gradescope/<submission>/results.json, Gradescope's format (default: off)")
    p.add_argument("--processes", type=positive_int, default=min(2, os.cpu_count() or 1),
                   help="worker processes, each grading one file at a time (default: %(default)s)")
    p.add_argument("--timeout", type=positive_float, default=120.0,
                   help="seconds one file may take to read and evaluate (default: %(default)s)")
    p.add_argument("--memory-mb", type=positive_int, default=2048,
                   help="memory one file may take, in MiB, beyond what a worker holds (default: %(default)s)")
    p.add_argument("--original", default=None,
                   help="folder holding the original report's nn_pure_python-model.pkl and cnn_pure_python-model.pkl, "
                        "checked for copies (default: ../shared/original beside the repository, else data/original, "
                        "where `python reproduce.py --original` downloads them)")
    p.add_argument("--reference", default=str(ROOT / "reference"),
                   help="folder of the kit's reference checkpoints, checked for copies (default: reference/)")
    p.add_argument("--figures", default=str(ROOT / "figures"),
                   help="the kit's figures/ whose metrics.json give its seeds' accuracies for the z-scores "
                        "(default: figures/)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST files (default: $MNIST_DIR, then ./data)")
    p.add_argument("--config", default=None,
                   help="the rubric of the code: points per module part, tolerances, limits, the framework ban, "
                        "per-student pointers (default: the kit's grading/grading.toml; the class's secret seed "
                        "is kept beside it, or in OUT/secret.toml for the default)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run the students' code without bubblewrap, as your own user (only where bwrap cannot "
                        "start; every feedback file and the summary say so)")
    p.add_argument("--due", default=None,
                   help="the due time with its zone, e.g. 2025-10-16T14:30+09:00: late submissions keep the share "
                        "of their points that grading.toml's [late] schedule gives (default: the handout's)")
    p.add_argument("--times", default=None,
                   help="the LMS's CSV of submission times (student id or file name, time with its zone); "
                        "without it, each zip's modification time, and the note says so")
    p.add_argument("--boilerplate", default=None,
                   help="folder of the code the course handed out (e.g. the data loader), left out of the copy "
                        "check (default: none)")
    p.add_argument("--sources", action="append", default=None,
                   help="folder of known public code each submission is compared with (repeatable; added to the "
                        "kit's nn_numpy.py and cnn_numpy.py, and the original's code where found)")
    p.add_argument("--copies", choices=("flag", "zero"), default="flag",
                   help="flag: list similar pairs for you to decide (default); zero: the handout's rule, no grade "
                        "for a flagged copy")
    p.add_argument("--report-marks", default=None,
                   help="a CSV of a TA's report marks (student_id, item, points) that override what was read")
    p.add_argument("--weights-only", action="store_true",
                   help="grade the weight files only, as before the code was graded (default: the code too)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def check_folders(args):
    """The submissions folder exists and the outputs go outside it; returns (submissions, out) as Paths."""
    submissions = Path(args.submissions)
    if not submissions.is_dir():
        what = "is a file, not a folder" if submissions.exists() else "does not exist"
        raise UsageError(f"{submissions} {what}; give the folder that holds the submissions")
    out = Path(args.out)
    if out.resolve() == submissions.resolve() or submissions.resolve() in out.resolve().parents:
        raise UsageError(f"--out {out} is inside {submissions}: nothing is written into the submissions; choose "
                         f"a folder outside it")
    check_writable(out, "--out")
    return submissions, out


ORIGINAL_PICKLES = [name for name in ORIGINAL_FILES if name.endswith("-model.pkl")]


def original_folder(given, candidates=ORIGINAL_FOLDERS):
    """The folder to take the original's pickles from: ``given`` (--original) as it is; without it, the first of
    ``candidates`` that holds both, else the first candidate (where they are then said to be missing)."""
    if given is not None:
        return Path(given)
    for folder in candidates:
        if all((Path(folder) / name).is_file() for name in ORIGINAL_PICKLES):
            return Path(folder)
    return Path(candidates[0])


def reference_files(args, candidates=ORIGINAL_FOLDERS):
    """([(name shown in the notes, path)] of the kit's reference checkpoints and the original's two pickles,
    a line saying what was found, and a warning when the original's weights were not all found, else None)."""
    reference = Path(args.reference)
    original = original_folder(args.original, candidates)
    found = [(f"the kit's reference/{p.name}", p) for p in sorted(reference.glob("*"))
             if p.suffix in (".npz", ".pt")] if reference.is_dir() else []
    pickles = [original / name for name in ORIGINAL_PICKLES]
    present = [p for p in pickles if p.is_file()]
    found += [(f"the original report's {p.name}", p) for p in present]
    n_reference = len(found) - len(present)
    line = (f"Checked for copies of {plural(n_reference, 'reference checkpoint')} in {reference} and "
            f"the original's {plural(len(present), 'pickle')} in {original}.")
    warning = None
    if len(present) < len(pickles):
        where = (str(original) if args.original is not None
                 else " or ".join(str(folder) for folder in candidates))
        missing = ", ".join(p.name for p in pickles if not p.is_file())
        warning = (f"NOT checked against the original report's weights: {missing} not found in {where} "
                   f"({HOW_TO_GET_ORIGINAL}, or give --original DIR); a copy of them is graded as a student's own")
    return found, line, warning


def main(argv=None):
    args = build_parser().parse_args(argv)
    started, _ = time.perf_counter(), check_lms_flags(args)  # before OUT is made: a mistake leaves nothing behind
    submissions_dir, out = check_folders(args)
    from grading.gradebook import add_z_scores, counts, seed_accuracies, write_outputs
    from grading.lms import gather

    submissions = gather(submissions_dir, out)  # the zips unpacked into OUT/unpacked/
    code = code_plan(submissions, args, out)  # before MNIST: a sandbox that cannot start is said first
    data, train = load_data(args.data_dir)  # without MNIST, its one line is all grade.py says
    references, references_line, original_warning = reference_files(args)
    if original_warning:
        print(f"grade.py: warning: {original_warning}", file=sys.stderr, flush=True)
    rows = grade_files(submissions, submissions_dir, references, data, args, code is None)
    seeds = seed_accuracies(Path(args.figures))
    add_z_scores(rows, seeds)
    command = "python grade.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if code is not None:
        code.update(grade_class_code(code, train, rows, args), command=command)
        class_checks(code, args, out)
    written = write_outputs(out, rows, seeds, command, references_line, args.gradescope, original_warning, code)
    print(last_line(rows, code, written, out, args, original_warning, started, counts), flush=True)


def last_line(rows, code, written, out, args, warning, started, counts):
    """What grade.py says when it is done: what was graded, in how long, what was written, where the scores are."""
    if code is not None:
        students = code["students"]
        finals = [s.final for s in students]
        graded = (f"the code and reports of {plural(len(students), 'student')} (final: mean "
                  f"{sum(finals) / len(finals):.1f} of {code['rubric'].max_points:g} points)" +
                  (f" and {plural(len(rows), 'weight file')} "
                                                              f"({counts(rows)})" if rows else ""))
    else:
        graded = f"{plural(len(rows), 'row')} ({counts(rows)})"
    return (f"grade.py: {graded} in {time.perf_counter() - started:.1f} s; "
            f"written: {', '.join(str(path) for path in written if path.name != 'scores.csv')}"
            + (f" and {out / 'gradescope'}/" if args.gradescope and code is None else "")
            + f"; one score per {'student' if code is not None else 'submission'}: {out / 'scores.csv'}"
            + (f"; {warning}" if warning else ""))


def check_lms_flags(args):
    """--due and --times read before any work (a time without a zone is an error naming it)."""
    from grading.lms import parse_time, read_times

    args.due_at = parse_time(args.due, "--due") if args.due else None
    args.times_map = read_times(Path(args.times)) if args.times else {}
    if args.times and not args.due:
        raise UsageError("--times needs --due (the due time to measure lateness from)")
    for flag in ("boilerplate", "report_marks"):
        value = getattr(args, flag)
        if value and not Path(value).exists():
            raise UsageError(f"--{flag.replace('_', '-')} {value} does not exist")
    for folder in args.sources or []:
        if not Path(folder).is_dir():
            raise UsageError(f"--sources {folder} is not a folder")


def class_checks(code, args, out):
    """Lateness, copies and the report of every student, beside their code."""
    from grading.copies import find_copies
    from grading.lms import lateness, times_warnings
    from grading.report import read_reports

    rubric = code["rubric"]
    for student in code["students"]:
        student.late = lateness(student.submission, args.due_at, args.times_map, rubric.late, student.id)
    sources, missing = default_sources()
    warnings = times_warnings(code["students"], args.times_map, args.due_at) + ([missing] if missing else [])
    for line in warnings:
        print(f"grade.py: warning: {line}", file=sys.stderr, flush=True)
    code["copies"] = find_copies(code["students"], out, args.boilerplate, sources + list(args.sources or []),
                                 rubric.copies["threshold"], args.copies)
    read_reports(code["students"], rubric, args.report_marks, args.processes)


def default_sources():
    """([the kit's two NumPy scripts, and the original's code where its folder is found], the warning when it is
    not): --sources adds to these."""
    original = original_folder(None)
    files = [original / name for name in ("nn_pure_python.py", "cnn_pure_python.py", "nn_framework.py",
                                          "cnn_framework.py") if (original / name).is_file()]
    missing = None if files else (f"not checked for copies of the original report's public code: it is not in "
                                  f"{' or '.join(str(f) for f in ORIGINAL_FOLDERS)} (give --sources DIR with its "
                                  "nn_pure_python.py, cnn_pure_python.py, ...)")
    return [("the kit's nn_numpy.py and cnn_numpy.py", [ROOT / "nn_numpy.py", ROOT / "cnn_numpy.py"])] + (
        [("the original report's code", files)] if files else []), missing


def code_plan(submissions, args, out):
    """None where only weights are graded (--weights-only, or no .py file in any student's folder or zip), else
    what the code grading needs: the students' submissions, the rubric (its seed drawn once and kept), the
    sandbox."""
    from grading.code_grade import python_files
    from grading.rubric import DEFAULT, load_rubric
    from grading.sandbox import sandbox_problem

    students = [s for s in submissions if s.folder is not None or s.status != "ok"]
    if args.weights_only or not any(python_files(s.folder) for s in students if s.folder is not None):
        return None
    rubric = load_rubric(args.config or DEFAULT, out)
    problem = None if args.no_sandbox else sandbox_problem()
    if problem:
        raise UsageError(problem)
    return {"submissions": students, "rubric": rubric, "sandboxed": not args.no_sandbox}


def grade_class_code(code, train, rows, args):
    """{"students": [classbook.Student], "seconds"}: every student's code graded, --processes sandboxes at a time,
    a progress bar on the terminal; each student's weight rows beside their code."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from grading.classbook import Student
    from grading.code_checks import probe_calls
    from grading.code_grade import grade_code, mnist_slice

    started, rubric = time.perf_counter(), code["rubric"]
    calls = probe_calls(rubric.seed, mnist_slice(*train))
    students = [Student(s.name, weights=[r for r in rows if r["submission"] == s.name], submission=s)
                for s in code["submissions"]]
    print(f"grade.py: the code of {plural(len(students), 'student')}, {args.processes} at a time, "
          + ("each in a sandbox" if code["sandboxed"] else "WITHOUT a sandbox (--no-sandbox)"), flush=True)

    def grade(student):
        folder = student.submission.folder
        if folder is None:
            student.error = "" if student.submission.notes else student.submission.status  # the notes say why
            return student
        try:
            student.code = grade_code(folder, calls, rubric, student.id, code["sandboxed"])
        except Exception as error:  # noqa: BLE001 - one student's failure is that student's row
            student.error = f"the code could not be graded: {type(error).__name__}: {error}"
        return student

    with ThreadPoolExecutor(args.processes) as pool, tqdm(total=len(students), desc="code", unit="student",
                                                          disable=True if args.quiet else None) as bar:
        for _ in pool.map(grade, students):
            bar.update(1)
    return {"students": students, "seconds": time.perf_counter() - started}


def grade_files(submissions, submissions_dir, references, data, args, no_model_rows=True):
    """The rows of every submitted file (graded in the workers beside the reference files, copies flagged) and
    of every submission without one, sorted by submission and file."""
    from grading.gradebook import flag_duplicates

    tasks = [{"path": str(path), "purpose": "grade", "submission": s.name,
              "file": path.name if s.folder is None else path.relative_to(s.folder).as_posix()}
             for s in submissions for path in s.model_files]
    tasks += [{"path": str(path), "purpose": "reference", "name": shown} for shown, path in references]
    n_files = sum(task["purpose"] == "grade" for task in tasks)
    print(f"grade.py: {plural(len(submissions), 'submission')}, {plural(n_files, 'model file')} in "
          f"{submissions_dir}; {plural(args.processes, 'worker')}, each file limited to {args.timeout:g} s and "
          f"{args.memory_mb} MiB", flush=True)
    results = run_tasks(tasks, data, args)
    rows = [row_of(task, results[i]) for i, task in enumerate(tasks) if task["purpose"] == "grade"]
    rows += [{"submission": name, "file": "", "status": "no model", "notes": [
        "no .pkl, .pickle, .npz, .npy, .pt or .pth file in the submission"], **EMPTY}
             for name, files in ((s.name, s.model_files) for s in submissions) if not files and no_model_rows]
    rows.sort(key=lambda row: (row["submission"], row["file"]))
    reference_rows = [{"name": task["name"], **results[i]} for i, task in enumerate(tasks)
                      if task["purpose"] == "reference" and results[i].get("sha256")]
    flag_duplicates(rows, reference_rows)
    return rows


EMPTY = {"model": "", "architecture": None, "test_acc": None, "test_loss": None, "evaluated_with": "",
         "format": "", "sha256": None, "signature": None}


def row_of(task, result):
    return {**EMPTY, **result, "submission": task["submission"], "file": task["file"],
            "notes": list(result.get("notes", []))}


def load_data(data_dir):
    """(Data: the test set and the first TRAIN_IMAGES training images, shared by the workers; the whole training
    set, (images, labels), from which the code's hidden tests take their slices)."""
    from grading.grader import Data

    test_images, test_labels = load_mnist("test", data_dir)
    train_images, train_labels = load_mnist("train", data_dir)
    return Data(test_images, test_labels, train_images[:TRAIN_IMAGES].copy(),
                train_labels[:TRAIN_IMAGES].copy()), (train_images, train_labels)


def run_tasks(tasks, data, args):
    """{task index: result}, graded in the worker pool with a progress bar on the terminal."""
    from tqdm import tqdm

    from grading.grader import grade_file, prepare
    from grading.workers import WorkerPool

    tqdm.monitor_interval = 0  # no monitor thread: the pool forks replacement workers while the bar runs
    indexed = [{**task, "index": i} for i, task in enumerate(tasks)]
    pool = WorkerPool(lambda task: grade_file(task, data), args.processes, args.timeout, args.memory_mb, prepare)
    results = {}
    with tqdm(total=len(tasks), desc="grading", unit="file", disable=True if args.quiet else None,
              mininterval=0.5) as bar:
        for task, result in pool.map(indexed):
            results[task["index"]] = result
            bar.update(1)
    return results

