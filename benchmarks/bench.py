"""Training-epoch speed of the NumPy models against their PyTorch twins, measured side by side in one run.

    python benchmarks/bench.py                   # full epochs, 3 interleaved rounds (a few minutes)
    python benchmarks/bench.py --steps 300       # time 300 batches per round instead of whole epochs
    python benchmarks/bench.py --threads 1 --processes 1   # NumPy's BLAS and PyTorch on one thread, one process

Each round trains one epoch (or --steps batches) of the NumPy model, then of the PyTorch one, through the
scripts' own train_epoch functions, as the scripts run them (the NumPy CNN as two halves per batch in two
processes, PyTorch on its default threads); the order alternates between rounds, and the fastest round of each
counts, so a noisy neighbour on a shared machine hurts both sides alike. Each model's efficiency is its
analytic training FLOPs per epoch / its epoch time / the float32 matrix-product throughput of this machine,
measured in the same run (np.matmul of 2048x2048 matrices): how close it comes to the machine's own limit.
Also timed: the naive convolution of the report (Python loops over images, channels and output pixels) on
a few batches, to show what vectorising bought. Timings live here, never in unit tests.
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
import nn_numpy  # noqa: E402
import nn_torch  # noqa: E402
from common.cli import run_main  # noqa: E402
from common.data import load_splits  # noqa: E402
from common.halves import default_processes  # noqa: E402
from common.run import EpochProgress  # noqa: E402


def numpy_trainer(build, lr, images, labels, batch_size, n, cleanup, processes=None, seed=0):
    """processes: as the script runs it (cnn_numpy.py: two halves per batch, default_processes()), or None
    for whole batches in one process (nn_numpy.py). ``cleanup`` (an ExitStack) ends the worker, if any."""
    rng = np.random.default_rng(seed)
    model = build(rng)
    loss_fn, optimizer = nn_numpy.SoftmaxCrossEntropy(), nn_numpy.SGD(model, lr)
    images, labels = images[:n], labels[:n]
    halves = cleanup.enter_context(nn_numpy.batch_halves(model, loss_fn, (images, labels, images, labels),
                                                         processes))

    def epoch():
        progress = EpochProgress(1, 1, math.ceil(n / batch_size), quiet=True, lr=lr)
        nn_numpy.train_epoch(model, loss_fn, optimizer, images, labels, batch_size, rng, progress, halves)
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
        nn_torch.train_epoch(model, loss_fn, optimizer, x, y, batch_size, rng, progress)
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
        if isinstance(layer, (cnn_numpy.Conv2d, nn_numpy.Linear)):
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


# --- the report's convolution: Python loops over images, channels and output pixels -------------------------

def naive_conv_forward(x, W, b, padding):
    n_images, channels, h, w = x.shape
    out_channels, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n_images, out_channels, h + 2 * padding - k + 1, w + 2 * padding - k + 1), x.dtype)
    for n in range(n_images):
        for o in range(out_channels):
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    out[n, o, i, j] = np.sum(xp[n, :, i:i + k, j:j + k] * W[o]) + b[o]
    return out


def naive_conv_backward(x, W, dout, padding):
    n_images, _, h, w = x.shape
    k = W.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    for n in range(n_images):
        for o in range(W.shape[0]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    g = dout[n, o, i, j]
                    dW[o] += g * xp[n, :, i:i + k, j:j + k]
                    dxp[n, :, i:i + k, j:j + k] += g * W[o]
    return dxp[:, :, padding:padding + h, padding:padding + w], dW, dout.sum(axis=(0, 2, 3))


def conv_layers_time(images, batch_size, batches, naive):
    """Seconds per batch for both convolutions of the CNN, forward and backward, naive or vectorised."""
    rng = np.random.default_rng(0)
    convs = [cnn_numpy.Conv2d(1, 16, 3, 1, rng), cnn_numpy.Conv2d(16, 32, 3, 1, rng)]
    inputs = [images[:batch_size].reshape(-1, 1, 28, 28),
              rng.random((batch_size, 16, 14, 14), dtype=np.float32)]
    start = time.perf_counter()
    for _ in range(batches):
        for conv, x in zip(convs, inputs):
            if naive:
                out = naive_conv_forward(x, conv.W, conv.b, 1)
                naive_conv_backward(x, conv.W, np.ones_like(out), 1)
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
    p.add_argument("--naive-batches", type=int, default=2,
                   help="batches timed with the naive convolution (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DIR, then ./data)")
    args = p.parse_args()
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
    print("| pair | batch | GFLOP/epoch | NumPy s/epoch | PyTorch s/epoch | NumPy / PyTorch | NumPy eff. "
          "| PyTorch eff. |")
    print("|---|---|---|---|---|---|---|---|")
    adam = lambda ps: torch.optim.Adam(ps, 1e-3)  # noqa: E731
    momentum = lambda ps: torch.optim.SGD(ps, 0.01, momentum=0.9)  # noqa: E731
    trainers = {
        "mlp numpy": lambda bs, n, stack: numpy_trainer(nn_numpy.mlp, 0.1, x_train, y_train, bs, n, stack),
        "mlp torch": lambda bs, n, stack: torch_trainer(nn_torch.mlp, momentum, x_train, y_train, bs, n),
        "cnn numpy": lambda bs, n, stack: numpy_trainer(cnn_numpy.cnn, 0.01, images, y_train, bs, n, stack,
                                                        args.processes),
        "cnn numpy, 1 process": lambda bs, n, stack: numpy_trainer(cnn_numpy.cnn, 0.01, images, y_train, bs, n,
                                                                   stack, 1),
        "cnn torch": lambda bs, n, stack: torch_trainer(cnn_torch.cnn, adam, images, y_train, bs, n,
                                                        memory_format=torch.channels_last),
        "cnn torch, NCHW": lambda bs, n, stack: torch_trainer(cnn_torch.cnn, adam, images, y_train, bs, n),
    }
    flops = {"MLP": training_flops_per_image(nn_numpy.mlp(np.random.default_rng(0)), (784,)) * len(x_train),
             "CNN": training_flops_per_image(cnn_numpy.cnn(np.random.default_rng(0)), (1, 28, 28)) * len(x_train)}
    rows = [("MLP", 32, "mlp numpy", "mlp torch"),
            (f"CNN ({args.processes} processes)", 16, "cnn numpy", "cnn torch"),
            (f"CNN ({args.processes} processes)", 32, "cnn numpy", "cnn torch"),
            ("CNN, NumPy in 1 process", 16, "cnn numpy, 1 process", "cnn torch"),
            ("CNN, PyTorch in plain NCHW layout", 16, "cnn numpy", "cnn torch, NCHW")]
    for name, batch_size, numpy_name, torch_name in rows:
        n = len(x_train) if args.steps is None else min(len(x_train), args.steps * batch_size)
        with contextlib.ExitStack() as stack:
            t_numpy, t_torch = race("numpy", trainers[numpy_name](batch_size, n, stack),
                                    "torch", trainers[torch_name](batch_size, n, stack), args.rounds)
        scale = len(x_train) / n
        epoch_flops = flops[name[:3]]
        print(f"| {name} | {batch_size} | {epoch_flops / 1e9:.1f} | {t_numpy * scale:.2f} | {t_torch * scale:.2f} | "
              f"{t_numpy / t_torch:.2f} | {epoch_flops / (t_numpy * scale) / gemm:.0%} | "
              f"{epoch_flops / (t_torch * scale) / gemm:.0%} |", flush=True)

    naive = conv_layers_time(x_train, 16, args.naive_batches, naive=True)
    fast = conv_layers_time(x_train, 16, 50, naive=False)
    steps = len(x_train) // 16
    print(f"\nCNN convolutions (forward + backward, both layers), batch 16: naive loops {naive:.2f} s/batch "
          f"(= {naive * steps / 3600:.1f} h per epoch), vectorised {fast * 1e3:.2f} ms/batch "
          f"(= {fast * steps:.1f} s per epoch): {naive / fast:,.0f}x faster")


if __name__ == "__main__":
    sys.exit(run_main(main, "bench.py"))
