"""The report's CNN in pure NumPy: conv(1->16) ReLU pool -> conv(16->32) ReLU pool -> linear(1568->10).

    python cnn_numpy.py                          # the report's run: 5 epochs, lr 0.01, batch 16, SGD, Xavier init
    python cnn_numpy.py --epochs 1 --limit-train 2000 --batch-size 8 --lr 0.05   # a quick run that learns (~90%)
    python cnn_numpy.py --layers textbook        # train with the layers of this file, in one process (slower)
    python cnn_numpy.py --optimizer adam --lr 0.001 --epochs 10 --batch-size 32 --init pytorch   # cnn_torch's recipe
    python cnn_numpy.py --eval-only              # redraw figures/cnn_numpy/ from checkpoints/cnn_numpy.npz
                                                 # (or the committed reference/cnn_numpy.npz)

Read nn_numpy.py first: this file adds two layers to its Linear, ReLU, Flatten, SoftmaxCrossEntropy,
Sequential, optimizers and train_epoch, which the CNN reuses as they are (its head is one Linear on the
flattened feature maps). First come
the two layers as loops, one line of math each (conv_forward_loops ... maxpool_backward_loops), then the same
layers vectorised (Conv2d, MaxPool2d), which the tests check against the loops, then cnn() and main. Arrays are
(N, C, Hi, Wi): images, channels, rows, columns (Ho, Wo for a layer's output; W is always a layer's weights).

Two paths compute the same network. --layers textbook trains with the classes of this file through
nn_numpy.train_epoch. --layers fast (the default, so the report's run takes seconds, not minutes) uses
fast_cnn/: the same layers laid out for the CPU's caches, each batch as two halves in two processes. The two
start from the same weights and see the same batches; tests/test_fast_layers.py proves that they compute the
same values and gradients (up to rounding).
"""

import functools
import sys

import numpy as np

from common.cli import add_dtype_flag, make_parser, parse_args, run_main
from nn_numpy import Flatten, Linear, ReLU, Sequential, SoftmaxCrossEntropy, init_weights, make_optimizer, train_epoch

# --- the layers as loops: read these first ------------------------------------------------------------------

def conv_forward_loops(x, W, b, padding):
    """y[n, o, i, j] = b[o] + sum over c, u, v of W[o, c, u, v] * xp[n, c, i + u, j + v], xp = x zero-padded.

    x: (N, C_in, Hi, Wi), W: (C_out, C_in, k, k), b: (C_out,) -> y: (N, C_out, Hi + 2p - k + 1, Wi + 2p - k + 1).
    """
    n_images, _, h, w = x.shape
    out_channels, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((n_images, out_channels, h + 2 * padding - k + 1, w + 2 * padding - k + 1), W.dtype)
    for n in range(n_images):
        for o in range(out_channels):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    y[n, o, i, j] = np.sum(xp[n, :, i:i + k, j:j + k] * W[o]) + b[o]
    return y


def conv_backward_loops(x, W, dout, padding):
    """(dx, dW, db) for dout = dL/dy. Output pixel y[n, o, i, j] = b[o] + sum W[o, c, u, v] xp[n, c, i+u, j+v]
    has the partial derivatives dy/dW[o, c, u, v] = xp[n, c, i+u, j+v], dy/dxp[n, c, i+u, j+v] = W[o, c, u, v]
    and dy/db[o] = 1. So its gradient g = dout[n, o, i, j] flows to its window and its filter:
        dW[o] += g * window,   d(window) += g * W[o],   db[o] += g.
    Always +=: the same filter is used at every position of every image, and neighbouring windows overlap, so
    a weight or a pixel collects a term from every output it took part in. dx is dxp without the padding."""
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


