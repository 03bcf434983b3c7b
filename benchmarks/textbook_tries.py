"""The textbook layers' alternatives that issue 26 suggested, timed beside the code kept in cnn_numpy.py.

    python benchmarks/textbook_tries.py                 # batch 16, the report's CNN shapes, one BLAS thread
    python benchmarks/textbook_tries.py --batch-size 32 --repeats 400

Each variant computes the same numbers as cnn_numpy.py's layer (checked here before timing, exactly):
- MaxPool2d: the kept four strided views and np.maximum, against windows by reshape and max, with the gradient
  sent to each window's first maximum by a cumulative count of the maxima;
- Conv2d's im2col: the kept k x k slice copies, against np.lib.stride_tricks.sliding_window_view and one copy.
Milliseconds per call (forward, and backward for pooling), fastest of 5 blocks of --repeats calls, variants
interleaved block by block so a noisy neighbour slows both alike.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnn_numpy import Conv2d, MaxPool2d  # noqa: E402
from common.harness_numpy import one_blas_thread  # noqa: E402


def pool_kept(x, dout):
    layer = MaxPool2d()
    y = layer.forward(x)
    return y, layer.backward(dout)


def pool_reshape_max(x, dout):
    """Windows by reshape: (N, C, Ho, 2, Wo, 2) -> max over the two window axes."""
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2)
    y = win.max(axis=(3, 5))
    is_max = win == y[:, :, :, None, :, None]
    # the first maximum in row-major window order: the running count of maxima reaches 1 there
    flat = is_max.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    first = flat & (np.cumsum(flat, axis=-1) == 1)
    dwin = np.where(first, dout[..., None], 0).reshape(n, c, h // 2, w // 2, 2, 2)
    return y, dwin.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w).astype(dout.dtype)


def im2col_sliding(layer, x):
    k, p = layer.k, layer.padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    windows = sliding_window_view(xp, (k, k), axis=(2, 3))  # (N, C, Ho, Wo, k, k), a view
    n, c, ho, wo = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)  # the one copy


def im2col_kept_only(layer, x):
    """The kept im2col alone (Conv2d.forward's first lines), so both sides time the same work."""
    n, c, h, w = x.shape
    k, p = layer.k, layer.padding
    ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    windows = np.empty((n, ho, wo, c, k, k), dtype=x.dtype)
    for u in range(k):
        for v in range(k):
            windows[:, :, :, :, u, v] = xp[:, :, u:u + ho, v:v + wo].transpose(0, 2, 3, 1)
    return windows.reshape(n * ho * wo, c * k * k)


def fastest(calls, repeats):
    """{name: ms per call}, fastest of 5 blocks, the variants interleaved block by block."""
    best = {name: float("inf") for name in calls}
    for _ in range(5):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(repeats):
                call()
            best[name] = min(best[name], (time.perf_counter() - start) / repeats * 1e3)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n = args.batch_size
    print(f"ms per call, batch {n}, fastest of 5 blocks of {args.repeats}")
    with one_blas_thread():
        for c, hw in ((16, 28), (32, 14)):  # the two pooling layers' inputs
            x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
            dout = rng.standard_normal((n, c, hw // 2, hw // 2)).astype(np.float32)
            (y1, dx1), (y2, dx2) = pool_kept(x, dout), pool_reshape_max(x, dout)
            assert np.array_equal(y1, y2) and np.array_equal(dx1, dx2)
            t = fastest({"kept": lambda: pool_kept(x, dout), "reshape": lambda: pool_reshape_max(x, dout)},
                        args.repeats)
            print(f"MaxPool2d on ({n}, {c}, {hw}, {hw}), forward + backward: four strided views "
                  f"{t['kept']:.3f}, reshape and max {t['reshape']:.3f} ({t['reshape'] / t['kept']:.2f}x)")
        for c_in, c_out, hw in ((1, 16, 28), (16, 32, 14)):  # the two convolutions
            layer = Conv2d(c_in, c_out, 3, padding=1, rng=rng)
            x = rng.standard_normal((n, c_in, hw, hw)).astype(np.float32)
            layer.forward(x)  # Conv2d's own cols, against both
            assert np.array_equal(layer.cols, im2col_sliding(layer, x))
            assert np.array_equal(im2col_kept_only(layer, x), im2col_sliding(layer, x))
            t = fastest({"kept": lambda: im2col_kept_only(layer, x), "sliding": lambda: im2col_sliding(layer, x)},
                        args.repeats)
            print(f"im2col of ({n}, {c_in}, {hw}, {hw}), 3x3, padding 1: k x k slices {t['kept']:.3f}, "
                  f"sliding_window_view {t['sliding']:.3f} ({t['sliding'] / t['kept']:.2f}x)")


if __name__ == "__main__":
    main()
