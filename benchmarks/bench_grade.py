"""Time grade.py over a generated class of MLP submissions (issue 28: 100 files in under 2 minutes).

    python benchmarks/bench_grade.py                 # 100 submissions, one MLP file each, 2 workers
    python benchmarks/bench_grade.py --files 30 --processes 1

Each submission holds one MLP in one of the formats students save (pickles of protocols 2, 4 and 5, .npz,
a PyTorch state_dict, weights as (in, out) or (out, in)), with random weights of its own. The class is written
to a temporary folder and graded by `python grade.py` as an instructor runs it, MNIST, PyTorch and the
reference checks included; the wall-clock time of that command is printed.
"""

import argparse
import io
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(784, 128), (128,), (128, 64), (64,), (64, 10), (10,)]


def write_submission(folder, i):
    """Submission ``i``: one MLP file, its format chosen by i."""
    rng = np.random.default_rng(i)
    params = [rng.standard_normal(shape) * 0.05 for shape in SHAPES]
    folder.mkdir(parents=True)
    kind = i % 5
    if kind < 3:
        names = ["layer1_W", "layer1_b", "layer2_W", "layer2_b", "layer3_W", "layer3_b"]
        data = dict(zip(names, params), train_losses=[0.3, 0.1], test_losses=[0.2, 0.1])
        (folder / "model.pkl").write_bytes(pickle.dumps(data, protocol=(2, 4, 5)[kind]))
    elif kind == 3:
        names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
        np.savez(folder / "model.npz", **{n: (p.T if p.ndim == 2 else p).astype(np.float32)
                                          for n, p in zip(names, params)})
    else:
        import torch

        names = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
        state = {n: torch.from_numpy(np.ascontiguousarray(p.T if p.ndim == 2 else p).astype(np.float32))
                 for n, p in zip(names, params)}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        (folder / "model.pt").write_bytes(buffer.getvalue())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100, help="submissions in the class (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=2, help="grade.py --processes (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        submissions = Path(tmp) / "class"
        for i in range(args.files):
            write_submission(submissions / f"student{i:03d}", i)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(ROOT / "grade.py"), str(submissions), "--out",
                                 str(Path(tmp) / "graded"), "--processes", str(args.processes), "--quiet"],
                                cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"bench_grade.py: grade.py failed: {result.stderr.strip()}")
        rows = (Path(tmp) / "graded" / "grades.csv").read_text().count("\n") - 1
    print(result.stdout.strip())
    print(f"bench_grade.py: {args.files} MLP submissions ({rows} rows) graded in {seconds:.1f} s with "
          f"{args.processes} worker(s), the whole command")


if __name__ == "__main__":
    main()
