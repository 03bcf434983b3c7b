"""The report's MLP in pure NumPy: 784 -> 128 -> ReLU -> 64 -> ReLU -> 10 -> softmax, manual backprop, SGD.

    python nn_numpy.py                           # the report's run: 20 epochs, lr 0.1, batch 32, plain SGD
    python nn_numpy.py --epochs 3 --limit-train 2000 --batch-size 8    # a quick run that learns (~85-89%)
    python nn_numpy.py --optimizer sgd --lr 0.01 --momentum 0.9         # nn_torch.py's recipe, in NumPy
    python nn_numpy.py --eval-only               # redraw figures/nn_numpy/ from checkpoints/nn_numpy.npz
                                                 # (or the committed reference/nn_numpy.npz)

Each layer has forward(x) and backward(dout) -> dx and keeps its parameters and their gradients as
attributes (W, b, dW, db). cnn_numpy.py builds the CNN from these same classes. No deep-learning framework
is imported, here or through common/.
"""

import functools
import math
import sys

import numpy as np

from common import original
from common.blas import one_blas_thread
from common.checkpoint import check_shapes, load_npz, save_npz
from common.cli import DataOrder, make_parser, parse_args, resolve_data_flags, run_main, seed_everything
from common.data import load_model_inputs
from common.run import Run, dump_config


def init_weights(shape, fan_in, fan_out, init, rng, dtype):
    """(W of ``shape``, bound): the caller draws its bias b ~ U(-bound, bound).

    init="pytorch": W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and bound = 1/sqrt(fan_in), PyTorch's default for
                    nn.Linear/nn.Conv2d.
    init="xavier":  W ~ U(-sqrt(6/(fan_in+fan_out)), +...) (Glorot & Bengio 2010) and bound = 0, so b = 0.
    init="normal":  W ~ N(0, 0.1^2) and bound = 0, so b = 0: the original report's NumPy MLP
                    (``np.random.randn(in, out) * 0.1``), whatever the fans.
    """
    if init == "pytorch":
        bound = 1 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(dtype), bound
    if init == "xavier":
        return rng.uniform(-1, 1, shape).astype(dtype) * dtype.type(math.sqrt(6 / (fan_in + fan_out))), 0.0
    if init == "normal":
        return (rng.standard_normal(shape) * 0.1).astype(dtype), 0.0
    raise ValueError(f"unknown init {init!r}")


class Linear:
    """y = x @ W + b.  x: (N, in_features) -> y: (N, out_features), in the parameters' dtype.

    W: (in_features, out_features), b: (out_features,); dW, db after backward.
    input_grad=False: backward returns None instead of dx (for a first layer, whose dx nobody uses).
    """

    params = ("W", "b")

    def __init__(self, in_features, out_features, rng, dtype=np.float32, init="pytorch", input_grad=True):
        dtype = np.dtype(dtype)
        self.input_grad = input_grad
        self.W, bound = init_weights((in_features, out_features), in_features, out_features, init, rng, dtype)
        self.b = rng.uniform(-bound, bound, out_features).astype(dtype)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        """dout = dL/dy (N, out) -> dx = dout @ W.T (N, in); dW = x.T @ dout, db = dout summed over the batch."""
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T if self.input_grad else None


class ReLU:
    """max(x, 0), any shape. The gradient at exactly 0 is taken as 0, as PyTorch does."""

    params = ()

    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, dout):
        return dout * (self.out > 0)


class Flatten:
    """(N, ...) -> (N, prod(...)), C order, as torch.nn.Flatten."""

    params = ()

    def forward(self, x):
        self.x = x
        return x.reshape(len(x), -1)

    def backward(self, dout):
        if dout is None:
            return None
        # in x's memory order: fast_cnn's layers hand Flatten channel-last arrays and expect their gradients so
        dx = np.empty_like(self.x, dtype=dout.dtype)
        dx[...] = dout.reshape(self.x.shape)
        return dx


class SoftmaxCrossEntropy:
    """Softmax and mean cross-entropy fused, stable via log-sum-exp.

    forward(logits (N, C), labels (N,) int) -> mean loss (a scalar of the logits' dtype);
    backward() -> dlogits (N, C) = (softmax(logits) - onehot(labels)) / N.
    """

    def forward(self, logits, labels):
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        self.probs = exp / total
        self.labels = labels
        rows = np.arange(len(labels))
        return (np.log(total[:, 0]) - shifted[rows, labels]).mean()

    def backward(self):
        n = len(self.labels)
        dlogits = self.probs.copy()
        dlogits[np.arange(n), self.labels] -= 1
        return dlogits / dlogits.dtype.type(n)


