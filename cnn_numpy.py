"""The report's CNN in pure NumPy: conv(1->16) ReLU pool -> conv(16->32) ReLU pool -> linear(1568->10).

    python cnn_numpy.py                          # the report's run: 5 epochs, lr 0.01, batch 16, SGD, Xavier init
    python cnn_numpy.py --epochs 1 --limit-train 2000 --batch-size 8 --lr 0.05   # a quick run that learns (~90%)
    python cnn_numpy.py --layers textbook        # train with the layers below, in one process (slower)
    python cnn_numpy.py --optimizer adam --lr 0.001 --epochs 10 --batch-size 32 --init pytorch   # cnn_torch's recipe
    python cnn_numpy.py --eval-only              # redraw figures/cnn_numpy/ from checkpoints/cnn_numpy.npz
                                                 # (or the committed reference/cnn_numpy.npz)

The CNN is the MLP of nn_numpy.py with convolutions in front: Linear, ReLU, Flatten, SoftmaxCrossEntropy,
SGD and the training loop are imported from there; this file adds Conv2d and MaxPool2d. Arrays are
(N, C, H, W): images, channels, rows, columns.

Two paths compute the same network. --layers textbook trains with the classes in this file, whole batches
through nn_numpy.py's loop. --layers fast (the default, so the report's run takes seconds, not minutes) uses
fast_cnn/: the same layers laid out for the CPU's caches, each batch as two halves in two processes. The two
start from the same weights and see the same batches; tests/test_fast_layers.py proves that they compute the
same values and gradients (up to rounding).
"""

import sys

import numpy as np

import fast_cnn  # --layers fast; read it after this file
from common.checkpoint import save_npz
from common.cli import make_parser, parse_args, run_main
from common.run import Run, dump_config
from nn_numpy import (Flatten, Linear, ReLU, Sequential, SoftmaxCrossEntropy, add_dtype_flag, init_weights,
                      make_optimizer, prepare, train_or_evaluate)


class Conv2d:
    """2-D convolution with a k x k kernel, stride 1 and zero padding p (cross-correlation, as torch.nn.Conv2d).

    x: (N, C_in, H, W) -> y: (N, C_out, Ho, Wo), Ho = H + 2p - k + 1, Wo = W + 2p - k + 1.
    W: (C_out, C_in, k, k), b: (C_out,); dW, db after backward. Computed in the parameters' dtype.

        y[n, o, i, j] = b[o] + sum over c, u, v of  W[o, c, u, v] * xp[n, c, i + u, j + v]

    where xp is x with p zeros around each image. As one matrix product (im2col): each row of ``cols`` is one
    output pixel's window, cols[(n, i, j), (c, u, v)] = xp[n, c, i + u, j + v], and y = cols @ W_flat.T + b
    with W_flat = W reshaped to (C_out, C_in*k*k).
    """

    params = ("W", "b")

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, rng=None, dtype=np.float32,
                 init="pytorch"):
        rng = rng if rng is not None else np.random.default_rng()
        k = kernel_size
        self.k, self.padding = k, padding
        self.W, bound = init_weights((out_channels, in_channels, k, k), in_channels * k * k,
                                     out_channels * k * k, init, rng, np.dtype(dtype))
        self.b = rng.uniform(-bound, bound, out_channels).astype(dtype)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, x):
        """y = im2col(x) @ W_flat.T + b, reshaped to (N, C_out, Ho, Wo)."""
        n, c, h, w = x.shape
        k, p = self.k, self.padding
        ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
        xp = np.pad(x.astype(self.W.dtype, copy=False), ((0, 0), (0, 0), (p, p), (p, p)))
        # im2col: the k*k shifted (Ho, Wo) slices of xp, one per kernel offset (u, v)
        windows = np.empty((n, ho, wo, c, k, k), dtype=self.W.dtype)
        for u in range(k):
            for v in range(k):
                windows[:, :, :, :, u, v] = xp[:, :, u:u + ho, v:v + wo].transpose(0, 2, 3, 1)
        self.x_shape = x.shape
        self.cols = windows.reshape(n * ho * wo, c * k * k)  # (N*Ho*Wo, C_in*k*k)
        y = self.cols @ self.W.reshape(len(self.W), -1).T + self.b  # (N*Ho*Wo, C_out)
        return np.ascontiguousarray(y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2))

    def backward(self, dout):
        """dout = dL/dy, (N, C_out, Ho, Wo) -> dx = dL/dx, (N, C_in, H, W); sets dW and db.

        With dY = dout as rows of output pixels, (N*Ho*Wo, C_out):
            dW = (dY.T @ cols) reshaped to W's shape,   db[o] = sum over n, i, j of dout[n, o, i, j],
            dcols = dY @ W_flat, and col2im: each window's gradient is added back onto the pixels it was
            copied from, dxp[n, c, i + u, j + v] += dcols[(n, i, j), (c, u, v)]; dx is dxp without the padding.
        """
        n, c, h, w = self.x_shape
        k, p = self.k, self.padding
        ho, wo = dout.shape[2:]
        d = dout.transpose(0, 2, 3, 1).reshape(-1, len(self.W))  # (N*Ho*Wo, C_out)
        self.dW = (d.T @ self.cols).reshape(self.W.shape)
        self.db = d.sum(axis=0)
        dwindows = (d @ self.W.reshape(len(self.W), -1)).reshape(n, ho, wo, c, k, k)
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=d.dtype)
        for u in range(k):  # col2im: the k*k slice adds that undo im2col's k*k slice copies
            for v in range(k):
                dxp[:, :, u:u + ho, v:v + wo] += dwindows[:, :, :, :, u, v].transpose(0, 3, 1, 2)
        return dxp[:, :, p:p + h, p:p + w]


