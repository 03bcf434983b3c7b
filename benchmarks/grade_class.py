"""A class of 100 students' code graded by grade.py, each in its sandbox: the issue's target is 10 minutes on 2 cores.

    python benchmarks/grade_class.py                         # 100 students, --processes 2 (a few minutes)
    python benchmarks/grade_class.py --students 20           # a quick look
    python benchmarks/grade_class.py --original ../shared/original     # also time the original's loop code alone
    python benchmarks/grade_class.py --lms                   # the tests' LMS export of 30 zips, with the deadline,
                                                             # copies and reports (tests/lms_class.py)

The class is made from the kit's own nn_numpy.py and cnn_numpy.py: a correct copy, then each of the six mutants
of tests/mutants.py in turn (ReLU backward unmasked, dW not summed, cross-entropy gradient without 1/N, conv dx
unflipped, max-pool backward to every position, SGD adding the gradient), so every student's code runs every
part. Printed: the wall time of the whole `python grade.py CLASS --processes N --quiet` (MNIST loading and the
outputs included), seconds per student (the feedback's "Graded ... in N s": one student's sandboxes, judging
included),
and whether each mutant failed its own part. With --original, the original's code (loop-based convolution) is
graded alone, once, and its seconds printed: loop code runs at its own speed. With --lms, the class of
tests/test_lms.py instead (30 zips: unpacking, --due/--times, copydetect, the PDF reports read and rendered).
"""

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from lms_class import DUE  # noqa: E402
from lms_class import build_class as build_lms_class  # noqa: E402
from mutants import MUTANTS, write_student  # noqa: E402

ORIGINAL = ("nn_pure_python.py", "cnn_pure_python.py", "nn_framework.py", "cnn_framework.py", "dataset-dataloader.py",
            "run_all.py")


def build_class(folder, students):
    kinds = [None, *MUTANTS]
    for i in range(students):
        kind = kinds[i % len(kinds)]
        write_student(folder / f"PA1_{1000 + i}_{kind or 'correct'}", mutant=kind)
    return [kinds[i % len(kinds)] for i in range(students)]


def grade(folder, out, processes, *extra):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "grade.py"), str(folder), "--out", str(out), "--processes",
                             str(processes), "--quiet", *map(str, extra)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"grade_class.py: grade.py failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def student_seconds(out):
    """{student_id: seconds} from each feedback page's last line."""
    return {page.stem: float(re.search(r"Graded \S+ in ([\d.]+) s", page.read_text(encoding="utf-8")).group(1))
            for page in (Path(out) / "feedback").glob("*.html")
            if re.search(r"Graded \S+ in ([\d.]+) s", page.read_text(encoding="utf-8"))}


def lms(tmp, processes):
    expected, times = build_lms_class(tmp / "class", tmp / "handout")
    with open(tmp / "times.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("student_id", "submitted_at"), *times])
    wall = grade(tmp / "class", tmp / "out", processes, "--due", DUE, "--times", tmp / "times.csv",
                 "--boilerplate", tmp / "handout")
    seconds = sorted(student_seconds(tmp / "out").values())
    rows = read(tmp / "out" / "scores.csv")
    print(f"{len(rows)} submissions ({len(expected)} built), --processes {processes}: {wall:.1f} s wall; code per "
          f"student {seconds[len(seconds) // 2]:.1f} s median, {seconds[-1]:.1f} s max; {os.cpu_count()} CPUs")


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=100)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--original", default=None, help="folder of the original's code, graded alone once")
    p.add_argument("--lms", action="store_true", help="grade the tests' LMS export of 30 zips instead")
    args = p.parse_args()
    if not os.environ.get("MNIST_DIR"):
        sys.exit("grade_class.py: set MNIST_DIR to the folder of the four MNIST files")
    tmp = Path(tempfile.mkdtemp(prefix="grade-class-"))
    try:
        if args.lms:
            return lms(tmp, args.processes)
        kinds = build_class(tmp / "class", args.students)
        wall = grade(tmp / "class", tmp / "out", args.processes)
        modules = read(tmp / "out" / "modules.csv")
        seconds = sorted(student_seconds(tmp / "out").values())
        print(f"{args.students} students, --processes {args.processes}: {wall:.0f} s wall ({wall / 60:.1f} min); "
              f"per student {seconds[len(seconds) // 2]:.1f} s median, {seconds[-1]:.1f} s max; "
              f"{os.cpu_count()} CPUs")
        for kind in MUTANTS:
            ids = [str(1000 + i) for i, k in enumerate(kinds) if k == kind]
            ok = all(any(r["student_id"] == s and r["part"] == MUTANTS[kind].part and r["verdict"] == "fail"
                         for r in modules) for s in ids)
            print(f"  {kind}: {len(ids)} students, {MUTANTS[kind].part} failed in {'all' if ok else 'NOT all'}")
        if args.original:
            folder = tmp / "original" / "PA1_1_original"
            folder.mkdir(parents=True)
            for name in ORIGINAL:
                shutil.copy(Path(args.original) / name, folder / name)
            wall = grade(folder.parent, tmp / "out-original", 1)
            row = read(tmp / "out-original" / "scores.csv")[0]
            alone = student_seconds(tmp / "out-original")["1"]
            print(f"the original's code alone: {alone:.1f} s for the student ({wall:.0f} s for grade.py), "
                  f"{row['code_points']} of {row['max_points']} points")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
