"""The report's CNN with layers tuned for speed: the same function as cnn_numpy.py's textbook layers, in
other memory layouts.

    python cnn_numpy.py                          # trains with these layers (--layers fast, the default)
    python cnn_numpy.py --layers textbook        # the same CNN with the readable layers of cnn_numpy.py
    python -m pytest tests/test_fast_layers.py   # the two agree: values, dx, dW, db, whole training steps
    python benchmarks/bench.py                   # what the speed-up is, beside PyTorch

Read cnn_numpy.py first: its Conv2d and MaxPool2d state the math. The classes here compute the same
y = W * x + b and 2x2 max pooling, with the same gradients (the first maximum of a window gets it), and take
the same constructor arguments, but lay arrays out for the CPU's caches:
- every layer takes and returns (N, C, H, W) arrays, as PyTorch does, but not always in C order;
- the first Conv2d (no input gradient) hands MaxPool2d the four corners of the 2x2 windows as four contiguous
  blocks (PoolCorners), and that pooling returns channel-major arrays, (C, N, H, W) in memory, which the
  second Conv2d's im2col reads without a transpose copy;
- the second Conv2d stores its output channel-last, (N, H, W, C) in memory, so its pooling reads runs of
  32 channels; its im2col works on flat rows without padding between them (row_layout, wraps);
- pooling comes before ReLU (the two commute exactly, gradients included), so ReLU touches 4x fewer elements;
- im2col runs in cache-sized blocks of images, and NumPy's matrix products on one BLAS thread (blas_threads).
ReLU, MaxPool2d and Flatten keep the memory order they are given, gradients included. Why each of these
pays, with the measurements: benchmarks/README.md.
"""

import contextlib
import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

import nn_numpy
from nn_numpy import Linear, ReLU, Sequential, init_weights

BLAS_THREADS = 1


@functools.cache
def _blas_libraries():
    from threadpoolctl import ThreadpoolController  # not torch: the NumPy scripts never import it
    return ThreadpoolController().select(user_api="blas").lib_controllers


_OPEN = []  # the thread counts of the blas_threads() contexts open now, innermost last
_ALREADY_SET = contextlib.nullcontext()


def blas_threads(threads=None):
    """NumPy's matrix products run on ``threads`` BLAS threads inside this context (default: BLAS_THREADS).

    Why one: these products are small, and on a shared 2-core machine a second BLAS thread waits for a busy
    core. Nested contexts of the same count change nothing and cost next to nothing, so a layer used alone
    (a benchmark, a test) runs as it does inside training, where Halves has set one thread for the run.
    """
    threads = threads or BLAS_THREADS
    if _OPEN and _OPEN[-1] == threads:
        return _ALREADY_SET
    return _set_blas_threads(threads)


@contextlib.contextmanager
def _set_blas_threads(threads):
    changed = [(lib, n) for lib in _blas_libraries() if (n := lib.get_num_threads()) not in (None, threads)]
    for lib, _ in changed:
        lib.set_num_threads(threads)
    _OPEN.append(threads)
    try:
        yield
    finally:
        _OPEN.pop()
        for lib, n in changed:
            lib.set_num_threads(n)



