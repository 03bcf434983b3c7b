"""The report's CNN in pure NumPy, vectorized: conv(1->16) ReLU pool -> conv(16->32) ReLU pool -> linear(1568->10).

    python cnn_numpy.py                          # the report's run: 5 epochs, lr 0.01, batch 16, SGD, Xavier init
    python cnn_numpy.py --epochs 1 --limit-train 2000 --batch-size 8 --lr 0.05   # a quick run that learns (~90%)
    python cnn_numpy.py --optimizer adam --lr 0.001 --epochs 10 --batch-size 32 --init pytorch   # cnn_torch's recipe
    python cnn_numpy.py --processes 1            # one process: slower, the same numbers bit for bit
    python cnn_numpy.py --eval-only              # redraw figures/cnn_numpy/ from checkpoints/cnn_numpy.npz
                                                 # (or the committed reference/cnn_numpy.npz)

The CNN is the MLP of nn_numpy.py with convolutions in front: Linear, ReLU, Flatten, SoftmaxCrossEntropy,
SGD and the training loop are imported from there. Each batch is computed as two halves whose gradients
are added, in two processes where the machine has two cores (common/halves.py). Conv2d is im2col + one
matrix product, with im2col and col2im built from k*k slice copies, so no Python loop runs over images,
channels or pixels.

Layout: every layer takes and returns (N, C, H, W) arrays, as PyTorch does, but Conv2d's output is stored
channel-major, (C, N, H, W) in memory, because that is what its matrix product produces. ReLU and MaxPool2d
keep whatever memory order they are given, so the next Conv2d reads its input without a transpose copy.
"""

import sys

import numpy as np

from common.checkpoint import save_npz
from common.cli import make_parser, parse_args, run_main
from common.halves import PIECE, available_cores, can_fork, default_processes
from common.run import Run, dump_config
from nn_numpy import (Flatten, Linear, ReLU, Sequential, SoftmaxCrossEntropy, add_dtype_flag, blas_threads,
                      init_weights, make_optimizer, prepare, train_or_evaluate)


