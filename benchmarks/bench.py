"""Training-epoch speed of the NumPy models against their PyTorch twins, measured side by side in one run.

    python benchmarks/bench.py                   # full epochs, 3 interleaved rounds (a few minutes)
    python benchmarks/bench.py --steps 300       # time 300 batches per round instead of whole epochs
    python benchmarks/bench.py --threads 1 --processes 1   # NumPy's BLAS and PyTorch on one thread, one process

Each round trains one epoch (or --steps batches) of the NumPy model, then of the PyTorch one, through the scripts'
own train_epoch functions, as the scripts run them (PyTorch on its default threads); the order alternates between
rounds, and the fastest round of each counts, so a noisy neighbour on a shared machine hurts both sides alike. The
NumPy MLP is timed in float64 (nn_numpy.py's default, N(0, 0.1^2) weights) and in float32 (--dtype float32), each
against nn_torch's SGD with momentum. The NumPy CNN is timed on each of its paths: cnn_numpy.py's textbook layers
(whole batches, one process; timed on --textbook-steps batches and scaled to the epoch), then fast_cnn/'s layers
in one process, then as two halves in two processes, as cnn_numpy.py runs by default; "× textbook" is each path's
speed-up over the textbook one at that batch size. Each model's efficiency is its analytic training FLOPs per
epoch / its epoch time / the float32 matrix-product throughput of this machine, measured in the same run
(np.matmul of 2048x2048 matrices): how close it comes to the machine's own limit. Also timed: the naive
convolution of the report (Python loops over images, channels and output pixels, cnn_numpy.conv_forward_loops) on
a few batches, beside both convolution layers. Timings live here, never in unit tests.
"""

import argparse
import contextlib
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cnn_numpy  # noqa: E402
import cnn_torch  # noqa: E402
import fast_cnn  # noqa: E402
import nn_numpy  # noqa: E402
import nn_torch  # noqa: E402
from cnn_numpy import conv_backward_loops, conv_forward_loops  # noqa: E402
from common.cli import run_main  # noqa: E402
from common.data import load_splits  # noqa: E402
from common.run import EpochProgress  # noqa: E402
from fast_cnn import layers as fast_layers  # noqa: E402
from fast_cnn.halves import Halves, default_processes  # noqa: E402
from common.harness_numpy import one_blas_thread  # noqa: E402


def numpy_trainer(build, lr, images, labels, batch_size, n, cleanup, processes=None, seed=0):
    """processes: as cnn_numpy.py --layers fast runs it (two halves per batch, default_processes()), or None
    for whole batches in one process (nn_numpy.py, cnn_numpy.py --layers textbook). ``cleanup`` (an ExitStack)
    ends the worker, if any, and restores the BLAS threads."""
    rng = np.random.default_rng(seed)
    model = build(rng)
    loss_fn, optimizer = nn_numpy.SoftmaxCrossEntropy(), nn_numpy.SGD(model, lr)
    images, labels = images[:n], labels[:n]
    cleanup.enter_context(one_blas_thread())  # as harness_numpy.fit() does
    halves = None if processes is None else cleanup.enter_context(Halves(model, images, labels, [], processes))

    def epoch():
        progress = EpochProgress(1, 1, math.ceil(n / batch_size), quiet=True, lr=lr)
        order = rng.permutation(n)
        if halves is None:
            nn_numpy.train_epoch(model, loss_fn, optimizer, images, labels, batch_size, order, progress)
        else:
            fast_cnn.train_epoch(halves, optimizer, batch_size, order, progress)
    return epoch


def torch_trainer(build, make_optimizer, images, labels, batch_size, n, seed=0, memory_format=None):
    """memory_format: as the script sets it (cnn_torch.py: channels_last), or None for plain NCHW."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build() if memory_format is None else build().to(memory_format=memory_format)
    loss_fn, optimizer = torch.nn.CrossEntropyLoss(), make_optimizer(model.parameters())
    x, y = torch.from_numpy(images[:n]), torch.from_numpy(labels[:n])

    def epoch():
        progress = EpochProgress(1, 1, math.ceil(n / batch_size), quiet=True, lr=0)
        nn_torch.train_epoch(model, loss_fn, optimizer, x, y, batch_size, rng.permutation(n), progress)
    return epoch


def gemm_flops_per_second(size=2048, repeats=5):
    """float32 np.matmul throughput, fastest of ``repeats``: the machine's practical limit for this work."""
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size), dtype=np.float32), rng.random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    best = math.inf
    for _ in range(repeats + 1):  # the first warms up
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def training_flops_per_image(model, image_shape):
    """Multiply-adds x 2 of one training step per image: forward, weight gradient, and input gradient where a
    layer computes one. Elementwise work (ReLU, pooling, softmax, the update) is not counted. The PyTorch
    twins have the same layers, so the NumPy model's count is theirs too."""
    x = np.zeros((1,) + image_shape, dtype=np.float32)
    flops = 0
    for layer in model.layers:
        out = layer.forward(x)
        if isinstance(layer, (fast_layers.Conv2d, nn_numpy.Linear)):
            forward = 2 * layer.W.size * (out.shape[2] * out.shape[3] if out.ndim == 4 else 1)
            flops += forward * (3 if layer.input_grad else 2)
        x = out
    return flops


