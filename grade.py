"""Grade a whole class in one command: the code each student hands in, module part by part, and any weights.

    python grade.py CLASS/                           # -> graded/: scores.csv, modules.csv, feedback/, ...
    python grade.py CLASS/ --config pa1.toml         # your rubric: points, tolerances, limits, per-student pointers
    python grade.py CLASS/ --processes 2 --out pa1   # two students' sandboxes at a time
    python grade.py CLASS/ --no-sandbox              # only where bwrap cannot start: every feedback says so
    python grade.py submissions/ --weights-only --gradescope   # the weight files alone: grades.csv, scores.csv, ...
    python grade.py submissions/ --timeout 60 --memory-mb 1024 # tighter limits per weight file

Each subfolder of CLASS is one student (PA1_<id>_<name>). Their code is loaded (definitions only) and probed in a
bubblewrap sandbox, each module found whatever its names (grading/inside/), its raw arrays judged outside
against float64 references on inputs from the class's secret seed (grading/code_checks.py, code_grade.py),
points from grading/grading.toml. Every .pkl, .pickle, .npz, .npy, .pt and .pth handed in is graded too, read
without running anything in it (grading/loaders.py), in a worker with a time and memory limit
(grading/workers.py), evaluated on the 10,000 MNIST test images as `--eval-only` does (grading/evaluate.py),
copies flagged (grading/gradebook.py). Where no folder holds a .py file, only weights are graded. Nothing is
written into CLASS. The exit code is 0 whenever the batch ran, whatever the rows say; 2 for a bad command line,
folder, rubric or a sandbox that cannot start; 1 when MNIST cannot be loaded. See docs/grading.md.
"""

import sys

from common.cli import run_main
from grading.cli import main

if __name__ == "__main__":
    sys.exit(run_main(main, "grade.py"))