class Sequential:
    """Layers applied in order; parameters are named like torch.nn.Sequential's: "1.W" is "1.weight" (for a
    Linear transposed: W is (in, out) here, weight is (out, in) in PyTorch)."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self):
        """(layer, name) pairs; the gradient of getattr(layer, name) is getattr(layer, "d" + name)."""
        return [(layer, name) for layer in self.layers for name in layer.params]

    def state_dict(self):
        return {f"{i}.{name}": getattr(layer, name).copy()
                for i, layer in enumerate(self.layers) for name in layer.params}

    def load_state_dict(self, state, source="checkpoint"):
        own = self.state_dict()
        check_shapes({k: v.shape for k, v in own.items()}, {k: v.shape for k, v in state.items()}, source)
        for i, layer in enumerate(self.layers):
            for name in layer.params:
                setattr(layer, name, np.array(state[f"{i}.{name}"], dtype=own[f"{i}.{name}"].dtype))


class SGD:
    """Stochastic gradient descent, in place, for every parameter of ``model``: torch.optim.SGD's rule.

    momentum 0: p -= lr * dp (no buffer is kept).
    momentum mu > 0: b = dp on the first step, then b = mu * b + dp; p -= lr * b (dampening 0, no Nesterov,
    no weight decay). One buffer per parameter, in the parameter's dtype, in ``self.buffers``.
    """

    def __init__(self, model, lr, momentum=0.0):
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"SGD: lr must be a finite number >= 0, got {lr}")
        if not (math.isfinite(momentum) and momentum >= 0):
            raise ValueError(f"SGD: momentum must be a finite number >= 0, got {momentum}")
        self.model, self.lr, self.momentum = model, lr, momentum
        self.buffers = {}  # parameter index -> momentum buffer

    def step(self):
        for i, (layer, name) in enumerate(self.model.parameters()):
            param, grad = getattr(layer, name), getattr(layer, "d" + name)
            update = self.momentum_buffer(i, param, grad) if self.momentum else grad
            param -= param.dtype.type(self.lr) * update

    def momentum_buffer(self, i, param, grad):
        buffer = self.buffers.get(i)
        if buffer is None:
            buffer = self.buffers[i] = np.array(grad, dtype=param.dtype)  # a copy: grad may be reused
        else:
            buffer *= buffer.dtype.type(self.momentum)
            buffer += grad
        return buffer


class Adam:
    """Adam (Kingma & Ba 2015) as torch.optim.Adam computes it: amsgrad off, weight decay 0.

    t += 1;  m = b1 m + (1 - b1) dp;  v = b2 v + (1 - b2) dp^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    m and v are per parameter, in its dtype, updated in place, in the same operation order as PyTorch's
    single-tensor implementation (m by lerp; the bias corrections as Python floats).
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"Adam: lr must be a finite number >= 0, got {lr}")
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas}")
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"Adam: eps must be a finite number >= 0, got {eps}")
        self.model, self.lr, self.betas, self.eps = model, lr, tuple(betas), eps
        self.t = 0
        self.m, self.v = {}, {}  # parameter index -> first / second moment

    def step(self):
        self.t += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.t)
        correction2_sqrt = (1 - beta2 ** self.t) ** 0.5
        for i, (layer, name) in enumerate(self.model.parameters()):
            param, grad = getattr(layer, name), getattr(layer, "d" + name)
            scalar = param.dtype.type
            if i not in self.m:
                self.m[i], self.v[i] = np.zeros_like(param), np.zeros_like(param)
            m, v = self.m[i], self.v[i]
            m += scalar(1 - beta1) * (grad - m)
            v *= scalar(beta2)
            v += scalar(1 - beta2) * grad * grad
            denominator = np.sqrt(v)
            denominator /= scalar(correction2_sqrt)
            denominator += scalar(self.eps)
            param -= scalar(step_size) * m / denominator


def mlp(rng, dtype=np.float32, init="pytorch"):
    """The report's MLP, by default initialised like PyTorch's nn.Linear (U(+-1/sqrt(fan_in)) for W and b)."""
    return Sequential(Flatten(),
                      Linear(784, 128, rng, dtype, init, input_grad=False), ReLU(),
                      Linear(128, 64, rng, dtype, init), ReLU(),
                      Linear(64, 10, rng, dtype, init))


def train_epoch(model, loss_fn, optimizer, images, labels, order, batch_size, progress, halves=None):
    """One pass over the training set in ``order`` (a permutation of its indices), one optimizer step per batch.

    halves: for the fast path only (cnn_numpy.py --layers fast; skip it on a first reading): a
    fast_cnn.halves.Halves over these images, which computes each batch's gradients as two halves. None: each
    batch forward and backward whole, below.
    """
    for start in range(0, len(images), batch_size):
        batch = order[start:start + batch_size]
        if halves is None:
            x, y = images[batch], labels[batch]  # per batch: cheaper than gathering the whole set per epoch
            logits = model.forward(x)
            loss = loss_fn.forward(logits, y)
            model.backward(loss_fn.backward())  # every layer's dW, db for this batch's mean loss
            correct = np.count_nonzero(logits.argmax(axis=1) == y)
        else:
            loss, correct = halves.step(batch)
        optimizer.step()
        progress.step(loss, correct, len(batch))


