"""The report's MLP in pure NumPy: 784 -> 128 -> ReLU -> 64 -> ReLU -> 10 -> softmax, manual backprop, SGD.

    python nn_numpy.py                           # the report's run: 20 epochs, lr 0.1, batch 32, plain SGD
    python nn_numpy.py --epochs 3 --limit-train 2000 --batch-size 8    # a quick run that learns (~85-89%)
    python nn_numpy.py --lr 0.01 --momentum 0.9 --init pytorch    # nn_torch.py's recipe, in NumPy
    python nn_numpy.py --eval-only               # redraw figures/nn_numpy/ from the saved (or committed) weights

Read it top to bottom: layers, loss, optimizers, one epoch of training (train_epoch), the network, main. Each
layer has forward(x) and backward(dout) -> dx (dout = dL/d output, dx = dL/d input, L the batch's mean loss)
and keeps its parameters and gradients as attributes (W, b, dW, db). common/harness_numpy.py runs the epochs,
evaluation and outputs around train_epoch: skip it at first. By default the run follows the original's code: N(0, 0.1^2)
weights, zero biases, float64, one data order kept for every epoch (--init, --dtype, --shuffle change them).
"""

import functools
import math
import sys

import numpy as np

from common.checkpoint import check_shapes
from common.cli import add_dtype_flag, make_parser, parse_args, run_main


def init_weights(shape, fan_in, fan_out, init, rng, dtype):
    """(W of ``shape``, bound): the caller draws its bias b ~ U(-bound, bound).

    init="pytorch": W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and bound = 1/sqrt(fan_in), PyTorch's default.
    init="xavier":  W ~ U(-sqrt(6/(fan_in+fan_out)), +...) (Glorot & Bengio 2010) and bound = 0, so b = 0.
    init="normal":  W ~ N(0, 0.1^2) and bound = 0, so b = 0: the original report's NumPy MLP.
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
    """y = x @ W + b.  x: (N, in) -> y: (N, out); W: (in, out), PyTorch's nn.Linear weight transposed; b: (out,).
    input_grad=False: backward returns None instead of dx (for a first layer, whose dx nobody uses)."""

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
        """dout (N, out) -> dx (N, in). Every output y[n, j] = sum_i x[n, i] W[i, j] + b[j], so by the chain rule

            dW[i, j] = sum_n x[n, i] dout[n, j]     ->  dW = x.T @ dout      (in, out)
            db[j]    = sum_n dout[n, j]             ->  db = dout.sum(0)     (out,)
            dx[n, i] = sum_j dout[n, j] W[i, j]     ->  dx = dout @ W.T      (N, in)

        dW and db sum over the batch because every example uses the same W and b, so their contributions add;
        there is no 1/N here because dout already carries it (SoftmaxCrossEntropy.backward divides by N).
        dW and db are assigned, not added to: each batch's backward replaces the last batch's gradients, so
        no zero_grad() is needed (PyTorch accumulates into .grad, hence its zero_grad).
        """
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T if self.input_grad else None


class ReLU:
    """y = max(x, 0), any shape."""

    params = ()

    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, dout):
        """dy/dx is 1 where x > 0 and 0 elsewhere (at exactly 0 taken as 0, as PyTorch does): dx = dout * (x > 0),
        written with the stored output, since out > 0 exactly where x > 0."""
        return dout * (self.out > 0)


class Flatten:
    """(N, ...) -> (N, prod(...)), C order, as torch.nn.Flatten. backward only reshapes the gradient back."""

    params = ()

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dout):
        return None if dout is None else dout.reshape(self.x_shape)


class SoftmaxCrossEntropy:
    """Softmax and the mean cross-entropy, fused.  logits z: (N, C), labels y: (N,) ints in [0, C).

        p[n] = softmax(z[n]),   L = -(1/N) sum_n log p[n, y[n]]

    computed stably as log p[n, y] = z[n, y] - m - log sum_c exp(z[n, c] - m) with m = max_c z[n, c].
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
        """-> dL/dz = (p - onehot(y)) / N, (N, C). Per example, -log p_y = -z_y + log sum_c exp(z_c), whose
        derivative by z_k is -[k = y] + exp(z_k) / sum_c exp(z_c) = p_k - [k = y]; the mean divides by N."""
        n = len(self.labels)
        dlogits = self.probs.copy()
        dlogits[np.arange(n), self.labels] -= 1
        return dlogits / dlogits.dtype.type(n)


