"""Where a NumPy training step spends its time: forward and backward of every layer, one table.

    python benchmarks/profile_layers.py                      # the CNN, batch 16, 300 steps on MNIST
    python benchmarks/profile_layers.py --layers textbook            # cnn_numpy.py's readable layers
    python benchmarks/profile_layers.py --model mlp --batch-size 32
    python benchmarks/profile_layers.py --code-dir /path/to/older/checkout   # the same table for other code
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_layers.py --clock cpu  # steady numbers on a busy machine

Each layer's forward and backward are wrapped with a timer; the loss, the optimizer step and the loop
itself are timed as "rest". Shares are of the whole step, so the table says what is worth speeding up.
"""

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits


def timed(method, key, totals, clock):
    def wrapper(*args):
        start = clock()
        result = method(*args)
        totals[key] += clock() - start
        return result
    return wrapper


def profile(model, loss_fn, optimizer, images, labels, batch_size, steps, clock=time.perf_counter, blocks=5,
            warmup=20):
    """Seconds per step for each (layer index, layer name, "forward"/"backward"), plus "step" for the whole.

    The steps run in ``blocks`` blocks and each entry keeps its fastest block: on a shared machine a
    neighbour's burst then inflates one block, not the table.
    """
    totals = defaultdict(float)
    for i, layer in enumerate(model.layers):
        for phase in ("forward", "backward"):
            setattr(layer, phase, timed(getattr(layer, phase), (i, type(layer).__name__, phase), totals, clock))
    per_block = max(steps // blocks, 1)
    best = defaultdict(lambda: math.inf)
    for block in range(-1, blocks):  # block -1 warms up caches and allocator
        totals.clear()
        start = clock()
        for step in range(warmup if block < 0 else per_block):
            lo = ((block * per_block + step) % (len(images) // batch_size)) * batch_size
            x, y = images[lo:lo + batch_size], labels[lo:lo + batch_size]
            loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            optimizer.step()
        totals["step"] = clock() - start
        if block >= 0:
            for key, seconds in totals.items():
                best[key] = min(best[key], seconds / per_block)
    return dict(best)


def print_table(per_step):
    step = per_step.pop("step")
    print("| layer | forward ms | backward ms | share of step |")
    print("|---|---|---|---|")
    layers = sorted({key[:2] for key in per_step})
    for i, name in layers:
        f, b = per_step.get((i, name, "forward"), 0), per_step.get((i, name, "backward"), 0)
        print(f"| {i} {name} | {f * 1e3:.3f} | {b * 1e3:.3f} | {(f + b) / step:.0%} |")
    rest = step - sum(per_step.values())
    print(f"| loss, SGD step, loop | | | {rest / step:.0%} |")
    print(f"| **whole step** | | | {step * 1e3:.2f} ms |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn", help="which NumPy model (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="(default: %(default)s)")
    p.add_argument("--steps", type=int, default=300, help="timed training steps (default: %(default)s)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time; cpu: this thread's CPU time, steady on a busy machine but blind to "
                        "BLAS worker threads, so use it with OPENBLAS_NUM_THREADS=1 (default: %(default)s)")
    p.add_argument("--code-dir", default=str(Path(__file__).resolve().parent.parent),
                   help="checkout whose cnn_numpy.py / nn_numpy.py to profile (default: this one)")
    p.add_argument("--layers", choices=["fast", "textbook"], default="fast",
                   help="the CNN's layers: fast_cnn/ or cnn_numpy.py's (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DIR, then ./data)")
    args = p.parse_args()
    sys.path.insert(0, args.code_dir)
    import nn_numpy
    from common.data import load_splits

    x_train, y_train, _, _ = load_splits(args.data_dir, args.batch_size * args.steps)
    rng = np.random.default_rng(0)
    if args.model == "cnn":
        if args.layers == "textbook":
            import cnn_numpy as layers
        else:
            from fast_cnn import layers
        model, images = layers.cnn(rng), x_train.reshape(-1, 1, 28, 28)
    else:
        model, images = nn_numpy.mlp(rng), x_train
    with threadpool_limits(1, user_api="blas"):  # as the scripts train
        per_step = profile(model, nn_numpy.SoftmaxCrossEntropy(), nn_numpy.SGD(model, 0.01), images, y_train,
                           args.batch_size, args.steps, time.perf_counter if args.clock == "wall" else time.thread_time)
    print(f"# {args.model}, batch {args.batch_size}, {args.steps} steps, {args.clock} clock, code from {args.code_dir}")
    print_table(per_step)


if __name__ == "__main__":
    sys.exit(main())
