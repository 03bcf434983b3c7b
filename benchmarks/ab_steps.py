"""Two checkouts of the NumPy models side by side: their training steps alternated in blocks, in the same minutes.

    git worktree add /tmp/before HEAD~1                       # the code to compare against
    python benchmarks/ab_steps.py --old /tmp/before           # the CNN, batch 16, one process (two pieces of 8)
    python benchmarks/ab_steps.py --old /tmp/before --processes 2 --batch-size 32   # as cnn_numpy.py runs
    python benchmarks/ab_steps.py --old /tmp/before --model mlp --batch-size 32
    git worktree remove /tmp/before

Why: this machine's speed wanders by 10-30% from one minute to the next, so two separate runs (or two
profile_layers.py tables) cannot tell a 5% change. Here both versions train in the same process (and, with
--processes 2, each with its own worker), 50 steps of one, then 50 of the other, the order swapped every
block, on the same batches. Prints the median milliseconds per image of each over the blocks, their ratio,
and whether their weights after the same steps are bit for bit the same (if not, the change altered some
rounding, and the committed reproduction must be redone).
"""

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OWN = ("nn_numpy", "cnn_numpy", "common", "fast_cnn")


def load(code_dir, tag):
    """(build_cnn, nn_numpy, make_halves, one_blas_thread) of the checkout in ``code_dir``, its modules under names prefixed by
    ``tag`` in sys.modules, so that two checkouts live side by side in one process. make_halves(model, images,
    labels, processes) -> a Halves; checkouts from before fast_cnn/ (common/halves.py) work too."""
    def own(name):
        return name in OWN or name.startswith(("common.", "fast_cnn."))
    for name in [n for n in sys.modules if own(n)]:
        del sys.modules[name]
    sys.path.insert(0, str(code_dir))
    try:
        import cnn_numpy
        import nn_numpy
        if (Path(code_dir) / "fast_cnn").is_dir():
            from fast_cnn import halves, layers
            build = layers.cnn
            make_halves = lambda model, images, labels, processes: halves.Halves(  # noqa: E731
                model, images, labels, [], processes)
        else:  # the layout before fast_cnn/
            from common import halves
            build = cnn_numpy.cnn
            make_halves = lambda model, images, labels, processes: halves.Halves(  # noqa: E731
                model, nn_numpy.SoftmaxCrossEntropy(), images, labels, [], None, processes)
        one_thread = getattr(nn_numpy, "one_blas_thread", None) or getattr(nn_numpy, "blas_threads", None)
        if one_thread is None:  # where the run harness keeps it: common/harness_numpy.py, earlier harness.py
            try:
                from common.harness_numpy import one_blas_thread as one_thread
            except ImportError:
                one_thread = importlib.import_module("harness").one_blas_thread
    finally:
        sys.path.remove(str(code_dir))
    for name in [n for n in sys.modules if own(n)]:
        sys.modules[tag + name] = sys.modules.pop(name)
    return build, nn_numpy, make_halves, one_thread


def trainer(modules, args, images, labels, stack):
    """A function run(first_step, steps) that trains ``steps`` batches of the model of ``modules``."""
    build_cnn, nn_numpy, make_halves, one_thread = modules
    if args.model == "cnn":
        model, images = build_cnn(np.random.default_rng(0)), images.reshape(-1, 1, 28, 28)
    else:
        model = nn_numpy.mlp(np.random.default_rng(0))
    loss_fn, optimizer = nn_numpy.SoftmaxCrossEntropy(), nn_numpy.SGD(model, args.lr)
    split = None
    if args.model == "cnn":
        split = make_halves(model, images, labels, args.processes)
        stack.append(split.__enter__())
    order = np.random.default_rng(0).permutation(len(images))
    per_epoch = len(images) // args.batch_size

    def run(first, steps):
        with one_thread():
            for step in range(first, first + steps):
                start = (step % per_epoch) * args.batch_size
                batch = order[start:start + args.batch_size]
                if split is not None:
                    split.step(batch)
                else:
                    loss_fn.forward(model.forward(images[batch]), labels[batch])
                    model.backward(loss_fn.backward())
                optimizer.step()
    return model, run


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, type=Path, help="the checkout to compare against (e.g. a git worktree)")
    p.add_argument("--new", default=ROOT, type=Path, help="the other checkout (default: this one)")
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    p.add_argument("--batch-size", type=int, default=16,
                   help="default: %(default)s, the report's; the NumPy CNN computes it as two halves of one piece each")
    p.add_argument("--processes", type=int, choices=[1, 2], default=1,
                   help="the NumPy CNN's halves in one process or two (default: %(default)s)")
    p.add_argument("--blocks", type=int, default=40, help="blocks of each version (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="steps per block (default: %(default)s)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DIR, then ./data)")
    args = p.parse_args()
    for checkout in (args.old, args.new):
        if not (checkout / "cnn_numpy.py").is_file():
            p.error(f"{checkout} holds no cnn_numpy.py; give the folder of a checkout of this kit")
    from threadpoolctl import threadpool_limits
    threadpool_limits(1, user_api="blas")  # as the scripts run: one BLAS thread per process
    sys.path.insert(0, str(ROOT))
    from common.data import load_splits
    images, labels, _, _ = load_splits(args.data_dir)
    sys.path.remove(str(ROOT))
    versions = {"old": load(args.old, "old_"), "new": load(args.new, "new_")}
    stack, runs, models = [], {}, {}
    try:
        for name, modules in versions.items():
            models[name], runs[name] = trainer(modules, args, images, labels, stack)
            runs[name](0, args.steps)  # warm-up: caches, allocator, the worker's first steps
        times = {"old": [], "new": []}
        for block in range(args.blocks):
            for name in ("old", "new") if block % 2 == 0 else ("new", "old"):
                start = time.perf_counter()
                runs[name](args.steps * (block + 1), args.steps)
                times[name].append((time.perf_counter() - start) / args.steps / args.batch_size * 1e3)
    finally:
        for split in stack:
            split.close()
    same = all(np.array_equal(getattr(a, n), getattr(b, n))
               for (a, n), (b, _) in zip(models["old"].parameters(), models["new"].parameters()))
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"{args.model}, batch {args.batch_size}, {args.processes} process(es), {args.blocks} blocks of "
          f"{args.steps} steps each: old {old:.4f} ms/image, new {new:.4f} ms/image (medians), new/old "
          f"{new / old:.3f}; weights after the same steps bit-identical: {'yes' if same else 'no'}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from common.cli import run_main
    sys.exit(run_main(main, "ab_steps.py"))
