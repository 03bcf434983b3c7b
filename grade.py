"""Grade a whole class's submitted models in one command: one CSV for the gradebook.

    python grade.py submissions/                    # -> graded/grades.csv, scores.csv, summary.md, histogram.png
    python grade.py submissions/ --out grades-pa1 --gradescope    # + grades-pa1/gradescope/<student>/results.json
    python grade.py submissions/ --timeout 60 --memory-mb 1024    # tighter limits per file
    python grade.py submissions/ --original ~/pa1/original        # where the original report's two pickles are

Each subfolder of SUBMISSIONS is one submission, and so is a model file directly inside it; every .pkl,
.pickle, .npz, .npy, .pt and .pth in a submission is graded, whatever its name. Which of the four models a file
holds is told from its arrays' shapes (grading/identify.py); it is read without running anything in it
(grading/loaders.py), in a worker process of its own with a time and memory limit (grading/workers.py), and
evaluated on the 10,000 MNIST test images with this kit's models, as `--eval-only` does (grading/evaluate.py).
Copies, among the submissions and of the kit's reference/ checkpoints and the original's weights, are flagged
(grading/gradebook.py). Nothing is written into SUBMISSIONS. The exit code is 0 whenever the batch ran,
whatever the rows say; 2 for a bad command line or folder, 1 when MNIST cannot be loaded. See docs/grading.md.
"""

import sys

from common.cli import run_main
from grading.cli import main

if __name__ == "__main__":
    sys.exit(run_main(main, "grade.py"))