def race(name_a, epoch_a, name_b, epoch_b, rounds):
    """Interleaved rounds; returns the fastest time of each."""
    best = {name_a: math.inf, name_b: math.inf}
    for r in range(rounds):
        pair = [(name_a, epoch_a), (name_b, epoch_b)]
        for name, epoch in (pair if r % 2 == 0 else pair[::-1]):
            start = time.perf_counter()
            epoch()
            best[name] = min(best[name], time.perf_counter() - start)
    return best[name_a], best[name_b]


def conv_layers_time(images, batch_size, batches, kind):
    """Seconds per batch for both convolutions of the CNN, forward and backward, with input gradients:
    kind "naive" (cnn_numpy.conv_forward_loops), "textbook" (cnn_numpy.Conv2d) or "fast" (fast_cnn's Conv2d)."""
    rng = np.random.default_rng(0)
    layer = fast_layers.Conv2d if kind == "fast" else cnn_numpy.Conv2d
    convs = [layer(1, 16, 3, 1, rng), layer(16, 32, 3, 1, rng)]
    inputs = [images[:batch_size].reshape(-1, 1, 28, 28),
              rng.random((batch_size, 16, 14, 14), dtype=np.float32)]
    start = time.perf_counter()
    with one_blas_thread():
        for _ in range(batches):
            for conv, x in zip(convs, inputs):
                if kind == "naive":
                    out = conv_forward_loops(x, conv.W, conv.b, 1)
                    conv_backward_loops(x, conv.W, np.ones_like(out), 1)
                else:
                    out = conv.forward(x)
                    conv.backward(np.ones_like(out))
    return (time.perf_counter() - start) / batches


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per pair (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None,
                   help="batches per round instead of a whole epoch (default: whole epochs)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for NumPy's BLAS and for PyTorch (default: each library's own, as the scripts "
                        "run)")
    p.add_argument("--processes", type=int, choices=[1, 2], default=default_processes(),
                   help="processes for the NumPy CNN's two halves of each batch (default: cnn_numpy.py's, "
                        "%(default)s here)")
    p.add_argument("--textbook-steps", type=int, default=400,
                   help="batches per round for the textbook CNN and its PyTorch twin, scaled to an epoch "
                        "(default: %(default)s; 0 for whole epochs)")
    p.add_argument("--naive-batches", type=int, default=2,
                   help="batches timed with the naive convolution (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DIR, then ./data)")
    args = p.parse_args()
    args.textbook_steps = args.textbook_steps or args.steps
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads, user_api="blas"):
        run(args)