def predict(model, images, batch_size=250):
    """Logits (N, 10) for ``images``, in batches: bounded memory, and faster than one huge batch here."""
    return np.concatenate([model.forward(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def fit(run, model, loss_fn, optimizer, data, batch_size, rng, shuffle, halves=None):
    """Train for run.epochs(), recording each epoch on the test set and the whole training set (--eval-train).

    halves: fast path only, as for train_epoch; it also computes the logits (its predict) when given.
    """
    x_train, y_train, x_test, y_test = data
    steps = math.ceil(len(x_train) / batch_size)
    data_order = DataOrder(rng, len(x_train), shuffle)
    logits = halves.predict if halves else functools.partial(predict, model)
    # Overflow warnings would only repeat what the divergence check reports in one line.
    with run, np.errstate(over="ignore", invalid="ignore", divide="ignore"), one_blas_thread():
        for epoch in run.epochs():
            with run.progress(epoch, steps) as progress:
                order, progress.order_digest = data_order()
                train_epoch(model, loss_fn, optimizer, x_train, y_train, order, batch_size, progress, halves)
            train_logits = logits(x_train) if run.evaluates_train(epoch) else None
            run.end_epoch(model.state_dict(), train_logits, y_train, logits(x_test), y_test)


def evaluate_checkpoint(run, model, data, checkpoint, halves=None):
    """--eval-only: put the checkpoint's weights in, take over its record, evaluate; returns the final numbers.

    checkpoint: (state, record, iteration_losses) as load_npz returns it, or None for a checkpoint in the
    original report's format (a pickled dict of arrays, e.g. model.pkl): common/original.py reads that, admitting
    only NumPy arrays and mapping its names onto this model's layers; its per-epoch losses become the loss graph.
    halves: as for fit().
    """
    if checkpoint is None:
        checkpoint = original.load_checkpoint(run.checkpoint, model, run.config)
    state, record, iteration_losses = checkpoint
    model.load_state_dict(state, run.checkpoint)
    run.restore(record, iteration_losses)
    x_train, y_train, x_test, y_test = data
    logits = halves.predict if halves else functools.partial(predict, model)
    with one_blas_thread():
        return run.evaluate(logits(x_train), y_train, logits(x_test), y_test)


def train_or_evaluate(run, model, loss_fn, optimizer, data, args, rng, test_images, checkpoint=None, halves=None):
    """Train (or, with --eval-only, evaluate the loaded ``checkpoint`` instead), then write every output.

    test_images: (N, 28, 28), the test images as the figures show them (unpermuted).
    halves: as for fit().
    """
    final = None
    if args.eval_only:
        final = evaluate_checkpoint(run, model, data, checkpoint, halves)
    else:
        fit(run, model, loss_fn, optimizer, data, args.batch_size, rng, args.shuffle, halves)
    run.finish(test_images, final)


def make_optimizer(model, args):
    """--optimizer sgd (with --momentum) or adam, with PyTorch's update rules."""
    if args.optimizer == "adam":
        return Adam(model, args.lr)
    return SGD(model, args.lr, args.momentum)


def prepare(args, model_name):
    """Parse-time work shared by the NumPy scripts: the checkpoint for --eval-only, the data flags, the seeds.

    Returns (checkpoint or None, init_rng, order_rng, dtype, (x_train, y_train, x_test, y_test), test_images),
    the images in ``dtype`` and shaped (N, 28, 28).
    """
    checkpoint = None  # the original's pickle is read once the model exists (evaluate_checkpoint)
    if args.eval_only and not original.is_pickle(args.checkpoint):
        checkpoint = load_npz(args.checkpoint, model_name)
    resolve_data_flags(args, checkpoint and checkpoint[1])
    init_rng, order_rng = seed_everything(args.seed)
    dtype = np.dtype(args.dtype)
    x_train, y_train, x_test, y_test, test_images = load_model_inputs(args.data_dir, args.limit_train,
                                                                      args.permute_pixels)
    data = (x_train.astype(dtype, copy=False), y_train, x_test.astype(dtype, copy=False), y_test)
    return checkpoint, init_rng, order_rng, dtype, data, test_images


def add_dtype_flag(parser, default):
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help=f"floating-point type of weights and activations (default: {default}; with "
                             "--eval-only, the checkpoint's)")
    parser.set_defaults(dtype_default=default)


def build_parser():
    p = make_parser("nn_numpy", "Train the report's MLP on MNIST in pure NumPy.",
                    epochs=20, lr=0.1, batch_size=32, checkpoint_suffix=".npz", optimizer="sgd", init="normal")
    add_dtype_flag(p, "float64")  # the original's MLP: float32 images times float64 weights, float64 throughout
    return p


def main(argv=None):
    args = parse_args(build_parser(), argv)
    checkpoint, init_rng, order_rng, dtype, data, test_images = prepare(args, "nn_numpy")
    config = dump_config(args, architecture="784-128-ReLU-64-ReLU-10")
    run = Run("nn_numpy", "numpy", config, args, save_npz)
    model = mlp(init_rng, dtype, args.init)
    train_or_evaluate(run, model, SoftmaxCrossEntropy(), make_optimizer(model, args), data, args, order_rng,
                      test_images, checkpoint)


if __name__ == "__main__":
    sys.exit(run_main(main, "nn_numpy.py"))