class MaxPool2d:
    """2x2 max pooling, stride 2. x: (N, C, H, W) -> y: (N, C, H // 2, W // 2), same dtype.

        y[n, c, i, j] = max of the window x[n, c, 2i:2i+2, 2j:2j+2]

    An odd last row or column belongs to no window and is dropped, as in PyTorch.
    """

    params = ()

    def __init__(self, kernel_size=2):
        if kernel_size != 2:
            raise ValueError("only 2x2 pooling is implemented")

    def forward(self, x):
        n, c, h, w = x.shape
        ho, wo = h // 2, w // 2
        # (N, C, Ho, Wo, 4): the four values of each window, in row-major order
        windows = x[:, :, :2 * ho, :2 * wo].reshape(n, c, ho, 2, wo, 2).transpose(0, 1, 2, 4, 3, 5)
        windows = windows.reshape(n, c, ho, wo, 4)
        self.x_shape = x.shape
        self.winner = windows.argmax(axis=-1)  # the first maximum of each window
        return np.take_along_axis(windows, self.winner[..., None], axis=-1)[..., 0]

    def backward(self, dout):
        """dx = dout at the first maximum of each window (the one argmax picks; PyTorch picks the same on ties),
        0 elsewhere: y depends on that element only, with slope 1."""
        n, c, h, w = self.x_shape
        ho, wo = h // 2, w // 2
        dwindows = np.zeros((n, c, ho, wo, 4), dtype=dout.dtype)
        np.put_along_axis(dwindows, self.winner[..., None], dout[..., None], axis=-1)
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        dx[:, :, :2 * ho, :2 * wo] = dwindows.reshape(n, c, ho, wo, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
            n, c, 2 * ho, 2 * wo)
        return dx


def cnn(rng, dtype=np.float32, init="xavier"):
    """The report's CNN, by default with Xavier/Glorot-uniform weights and zero biases.

    (N, 1, 28, 28) -> conv 3x3 -> (N, 16, 28, 28) -> ReLU -> pool -> (N, 16, 14, 14)
                   -> conv 3x3 -> (N, 32, 14, 14) -> ReLU -> pool -> (N, 32, 7, 7) -> flatten (N, 1568)
                   -> linear -> (N, 10) logits
    """
    return Sequential(Conv2d(1, 16, 3, padding=1, rng=rng, dtype=dtype, init=init), ReLU(), MaxPool2d(2),
                      Conv2d(16, 32, 3, padding=1, rng=rng, dtype=dtype, init=init), ReLU(), MaxPool2d(2),
                      Flatten(),
                      Linear(32 * 7 * 7, 10, rng, dtype, init=init))


def build_parser():
    p = make_parser("cnn_numpy", "Train the report's CNN on MNIST in pure NumPy.",
                    epochs=5, lr=0.01, batch_size=16, checkpoint_suffix=".npz", optimizer="sgd", init="xavier")
    add_dtype_flag(p, "float32")
    p.add_argument("--layers", choices=["textbook", "fast"], default="fast",
                   help="textbook: the Conv2d and MaxPool2d of this file, whole batches in one process; fast: "
                        "fast_cnn/, the same network laid out for speed, each batch as two halves (default: "
                        "%(default)s)")
    fast_cnn.add_processes_flag(p)
    return p


def main(argv=None):
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.layers == "textbook" and args.processes is not None:
        parser.error("--processes applies to --layers fast only (the textbook layers run in one process)")
    checkpoint, init_rng, order_rng, dtype, data, test_images = prepare(args, "cnn_numpy")
    as_nchw = lambda images: images.reshape(len(images), 1, 28, 28)  # noqa: E731
    data = (as_nchw(data[0]), data[1], as_nchw(data[2]), data[3])
    if args.layers == "fast":
        run = Run("cnn_numpy", "numpy", dump_config(args, **fast_cnn.RECORD), args, save_npz)
        fast_cnn.train_cnn(run, args, init_rng, order_rng, dtype, data, test_images, checkpoint)
        return
    config = dump_config(args, architecture="conv3x3(1->16,pad1)-ReLU-maxpool2-conv3x3(16->32,pad1)-ReLU-"
                                            "maxpool2-linear(1568->10)", layers="textbook")
    run = Run("cnn_numpy", "numpy", config, args, save_npz)
    model = cnn(init_rng, dtype, args.init)
    train_or_evaluate(run, model, SoftmaxCrossEntropy(), make_optimizer(model, args), data, args, order_rng,
                      test_images, checkpoint)


if __name__ == "__main__":
    sys.exit(run_main(main, "cnn_numpy.py"))