def maxpool_forward_loops(x):
    """y[n, c, i, j] = max of the 2x2 window x[n, c, 2i:2i+2, 2j:2j+2]. (N, C, Hi, Wi) -> (N, C, Hi // 2, Wi // 2)."""
    n_images, channels, h, w = x.shape
    y = np.zeros((n_images, channels, h // 2, w // 2), x.dtype)
    for n in range(n_images):
        for c in range(channels):
            for i in range(h // 2):
                for j in range(w // 2):
                    y[n, c, i, j] = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max()
    return y


def maxpool_backward_loops(x, dout):
    """dx: each window's gradient goes to the element that was its maximum (y depends on it alone, with slope 1);
    on a tie, to the first in row-major order, as PyTorch. The other three get 0."""
    dx = np.zeros_like(x, dtype=dout.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                    u, v = np.unravel_index(window.argmax(), (2, 2))  # argmax: the first maximum
                    dx[n, c, 2 * i + u, 2 * j + v] = dout[n, c, i, j]
    return dx


# --- the same layers, vectorised: what --layers textbook trains with ----------------------------------------

class Conv2d:
    """2-D convolution, k x k kernel, stride 1, zero padding p (cross-correlation, as torch.nn.Conv2d):
    conv_forward_loops with the four loops turned into one matrix product.

    x: (N, C_in, Hi, Wi) -> y: (N, C_out, Ho, Wo), Ho = Hi + 2p - k + 1, Wo = Wi + 2p - k + 1, in W's dtype.
    W: (C_out, C_in, k, k), b: (C_out,); dW, db after backward. input_grad=False: backward returns None instead
    of dx (for a first layer, whose dx nobody uses), as nn_numpy.Linear.

    A convolution is one Linear applied at every position: the window under output pixel (n, i, j), flattened
    to C_in*k*k numbers, times the filters flattened to W_flat (C_out, C_in*k*k). im2col stacks the windows as
    the rows of ``cols`` (N*Ho*Wo, C_in*k*k), cols[(n, i, j), (c, u, v)] = xp[n, c, i + u, j + v], and then
        y = cols @ W_flat.T + b,   (N*Ho*Wo, C_out), reshaped to (N, C_out, Ho, Wo).
    """

    params = ("W", "b")

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, rng=None, dtype=np.float32,
                 init="pytorch", input_grad=True):
        rng = rng if rng is not None else np.random.default_rng()
        k = kernel_size
        self.k, self.padding, self.input_grad = k, padding, input_grad
        self.W, bound = init_weights((out_channels, in_channels, k, k), in_channels * k * k,
                                     out_channels * k * k, init, rng, np.dtype(dtype))
        self.b = rng.uniform(-bound, bound, out_channels).astype(dtype)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, x):
        n, c, h, w = x.shape
        k, p = self.k, self.padding
        ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
        xp = np.pad(x.astype(self.W.dtype, copy=False), ((0, 0), (0, 0), (p, p), (p, p)))
        # im2col: for each kernel offset (u, v), the (Ho, Wo) slice of xp that it multiplies, one copy each
        windows = np.empty((n, ho, wo, c, k, k), dtype=self.W.dtype)
        for u in range(k):
            for v in range(k):
                windows[:, :, :, :, u, v] = xp[:, :, u:u + ho, v:v + wo].transpose(0, 2, 3, 1)
        self.x_shape = x.shape
        self.cols = windows.reshape(n * ho * wo, c * k * k)  # (N*Ho*Wo, C_in*k*k)
        y = self.cols @ self.W.reshape(len(self.W), -1).T + self.b  # (N*Ho*Wo, C_out)
        return np.ascontiguousarray(y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2))

    def backward(self, dout):
        """dout = dL/dy (N, C_out, Ho, Wo) -> dx (N, C_in, Hi, Wi); sets dW and db. Lay dout out as rows of output
        pixels, dY (N*Ho*Wo, C_out), and apply nn_numpy.Linear.backward's three rules at every position. W_flat
        (C_out, C_in*k*k) is a Linear's W (in, out) transposed, so the Linear's dW = input.T @ dY becomes
        (cols.T @ dY).T = dY.T @ cols, and its d(input) = dY @ W.T becomes dY @ W_flat:

            dW_flat = dY.T @ cols: the same filter made every output pixel, so its gradient sums over them all;
            db[o]   = sum over n, i, j of dout[n, o, i, j];
            dcols   = dY @ W_flat, each window's gradient, (N*Ho*Wo, C_in*k*k), and col2im: each is added back
                      onto the pixels it was copied from, dxp[n, c, i + u, j + v] += dcols[(n, i, j), (c, u, v)]
                      (a pixel lies in up to k*k windows); dx is dxp without the padding.
        """
        n, c, h, w = self.x_shape
        k, p = self.k, self.padding
        ho, wo = dout.shape[2:]
        d = dout.transpose(0, 2, 3, 1).reshape(-1, len(self.W))  # dY, (N*Ho*Wo, C_out)
        self.dW = (d.T @ self.cols).reshape(self.W.shape)
        self.db = d.sum(axis=0)
        if not self.input_grad:
            return None
        dcols = (d @ self.W.reshape(len(self.W), -1)).reshape(n, ho, wo, c, k, k)
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=d.dtype)
        for u in range(k):  # col2im: for each kernel offset, the (Ho, Wo) slice of pixels it touched
            for v in range(k):
                dxp[:, :, u:u + ho, v:v + wo] += dcols[:, :, :, :, u, v].transpose(0, 3, 1, 2)
        return dxp[:, :, p:p + h, p:p + w]


class MaxPool2d:
    """2x2 max pooling, stride 2: maxpool_forward_loops, a window's four elements taken as four strided views.
    x: (N, C, Hi, Wi) -> y: (N, C, Hi // 2, Wi // 2), same dtype. An odd last row or column belongs to no window and
    is dropped, as in PyTorch."""

    params = ()

    def __init__(self, kernel_size=2):
        if kernel_size != 2:
            raise ValueError("only 2x2 pooling is implemented")

    def forward(self, x):
        h, w = x.shape[2:]
        self.x = x[:, :, :h // 2 * 2, :w // 2 * 2]  # (N, C, 2Ho, 2Wo): whole windows only
        self.x_shape = x.shape
        # x[:, :, u::2, v::2] is the element (u, v) of every window, (N, C, Ho, Wo): the max of the four
        self.y = np.maximum(np.maximum(self.x[:, :, 0::2, 0::2], self.x[:, :, 0::2, 1::2]),
                            np.maximum(self.x[:, :, 1::2, 0::2], self.x[:, :, 1::2, 1::2]))
        return self.y

    def backward(self, dout):
        """dx = dout at the first maximum of each window, 0 elsewhere (maxpool_backward_loops). The four positions
        (u, v) of a window are visited in row-major order; the first whose value equals the window's max takes
        its gradient, and ``taken`` keeps a later equal value from taking it again."""
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        taken = np.zeros(self.y.shape, dtype=bool)
        for u in (0, 1):
            for v in (0, 1):
                first = (self.x[:, :, u::2, v::2] == self.y) & ~taken  # (N, C, Ho, Wo)
                dx[:, :, u:self.x.shape[2]:2, v:self.x.shape[3]:2] = np.where(first, dout, 0)
                taken |= first
        return dx


def cnn(rng, dtype=np.float32, init="xavier"):
    """The report's CNN, by default with Xavier/Glorot-uniform weights and zero biases (as the original).

    (N, 1, 28, 28) -> conv 3x3 -> (N, 16, 28, 28) -> ReLU -> pool -> (N, 16, 14, 14)
                   -> conv 3x3 -> (N, 32, 14, 14) -> ReLU -> pool -> (N, 32, 7, 7) -> flatten (N, 1568)
                   -> linear -> (N, 10) logits
    """
    return Sequential(Conv2d(1, 16, 3, padding=1, rng=rng, dtype=dtype, init=init, input_grad=False), ReLU(),
                      MaxPool2d(2),
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
    p.add_argument("--processes", type=int, choices=[1, 2], default=None,
                   help="--layers fast: processes computing each batch's two halves; the numbers are the same "
                        "either way (default: 2 where the machine has two cores and can fork, else 1)")
    return p


def main(argv=None):
    from common import harness_numpy  # the run harness: epochs, evaluation, outputs (skip it at first)

    parser = build_parser()
    args = parse_args(parser, argv)
    if args.layers == "textbook" and args.processes is not None:
        parser.error("--processes applies to --layers fast only (the textbook layers run in one process)")
    setup = harness_numpy.prepare(args, "cnn_numpy", image_shape=(1, 28, 28))
    if args.layers == "fast":
        import fast_cnn  # read it after this file

        return fast_cnn.train_cnn(args, setup)
    model = cnn(setup.init_rng, setup.dtype, args.init)
    x_train, y_train = setup.data[:2]
    epoch = functools.partial(train_epoch, model, SoftmaxCrossEntropy(), make_optimizer(model, args), x_train,
                              y_train, args.batch_size)  # epoch(order, progress): harness_numpy.fit calls it
    harness_numpy.train_or_evaluate(args, "cnn_numpy", model, epoch, setup, "the textbook layers of cnn_numpy.py, "
                                    "one process (--layers fast: fast_cnn/, the same network faster; their values "
                                    "and gradients agree to rounding, relative error <= 1e-5 in float32)",
                                    layers="textbook",
                                    architecture="conv3x3(1->16,pad1)-ReLU-maxpool2-conv3x3(16->32,pad1)-ReLU-"
                                                 "maxpool2-linear(1568->10)")


if __name__ == "__main__":
    sys.exit(run_main(main, "cnn_numpy.py"))
