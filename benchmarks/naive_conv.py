"""The convolution as the report wrote it: Python loops over images, output channels and output pixels.

    python benchmarks/bench.py                   # times it against cnn_numpy.py's textbook and fast layers
    python -m pytest tests/test_cnn_numpy.py     # checks cnn_numpy.Conv2d against it, forward and backward

One line of math per loop, in float64 or float32: x (N, C_in, H, W), W (C_out, C_in, k, k), b (C_out,),
stride 1, zero padding p.
"""

import numpy as np


def naive_conv_forward(x, W, b, padding):
    """y[n, o, i, j] = b[o] + sum over c, u, v of W[o, c, u, v] * xp[n, c, i + u, j + v]."""
    n_images, _, h, w = x.shape
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
    """(dx, dW, db) for dout = dL/dy: each output pixel's gradient flows back to its window and its weights."""
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