class PoolCorners:
    """A Conv2d output (N, C, H, W), H and W even, kept as the four corners of its 2x2 pooling windows.

    blocks: (4, C, N, H // 2, W // 2) with blocks[2a + b][c, n, r, s] = output[n, c, 2r + a, 2s + b].
    No strided view of an (N, C, H, W) array can put the corners in contiguous blocks, hence this wrapper.
    A MaxPool2d right after reads the four blocks instead of four stride-2 views, ~3.6x faster here, forward
    and backward together (benchmarks/README.md); anything else gets the plain (N, C, H, W) array from
    np.asarray. MaxPool2d's backward returns the input gradient in the same form, and Conv2d's backward takes
    either.
    """

    def __init__(self, blocks):
        self.blocks = blocks
        _, c, n, h, w = blocks.shape
        self.shape, self.ndim, self.dtype = (n, c, 2 * h, 2 * w), 4, blocks.dtype

    def __len__(self):
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("PoolCorners: the plain (N, C, H, W) array is always a copy")
        _, c, n, h, w = self.blocks.shape
        plain = self.blocks.reshape(2, 2, c, n, h, w).transpose(3, 2, 4, 0, 5, 1).reshape(self.shape)
        return plain if dtype is None else plain.astype(dtype, copy=False)

    @staticmethod
    def of(x):
        """The blocks of ``x``: PoolCorners' own, or copied out of a plain (N, C, H, W) array."""
        if isinstance(x, PoolCorners):
            return x.blocks
        n, c, h, w = x.shape
        return np.ascontiguousarray(x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(3, 5, 1, 0, 2, 4)
                                    ).reshape(4, c, n, h // 2, w // 2)


class Conv2d:
    """2-D convolution (cross-correlation, as torch.nn.Conv2d), stride 1, zero padding.

    x: (N, C_in, H, W) -> (N, C_out, H + 2p - k + 1, W + 2p - k + 1), in the parameters' dtype.
    W: (C_out, C_in, k, k), b: (C_out,); dW, db after backward.
    input_grad=False: backward returns None instead of dx (for a first layer, whose dx nobody uses).
    pool_corners=True (with input_grad=False): an even-sized output comes as PoolCorners, for a MaxPool2d(2)
    right after. Only without input gradient: col2im into the corner order ran 7x slower than the plain one.
    """

    params = ("W", "b")
    BLOCK_BYTES = 2 ** 20  # im2col columns per matrix product; see blocks()

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, rng=None, dtype=np.float32,
                 init="pytorch", input_grad=True, pool_corners=False):
        if pool_corners and input_grad:
            raise ValueError("Conv2d: pool_corners needs input_grad=False")
        dtype = np.dtype(dtype)
        self.input_grad, self.pool_corners, self.cornered = input_grad, pool_corners, False
        rng = rng if rng is not None else np.random.default_rng()
        k = kernel_size
        self.k, self.padding = k, padding
        self.W, bound = init_weights((out_channels, in_channels, k, k), in_channels * k * k,
                                     out_channels * k * k, init, rng, dtype)
        self.b = rng.uniform(-bound, bound, out_channels).astype(dtype)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, x):
        x = np.asarray(x)
        n, c, h, w = x.shape
        k, p = self.k, self.padding
        hp, wp = h + 2 * p, w + 2 * p
        ho, wo = hp - k + 1, wp - k + 1
        self.cornered = self.pool_corners and ho % 2 == 0 and wo % 2 == 0
        if self.cornered:
            return self.forward_corners(x)
        # Zero-padded images, channel-major and flattened, with rows ``wr`` = max(W, Wo) wide and no padding
        # columns between them: the window at offset (i, j) of every output pixel is then the flat slice
        # starting at i * wr + j, and im2col is k*k contiguous slice copies. A window that reaches past the
        # left or right edge of its row reads the neighbouring row instead of zeros; those entries (one column
        # in 14 per row of windows, for k = 3 and padding 1) are zeroed afterwards (wraps()). For padding
        # (k - 1) / 2, the usual one, no column is computed in vain. The bias rides in the product as a last
        # row of ones in the columns, which also makes the bias gradient the last row of the weight
        # gradient's product.
        wr, base, rows = self.row_layout(h, w)
        padded = np.zeros((c, n, (ho + k - 1) * wr + k - 1), dtype=self.W.dtype)
        padded[:, :, base:base + h * wr].reshape(c, n, h, wr)[:, :, :, :w] = x.transpose(1, 0, 2, 3)
        size = ho * wr  # columns per image
        weights = np.concatenate([self.W.reshape(len(self.W), -1), self.b[:, None]], axis=1)
        out = np.empty((n * size, len(self.W)), dtype=self.W.dtype)  # (N*Ho*Wr, C_out): channel-last
        self.x_shape, self.cols = x.shape, []
        with blas_threads():
            for lo, hi in self.blocks(n, c * k * k * size * self.W.itemsize):
                cols = np.empty((c * k * k + 1, (hi - lo) * size), dtype=self.W.dtype)
                windows = cols[:-1].reshape(c, k, k, hi - lo, size)
                for i in range(k):
                    for j in range(k):
                        windows[:, i, j] = padded[:, lo:hi, i * wr + j:i * wr + j + size]
                for j, columns in self.wraps(k, p, w, wo):
                    windows.reshape(c, k, k, hi - lo, ho, wr)[:, :, j, :, :, columns] = 0
                cols[-1] = 1
                np.matmul(cols.T, weights.T, out=out[lo * size:hi * size])
                self.cols.append(cols)  # (C_in*k*k + 1, images*Ho*Wr)
        out = out.reshape(n, ho, wr, -1)
        return (out if wr == wo else out[:, :, :wo]).transpose(0, 3, 1, 2)

    def row_layout(self, h, w):
        """(wr, base, rows): the row width of the flat images, where pixel (0, 0) sits, and the rows per image in
        backward's input gradient.

        In forward, pixel (r, c) of each zero-padded image sits at base + r * wr + c (base = p * wr + p: p zero
        rows above it, and the slices start p early), and the window at offset (i, j) of output pixel (y, x)
        starts at (y * wr + x) + i * wr + j. In backward, output pixel (y, x) of image m, channel ch sits at
        ((ch * N + m) * rows + y) * wr + x, with zeros for y >= Ho or x >= Wo, and its offset (i, j) sends
        gradient to the input pixel (i - p) * wr + (j - p) further on: one flat slice per offset covers every
        image and channel. Wide enough for both the input and the output, so the two line up; wraps() lists
        what crosses an edge.
        """
        k, p = self.k, self.padding
        wr = max(w, w + 2 * p - k + 1)
        return wr, p * wr + p, max(h, h + 2 * p - k + 1)

    @staticmethod
    @functools.cache  # computing it took ~3 us, three times a step
    def wraps(k, p, size, width):
        """[(offset, slice)]: for each offset (j along a row, or i down a column) of a k x k kernel with padding p
        whose windows reach past an edge, the output positions (of the first ``width``) at which it reads or
        writes input position x + j - p outside 0..size-1: in the flat layout that lands in the neighbouring
        row or image, so these entries must be zeros. For k = 3 and padding 1: the first position for offset
        0, the last for offset 2."""
        return [(j, slice(lo, hi)) for j in range(k)
                for lo, hi in ((0, min(max(p - j, 0), width)), (max(size + p - j, 0), width)) if lo < hi]

    def forward_corners(self, x):
        """forward() as PoolCorners: im2col gathers each corner's columns with one strided copy, and one
        matrix product per corner writes that corner's block. No extra columns, no blocks of images. The
        bias rides in the product as a last row of ones (adding it after cost ~15 us of 100 here), which
        also makes the bias gradient the last column of the weight gradient's product."""
        n, c, h, w = x.shape
        k, p = self.k, self.padding
        ho, wo = (h + 2 * p - k + 1) // 2, (w + 2 * p - k + 1) // 2  # pooled size
        padded = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=self.W.dtype)
        padded[:, :, p:p + h, p:p + w] = x
        sn, sc, sy, sx = padded.strides
        # cols[a, b, ch, i, j, image, r, s] = padded[image, ch, 2r + a + i, 2s + b + j], in two copies: the
        # stride-2 gather once per offset q = a + i, t = b + j (16 of them for k = 3, not 36), then the
        # columns as contiguous runs of it. One strided copy of all 36 took 27 us here, these two 17.
        shifted = np.empty((k + 1, k + 1, c, n, ho, wo), dtype=self.W.dtype)
        shifted[...] = as_strided(padded, shifted.shape, (sy, sx, sc, sn, 2 * sy, 2 * sx), writeable=False)
        sq, st, sch = shifted.strides[:3]
        self.x_shape, self.cols = x.shape, np.empty((4, c * k * k + 1, n * ho * wo), dtype=self.W.dtype)
        self.cols[:, :-1].reshape(2, 2, c, k, k, -1)[...] = as_strided(
            shifted, (2, 2, c, k, k, n * ho * wo), (sq, st, sch, sq, st, shifted.itemsize), writeable=False)
        self.cols[:, -1] = 1
        weights = np.concatenate([self.W.reshape(len(self.W), -1), self.b[:, None]], axis=1)
        with blas_threads():
            out = np.matmul(weights, self.cols)  # (4, C_out, N*Ho*Wo / 4)
        return PoolCorners(out.reshape(4, len(self.W), n, ho, wo))

    def blocks(self, n, bytes_per_image):
        """(first, end) image ranges of about BLOCK_BYTES of im2col columns each.

        Why blocks: one im2col block and its products then stay in the CPU's cache; over a whole batch of
        32 the matrix products ran about 20% slower here.
        """
        step = max(1, self.BLOCK_BYTES // bytes_per_image)
        return [(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def backward(self, dout):
        if self.cornered:
            d = PoolCorners.of(dout).reshape(4, len(self.W), -1)
            with blas_threads():
                dWb = np.matmul(d, self.cols.transpose(0, 2, 1)).sum(axis=0)  # one product per corner
            self.dW, self.db = np.ascontiguousarray(dWb[:, :-1]).reshape(self.W.shape), dWb[:, -1].copy()
            return None
        n, c, h, w = self.x_shape
        k, p, out_channels = self.k, self.padding, len(self.W)
        wr, base, rows = self.row_layout(h, w)
        ho, wo = dout.shape[2:]
        size = ho * wr
        # The gradient as forward's output, channel-last, (N, rows, Wr, C_out) with rows >= Ho and Wr >= Wo:
        # zero for the extra columns and rows, which forward did not compute or dropped. For padding
        # (k - 1) / 2 there are none, and a channel-last dout (MaxPool2d's backward returns one) is used as is.
        if (rows, wr) == (ho, wo):
            tall = np.ascontiguousarray(dout.transpose(0, 2, 3, 1))
        else:
            tall = np.zeros((n, rows, wr, out_channels), dtype=dout.dtype)
            tall[:, :ho, :wo] = dout.transpose(0, 2, 3, 1)
        d = tall[:, :ho].reshape(-1, out_channels)  # (N*Ho*Wr, C_out): the columns forward computed
        dWb = np.zeros((c * k * k + 1, out_channels), dtype=d.dtype)
        with blas_threads():
            for (lo, hi), cols in zip(self.blocks(n, c * k * k * size * self.W.itemsize), self.cols):
                dWb += cols @ d[lo * size:hi * size]
            self.dW, self.db = dWb[:-1].T.reshape(self.W.shape), dWb[-1]
            if not self.input_grad:
                return None
            # col2im over the images stacked ``rows`` apart, channel after channel: the columns of offset (i, j)
            # are then one contiguous run, added with one flat slice, where adding (C_in, N, Ho*Wr) blocks into
            # strided slices ran ~4x slower here. First the entries that would cross a row's or an image's
            # edge are zeroed: their input pixels are padding.
            stacked = c * n * rows * wr
            dcols = self.W.transpose(2, 3, 1, 0).reshape(k * k * c, out_channels) @ tall.reshape(-1, out_channels).T
        per_offset = dcols.reshape(k, k, c, n, rows, wr)
        for j, columns in self.wraps(k, p, w, wr):
            per_offset[:, j, :, :, :, columns] = 0
        for i, lines in self.wraps(k, p, h, rows):
            per_offset[i, :, :, :, lines] = 0
        dcols = dcols.reshape(k * k, stacked)  # rows (i, j), each (C_in, N, rows, Wr)
        dflat = np.zeros(stacked + max(k - 1, p) * (wr + 1), dtype=d.dtype)
        for i in range(k):
            for j in range(k):
                dflat[i * wr + j:i * wr + j + stacked] += dcols[i * k + j]
        dx = dflat[base:base + stacked].reshape(c, n, rows * wr)[:, :, :h * wr].reshape(c, n, h, wr)[:, :, :, :w]
        return dx.transpose(1, 0, 2, 3)


class MaxPool2d:
    """2x2 max pooling, stride 2 (odd trailing rows/columns dropped, as PyTorch).

    x: (N, C, H, W) -> (N, C, H // 2, W // 2), same dtype and memory order as x; or x: PoolCorners (from a
    Conv2d with pool_corners) -> (N, C, H // 2, W // 2) channel-major, and backward returns PoolCorners.
    The gradient of each window goes to exactly one element: the first maximum in row-major order
    (top-left, top-right, bottom-left, bottom-right), which is what PyTorch does on ties.
    """

    params = ()

    def __init__(self, kernel_size=2):
        if kernel_size != 2:
            raise ValueError("only 2x2 pooling is implemented")

    def forward(self, x):
        self.x = x
        if isinstance(x, PoolCorners):
            self.corners = list(x.blocks)  # (C, N, H // 2, W // 2) each, contiguous
        else:
            h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
            self.corners = [x[:, :, a:h:2, b:w:2] for a in (0, 1) for b in (0, 1)]
        # The two row maxima are kept: backward picks the winner from them with 3 comparisons, not 4 masks.
        self.top = np.maximum(self.corners[0], self.corners[1])
        self.bottom = np.maximum(self.corners[2], self.corners[3])
        out = np.maximum(self.top, self.bottom)
        return out.transpose(1, 0, 2, 3) if isinstance(x, PoolCorners) else out

    def backward(self, dout):
        x = self.x
        if isinstance(x, PoolCorners):
            dx = PoolCorners(np.empty_like(x.blocks, dtype=dout.dtype))
            targets = list(dx.blocks)
            dout = dout.transpose(1, 0, 2, 3)  # as self.top: (C, N, H // 2, W // 2)
        else:
            dx = np.empty_like(x, dtype=dout.dtype)  # keeps x's memory order (channel-last after Conv2d)
            h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
            dx[:, :, h:], dx[:, :, :, w:] = 0, 0  # the cropped odd row/column, if any
            targets = [dx[:, :, a:h:2, b:w:2] for a in (0, 1) for b in (0, 1)]
        if dout.strides != self.top.strides:  # e.g. N-major from Flatten: one copy into x's order, not 6 slow ops
            dout_in_order = np.empty_like(self.top, dtype=dout.dtype)
            dout_in_order[...] = dout
            dout = dout_in_order
        # The winners as 0/1 in dout's dtype, and each loser's share as what is left: a multiply by a boolean
        # mask casts it on the fly, ~2.5x slower here than the float multiply.
        top = dout * (self.top >= self.bottom).astype(dout.dtype)  # on a tie the top row comes first
        for a, rows in enumerate((top, dout - top)):
            np.multiply(rows, (self.corners[2 * a] >= self.corners[2 * a + 1]).astype(dout.dtype),
                        out=targets[2 * a])
            np.subtract(rows, targets[2 * a], out=targets[2 * a + 1])
        return dx


class Flatten(nn_numpy.Flatten):
    """nn_numpy.Flatten, but backward returns the gradient in the memory order of the x it was given: these
    layers hand Flatten channel-last arrays and expect their gradients so."""

    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, dout):
        if dout is None:
            return None
        dx = np.empty_like(self.x, dtype=dout.dtype)
        dx[...] = dout.reshape(self.x.shape)
        return dx


def cnn(rng, dtype=np.float32, init="xavier"):
    """cnn_numpy.cnn with these layers: the same parameters, drawn from ``rng`` in the same order, under the
    same names (0.W, 3.W, 7.W, ...), so the two build the same network from one seed and read each other's
    checkpoints. Pooling comes before ReLU here: max(relu(x)) = relu(max(x)), and both orders send a window's
    gradient to the same element."""
    return Sequential(Conv2d(1, 16, 3, padding=1, rng=rng, dtype=dtype, init=init, input_grad=False,
                             pool_corners=True),
                      MaxPool2d(2), ReLU(),
                      Conv2d(16, 32, 3, padding=1, rng=rng, dtype=dtype, init=init), MaxPool2d(2), ReLU(),
                      Flatten(),
                      Linear(32 * 7 * 7, 10, rng, dtype, init=init))