class Sequential:
    """Layers applied in order. forward runs them first to last; backward runs them last to first, each turning
    the gradient of its output into the gradient of its input (the chain rule, one layer at a time). Parameters
    are named like torch.nn.Sequential's: "1.W" is "1.weight" (for a Linear transposed)."""

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
        return {f"{i}.{name}": getattr(layer, name).copy() for i, layer in enumerate(self.layers)
                for name in layer.params}

    def load_state_dict(self, state, source="checkpoint"):
        own = self.state_dict()
        check_shapes({k: v.shape for k, v in own.items()}, {k: v.shape for k, v in state.items()}, source)
        for i, layer in enumerate(self.layers):
            for name in layer.params:
                setattr(layer, name, np.array(state[f"{i}.{name}"], dtype=own[f"{i}.{name}"].dtype))


class SGD:
    """Stochastic gradient descent, in place, for every parameter p of ``model``: torch.optim.SGD's rule.

    momentum 0: p -= lr * dp.  momentum mu > 0: buffer b = dp on the first step, then b = mu * b + dp, and
    p -= lr * b (dampening 0, no Nesterov, no weight decay); one buffer per parameter, in its dtype.
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
            if self.momentum:  # b = dp on the first step (a copy: dp may be reused), then b = mu * b + dp
                b = self.buffers.get(i)
                grad = self.buffers[i] = (np.array(grad, dtype=param.dtype) if b is None
                                          else b * param.dtype.type(self.momentum) + grad)
            param -= param.dtype.type(self.lr) * grad


class Adam:
    """Adam (Kingma & Ba 2015) as torch.optim.Adam computes it: amsgrad off, weight decay 0.

    t += 1;  m = b1 m + (1 - b1) dp;  v = b2 v + (1 - b2) dp^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    The bias correction: m and v start at 0, so after t steps they are the averages shrunk by (1 - b^t) (the
    weights of the t gradients sum to 1 - b^t, not 1); dividing by it undoes the pull towards 0 of the first steps.
    m and v per parameter, in its dtype, in PyTorch's order of operations (so its float32 results match).
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
            m += scalar(1 - beta1) * (grad - m)  # = b1 m + (1 - b1) dp, in PyTorch's order (its lerp)
            v *= scalar(beta2)
            v += scalar(1 - beta2) * grad * grad
            denominator = np.sqrt(v)
            denominator /= scalar(correction2_sqrt)
            denominator += scalar(self.eps)
            param -= scalar(step_size) * m / denominator


def make_optimizer(model, args):
    """--optimizer sgd (with --momentum) or adam."""
    return Adam(model, args.lr) if args.optimizer == "adam" else SGD(model, args.lr, args.momentum)


def train_epoch(model, loss_fn, optimizer, images, labels, batch_size, order, progress):
    """One pass over the training set in ``order`` (a permutation of its indices), one optimizer step per batch:
    forward, loss, backward (every layer's dW, db for this batch's mean loss), step. ``progress``
    (common/harness_numpy.py) only records each batch's loss and accuracy."""
    for start in range(0, len(images), batch_size):
        batch = order[start:start + batch_size]
        x, y = images[batch], labels[batch]
        logits = model.forward(x)
        loss = loss_fn.forward(logits, y)
        model.backward(loss_fn.backward())
        optimizer.step()
        progress.step(loss, np.count_nonzero(logits.argmax(axis=1) == y), len(batch))


def mlp(rng, dtype=np.float32, init="pytorch"):
    """The report's MLP: (N, 28, 28) -> flatten (N, 784) -> 128 -> ReLU -> 64 -> ReLU -> 10 logits."""
    return Sequential(Flatten(),
                      Linear(784, 128, rng, dtype, init, input_grad=False), ReLU(),
                      Linear(128, 64, rng, dtype, init), ReLU(),
                      Linear(64, 10, rng, dtype, init))


def build_parser():
    p = make_parser("nn_numpy", "Train the report's MLP on MNIST in pure NumPy.",
                    epochs=20, lr=0.1, batch_size=32, checkpoint_suffix=".npz", optimizer="sgd", init="normal")
    return add_dtype_flag(p, "float64", "the original's MLP multiplied float32 images by float64 weights")


def main(argv=None):
    from common import harness_numpy  # the run harness: epochs, evaluation, outputs (skip it at first)

    args = parse_args(build_parser(), argv)
    setup = harness_numpy.prepare(args, "nn_numpy")  # seeds, MNIST as (x_train, y_train, x_test, y_test), dtype
    model = mlp(setup.init_rng, setup.dtype, args.init)
    x_train, y_train = setup.data[:2]
    epoch = functools.partial(train_epoch, model, SoftmaxCrossEntropy(), make_optimizer(model, args), x_train,
                              y_train, args.batch_size)  # epoch(order, progress): harness_numpy.fit calls it
    harness_numpy.train_or_evaluate(args, "nn_numpy", model, epoch, setup, "the layers of nn_numpy.py, one "
                                    "process", architecture="784-128-ReLU-64-ReLU-10")


if __name__ == "__main__":
    sys.exit(run_main(main, "nn_numpy.py"))