def run(args):
    x_train, y_train, _, _ = load_splits(args.data_dir)
    images = x_train.reshape(-1, 1, 28, 28)
    blas_threads = ", ".join(str(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas")
    gemm = gemm_flops_per_second()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, NumPy {np.__version__} ({blas_threads} BLAS threads), PyTorch "
          f"{torch.__version__} ({torch.get_num_threads()} threads); fastest of {args.rounds} interleaved rounds")
    print(f"# float32 matrix product (np.matmul, 2048x2048): {gemm / 1e9:.0f} GFLOP/s")
    print("| model, path | batch | GFLOP/epoch | NumPy s/epoch | PyTorch s/epoch | NumPy / PyTorch | × textbook "
          "| NumPy eff. | PyTorch eff. |")
    print("|---|---|---|---|---|---|---|---|---|")
    adam = lambda ps: torch.optim.Adam(ps, 1e-3)  # noqa: E731
    momentum = lambda ps: torch.optim.SGD(ps, 0.01, momentum=0.9)  # noqa: E731
    cnn_numpy_path = lambda build, processes: lambda bs, n, stack: numpy_trainer(  # noqa: E731
        build, 0.01, images, y_train, bs, n, stack, processes)
    trainers = {
        "mlp numpy": lambda bs, n, stack: numpy_trainer(nn_numpy.mlp, 0.1, x_train, y_train, bs, n, stack),
        "mlp numpy, float64": lambda bs, n, stack: numpy_trainer(lambda rng: nn_numpy.mlp(rng, np.float64, "normal"),
                                                                 0.1, x_train, y_train, bs, n, stack),
        "mlp torch": lambda bs, n, stack: torch_trainer(nn_torch.mlp, momentum, x_train, y_train, bs, n),
        "textbook": cnn_numpy_path(cnn_numpy.cnn, None),
        "fast, 1 process": cnn_numpy_path(fast_layers.cnn, 1),
        "fast": cnn_numpy_path(fast_layers.cnn, args.processes),
        "cnn torch": lambda bs, n, stack: torch_trainer(cnn_torch.cnn, adam, images, y_train, bs, n,
                                                        memory_format=torch.channels_last),
        "cnn torch, NCHW": lambda bs, n, stack: torch_trainer(cnn_torch.cnn, adam, images, y_train, bs, n),
    }
    flops = {"MLP": training_flops_per_image(nn_numpy.mlp(np.random.default_rng(0)), (784,)) * len(x_train),
             "CNN": training_flops_per_image(fast_layers.cnn(np.random.default_rng(0)), (1, 28, 28)) * len(x_train)}
    fast = f"fast, {args.processes} process{'es' if args.processes > 1 else ''} (default)"
    rows = [("MLP, float64 (nn_numpy.py's default)", 32, "mlp numpy, float64", "mlp torch"),
            ("MLP, float32 (--dtype float32)", 32, "mlp numpy", "mlp torch")]
    for batch_size in (16, 32):
        rows += [("CNN, textbook layers", batch_size, "textbook", "cnn torch"),
                 ("CNN, fast layers, 1 process", batch_size, "fast, 1 process", "cnn torch"),
                 (f"CNN, {fast}", batch_size, "fast", "cnn torch")]
    rows.append((f"CNN, {fast}; PyTorch in plain NCHW", 16, "fast", "cnn torch, NCHW"))
    textbook_seconds = {}
    for name, batch_size, numpy_name, torch_name in rows:
        steps = args.textbook_steps if numpy_name == "textbook" else args.steps
        n = len(x_train) if steps is None else min(len(x_train), steps * batch_size)
        with contextlib.ExitStack() as stack:
            t_numpy, t_torch = race("numpy", trainers[numpy_name](batch_size, n, stack),
                                    "torch", trainers[torch_name](batch_size, n, stack), args.rounds)
        scale = len(x_train) / n
        epoch_flops = flops[name[:3]]
        if numpy_name == "textbook":
            textbook_seconds[batch_size] = t_numpy * scale
        speedup = (f"{textbook_seconds[batch_size] / (t_numpy * scale):.1f}×" if name.startswith("CNN")
                   and batch_size in textbook_seconds else "")
        print(f"| {name} | {batch_size} | {epoch_flops / 1e9:.1f} | {t_numpy * scale:.2f} | {t_torch * scale:.2f} | "
              f"{t_numpy / t_torch:.2f} | {speedup} | {epoch_flops / (t_numpy * scale) / gemm:.0%} | "
              f"{epoch_flops / (t_torch * scale) / gemm:.0%} |", flush=True)

    naive = conv_layers_time(x_train, 16, args.naive_batches, "naive")
    textbook = conv_layers_time(x_train, 16, 50, "textbook")
    tuned = conv_layers_time(x_train, 16, 50, "fast")
    steps = len(x_train) // 16
    print(f"\nCNN convolutions (forward + backward, both layers, input gradients included), batch 16, one process:"
          f"\n  naive loops {naive:.2f} s/batch (= {naive * steps / 3600:.1f} h per epoch)"
          f"\n  textbook (cnn_numpy.Conv2d) {textbook * 1e3:.2f} ms/batch (= {textbook * steps:.1f} s per epoch): "
          f"{naive / textbook:,.0f}x the naive loops"
          f"\n  fast (fast_cnn.layers.Conv2d) {tuned * 1e3:.2f} ms/batch (= {tuned * steps:.1f} s per epoch): "
          f"{naive / tuned:,.0f}x the naive loops, {textbook / tuned:.1f}x the textbook layer")


if __name__ == "__main__":
    sys.exit(run_main(main, "bench.py"))