class Conv2d:
    """2-D convolution (cross-correlation, as torch.nn.Conv2d), stride 1, zero padding.

    x: (N, C_in, H, W) -> (N, C_out, H + 2p - k + 1, W + 2p - k + 1), in the parameters' dtype.
    W: (C_out, C_in, k, k), b: (C_out,); dW, db after backward.
    input_grad=False: backward returns None instead of dx (for a first layer, whose dx nobody uses).
    """

    params = ("W", "b")
    BLOCK_BYTES = 2 ** 20  # im2col columns per matrix product; see blocks()

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, rng=None, dtype=np.float32,
                 init="pytorch", input_grad=True):
        dtype = np.dtype(dtype)
        self.input_grad = input_grad
        rng = rng if rng is not None else np.random.default_rng()
        k = kernel_size
        self.k, self.padding = k, padding
        self.W, bound = init_weights((out_channels, in_channels, k, k), in_channels * k * k,
                                     out_channels * k * k, init, rng, dtype)
        self.b = rng.uniform(-bound, bound, out_channels).astype(dtype)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, x):
        n, c, h, w = x.shape
        k, p = self.k, self.padding
        hp, wp = h + 2 * p, w + 2 * p
        ho, wo = hp - k + 1, wp - k + 1
        # Zero-padded images, channel-major, each followed by one spare zero row, then flattened: the window
        # at offset (i, j) is then the flat slice starting at i * wp + j, so im2col is k*k contiguous slice
        # copies. The price: each output row is computed wp wide instead of wo; the k-1 extra columns are
        # dropped below (and get zero gradient in backward).
        padded = np.zeros((c, n, hp + 1, wp), dtype=self.W.dtype)
        padded[:, :, p:p + h, p:p + w] = x.transpose(1, 0, 2, 3)
        flat = padded.reshape(c, n, (hp + 1) * wp)
        size = ho * wp  # columns per image
        out = np.empty((len(self.W), n * size), dtype=self.W.dtype)  # (C_out, N*Ho*Wp)
        self.x_shape, self.cols = x.shape, []
        with blas_threads():
            for lo, hi in self.blocks(n, c * k * k * size * self.W.itemsize):
                cols = np.empty((c, k, k, hi - lo, size), dtype=self.W.dtype)
                for i in range(k):
                    for j in range(k):
                        cols[:, i, j] = flat[:, lo:hi, i * wp + j:i * wp + j + size]
                cols = cols.reshape(c * k * k, -1)  # (C_in*k*k, images*Ho*Wp)
                np.matmul(self.W.reshape(len(self.W), -1), cols, out=out[:, lo * size:hi * size])
                self.cols.append(cols)
        out += self.b[:, None]
        # (N, C_out, Ho, Wo), stored channel-major
        return out.reshape(-1, n, ho, wp)[:, :, :, :wo].transpose(1, 0, 2, 3)

    def blocks(self, n, bytes_per_image):
        """(first, end) image ranges of about BLOCK_BYTES of im2col columns each.

        Why blocks: one im2col block and its products then stay in the CPU's cache; over a whole batch of
        32 the matrix products ran about 20% slower here.
        """
        step = max(1, self.BLOCK_BYTES // bytes_per_image)
        return [(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def backward(self, dout):
        n, c, h, w = self.x_shape
        k, p = self.k, self.padding
        hp, wp = h + 2 * p, w + 2 * p
        ho, wo = dout.shape[2:]
        size = ho * wp
        d = np.zeros((len(self.W), n, ho, wp), dtype=dout.dtype)  # zero gradient for the extra columns
        d[:, :, :, :wo] = dout.transpose(1, 0, 2, 3)
        d = d.reshape(len(self.W), -1)  # (C_out, N*Ho*Wp)
        dW = np.zeros((c * k * k, len(self.W)), dtype=d.dtype)
        dflat = np.zeros((c, n, (hp + 1) * wp), dtype=d.dtype) if self.input_grad else None
        with blas_threads():
            for (lo, hi), cols in zip(self.blocks(n, c * k * k * size * self.W.itemsize), self.cols):
                d_block = d[:, lo * size:hi * size]
                dW += cols @ d_block.T  # this operand order runs faster in BLAS here
                if self.input_grad:
                    dcols = (self.W.reshape(len(self.W), -1).T @ d_block).reshape(c, k, k, hi - lo, size)
                    for i in range(k):
                        for j in range(k):
                            dflat[:, lo:hi, i * wp + j:i * wp + j + size] += dcols[:, i, j]
        self.dW = dW.T.reshape(self.W.shape)
        self.db = d.sum(axis=1)
        if not self.input_grad:
            return None
        return dflat.reshape(c, n, hp + 1, wp)[:, :, p:p + h, p:p + w].transpose(1, 0, 2, 3)


class MaxPool2d:
    """2x2 max pooling, stride 2 (odd trailing rows/columns dropped, as PyTorch).

    x: (N, C, H, W) -> (N, C, H // 2, W // 2), same dtype and memory order as x.
    The gradient of each window goes to exactly one element: the first maximum in row-major order
    (top-left, top-right, bottom-left, bottom-right), which is what PyTorch does on ties.
    """

    params = ()

    def __init__(self, kernel_size=2):
        if kernel_size != 2:
            raise ValueError("only 2x2 pooling is implemented")

    def forward(self, x):
        self.x = x
        h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
        self.corners = [x[:, :, a:h:2, b:w:2] for a in (0, 1) for b in (0, 1)]
        # The two row maxima are kept: backward picks the winner from them with 3 comparisons, not 4 masks.
        self.top = np.maximum(self.corners[0], self.corners[1])
        self.bottom = np.maximum(self.corners[2], self.corners[3])
        return np.maximum(self.top, self.bottom)

    def backward(self, dout):
        x = self.x
        dx = np.empty_like(x, dtype=dout.dtype)  # keeps x's memory order (channel-major after Conv2d)
        h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
        dx[:, :, h:], dx[:, :, :, w:] = 0, 0  # the cropped odd row/column, if any
        if dout.strides != self.top.strides:  # e.g. N-major from Flatten: one copy into x's order, not 6 slow ops
            dout_in_order = np.empty_like(self.top, dtype=dout.dtype)
            dout_in_order[...] = dout
            dout = dout_in_order
        top_wins = self.top >= self.bottom  # on a tie the top row comes first
        for a, rows in enumerate((dout * top_wins, dout * ~top_wins)):
            left_wins = self.corners[2 * a] >= self.corners[2 * a + 1]
            np.multiply(rows, left_wins, out=dx[:, :, a:h:2, 0:w:2])
            np.multiply(rows, ~left_wins, out=dx[:, :, a:h:2, 1:w:2])
        return dx


def cnn(rng, dtype=np.float32, init="xavier"):
    """The report's CNN, by default with Xavier/Glorot-uniform weights and zero biases.

    Pooling comes before ReLU: the two commute exactly (max(relu(x)) = relu(max(x)), and both send a window's
    gradient to the same element), and this way ReLU touches 4x fewer elements.
    """
    return Sequential(Conv2d(1, 16, 3, padding=1, rng=rng, dtype=dtype, init=init, input_grad=False),
                      MaxPool2d(2), ReLU(),
                      Conv2d(16, 32, 3, padding=1, rng=rng, dtype=dtype, init=init), MaxPool2d(2), ReLU(),
                      Flatten(),
                      Linear(32 * 7 * 7, 10, rng, dtype, init=init))


def build_parser():
    p = make_parser("cnn_numpy", "Train the report's CNN on MNIST in pure NumPy.",
                    epochs=5, lr=0.01, batch_size=16, checkpoint_suffix=".npz", optimizer="sgd", init="xavier")
    add_dtype_flag(p)
    p.add_argument("--processes", type=int, choices=[1, 2], default=default_processes(),
                   help="processes computing each batch's two halves: 2 runs the second half in a forked worker "
                        "(Linux); the numbers are the same either way (default: %(default)s on this machine, "
                        f"which has {available_cores()} core(s){'' if can_fork() else ' and cannot fork'})")
    return p


def main(argv=None):
    args = parse_args(build_parser(), argv)
    checkpoint, init_rng, order_rng, dtype, data, test_images = prepare(args, "cnn_numpy")
    as_nchw = lambda images: images.reshape(len(images), 1, 28, 28)  # noqa: E731
    data = (as_nchw(data[0]), data[1], as_nchw(data[2]), data[3])
    config = dump_config(args, architecture="conv3x3(1->16,pad1)-maxpool2-ReLU-conv3x3(16->32,pad1)-maxpool2-"
                                            "ReLU-linear(1568->10)",
                         split_batches=f"two halves, pieces of at most {PIECE} images (common/halves.py)")
    run = Run("cnn_numpy", "numpy", config, args, save_npz)
    model = cnn(init_rng, dtype, args.init)
    train_or_evaluate(run, model, SoftmaxCrossEntropy(), make_optimizer(model, args), data, args, order_rng,
                      test_images, checkpoint, processes=args.processes)


if __name__ == "__main__":
    sys.exit(run_main(main, "cnn_numpy.py"))
