"""Inside the sandbox: the student's own modules composed by the grader into the report's two networks.

    meta, arrays = mlp_train(namespace, inputs, steps=300, lr=0.1, batch=32)   # {"scores": held-out outputs}
    meta, arrays = cnn_overfit(namespace, inputs, steps=20, lr=0.05)           # {"scores": outputs per step}
    meta, arrays = mlp_gradient_check(namespace, inputs)                        # {"analytic", "numeric"}

The MLP is Linear 784->128, ReLU, Linear 128->64, ReLU, Linear 64->10, softmax and cross-entropy, trained with
plain SGD on the parameters and gradients the student's layers keep (their own SGD is a part of its own); the CNN
is the report's (conv 1->16 pad 1, ReLU, pool 2, conv 16->32, ReLU, pool 2, Linear 1568->10) on one small batch.
Every layer starts from the grader's weights (inputs W1, b1, ...), so a regrade gives the same numbers. Only the
networks' outputs come back: the accuracy, the loss and the gradient check are computed by the grader, outside.
"""

import numpy as np

from .finding import (BACKWARD, FORWARD, Missing, arrays_of, call, candidates, construct, first, function_pair,
                      gradient_of, layer_with_params, method, set_array, short, snapshot)
from .probes import fused_loss


class Layer:
    """A student's layer class with parameters (Linear or Conv), built, given the grader's weights, and driven."""

    def __init__(self, namespace, kind, sizes, w_shapes, layout_order, W, b, prefer, overrides=None):
        c_out = W.shape[0] if kind == "conv" else W.shape[1]
        (self.instance, self.w_path, layout, self.b_path, b_shape,
         self.where) = layer_with_params(namespace, kind, (overrides or {}).get(kind), sizes, w_shapes, (c_out,),
                                         prefer)
        self.order = layout_order[layout]
        self.w_shape, self.b_shape = w_shapes[layout], b_shape
        set_array(self.instance, self.w_path, np.ascontiguousarray(W.transpose(self.order)))
        set_array(self.instance, self.b_path, b.reshape(b_shape).copy())
        self.fwd, self.bwd = method(self.instance, FORWARD), method(self.instance, BACKWARD)
        if not self.fwd or not self.bwd:
            raise Missing(f"{self.where} lacks a forward- or backward-like method")
        self.grad_paths = None

    def forward(self, x):
        return first(call(getattr(self.instance, self.fwd), x))

    def backward(self, dout):
        before = snapshot(self.instance) if self.grad_paths is None else {}
        returned = call(getattr(self.instance, self.bwd), dout)
        returned = tuple(returned) if isinstance(returned, (tuple, list)) else (returned,)
        if self.grad_paths is None:
            self.grad_paths = (gradient_of(self.instance, {self.w_shape}, self.w_path, before, returned)[1],
                               gradient_of(self.instance, {self.b_shape}, self.b_path, before, returned)[1])
            if None in self.grad_paths:
                raise Missing(f"{self.where}: no gradient of its weights or bias found after backward")
        self.grads = [returned[int(p[9:-1])] if p.startswith("returned[") else self.array(p) for p in self.grad_paths]
        return returned[0]

    def array(self, path):
        return arrays_of(self.instance)[path][2]

    def step(self, lr):
        """Plain SGD on the layer's own parameters and gradients: p -= lr * dp."""
        for path, grad in zip((self.w_path, self.b_path), self.grads):
            param = self.array(path)
            set_array(self.instance, path, param - lr * np.reshape(grad, param.shape))

    def weight_gradient(self):
        """dW in the grader's layout."""
        return np.reshape(self.grads[0], self.w_shape).transpose(np.argsort(self.order))


class Stateless:
    """A student's ReLU or max-pool class (or function pair), driven forward and backward."""

    def __init__(self, namespace, kind, sizes, prefer, overrides=None):
        self.instance = self.pair = None
        override = (overrides or {}).get(kind)
        for file, name, cls in candidates(namespace, kind, override, prefer):
            if isinstance(cls, type):
                self.instance, _ = construct(cls, sizes)
                self.where = f"{short(file)}:{name}"
                break
        if self.instance is None:
            forward, backward, self.where = function_pair(namespace, kind, override)
            self.pair = (forward, backward)
        else:
            self.fwd, self.bwd = method(self.instance, FORWARD), method(self.instance, BACKWARD)

    def forward(self, x):
        if self.pair:
            result = call(self.pair[0], x)
            self.x, self.cache = x, result[1] if isinstance(result, tuple) and len(result) == 2 else None
            return first(result)
        return first(call(getattr(self.instance, self.fwd), x))

    def backward(self, dout):
        if self.pair:
            return first(call(self.pair[1], dout, self.cache if self.cache is not None else self.x))
        return first(call(getattr(self.instance, self.bwd), dout))


def loss_class_gradient(cls):
    """gradient(p, onehot) through a student's loss class: forward with integer labels (else one-hot), backward."""
    def gradient(p, onehot):
        instance, _ = construct(cls, {})
        forward = getattr(instance, method(instance, FORWARD))
        try:
            call(forward, p, onehot.argmax(axis=1))
        except Missing:
            raise
        except Exception:  # noqa: BLE001 - it wants one-hot labels
            call(forward, p, onehot)
        return call(getattr(instance, method(instance, BACKWARD)))
    return gradient


class Head:
    """Softmax and cross-entropy: the student's fused class, or their softmax and their loss gradient, chained
    through their softmax's backward unless the gradient already folds the softmax in (is dL/dz)."""

    def __init__(self, namespace, overrides=None):
        overrides = overrides or {}
        fused = fused_loss(namespace, overrides.get("loss"))
        if fused is not None:
            self.fused, _ = construct(fused[2], {})
            self.where = f"{short(fused[0])}:{fused[1]} (fused)"
            return
        self.fused = None
        self.softmax = Stateless(namespace, "softmax", {}, ("nn", "mlp"), overrides)
        grads = [(f, n, o) for f, n, o in candidates(namespace, "loss", overrides.get("loss"), ("nn", "mlp"))
                 if callable(o) and not isinstance(o, type) and any(w in n.lower() for w in ("grad", "back", "deriv"))]
        classes = [c for c in candidates(namespace, "loss", overrides.get("loss"), ("nn", "mlp")) if isinstance(c[2], type)]
        if grads:
            self.gradient = grads[0][2]
            self.where = f"{self.softmax.where} + {short(grads[0][0])}:{grads[0][1]}"
        elif classes:   # a loss class of its own: forward(p, labels), then backward() is dL/dp
            self.gradient = loss_class_gradient(classes[0][2])
            self.where = f"{self.softmax.where} + {short(classes[0][0])}:{classes[0][1]}"
        else:
            raise Missing("no loss-gradient function to train the composed network with")

    def forward(self, z, labels):
        if self.fused is not None:
            call(getattr(self.fused, method(self.fused, FORWARD)), z, labels)
            self.p = None
            return z
        self.p, self.labels = self.softmax.forward(z), labels
        return self.p

    def backward(self):
        if self.fused is not None:
            return first(call(getattr(self.fused, method(self.fused, BACKWARD))))
        onehot = np.eye(self.p.shape[1])[self.labels]
        g = np.asarray(first(call(self.gradient, self.p.copy(), onehot)), dtype=np.float64)
        folded = (self.p - onehot) / len(self.p)
        if g.shape == folded.shape and np.max(np.abs(g - folded)) <= 1e-6 * max(1.0, np.max(np.abs(folded))):
            return g  # already dL/dz: the softmax's backward is folded into the loss gradient
        return self.softmax.backward(g)


def mlp(namespace, inputs, overrides=None):
    layers = []
    for i, (n_in, n_out) in enumerate(((784, 128), (128, 64), (64, 10)), 1):
        layers.append(Layer(namespace, "linear", {"in": n_in, "out": n_out},
                            {"(in, out)": (n_in, n_out), "(out, in)": (n_out, n_in)},
                            {"(in, out)": (0, 1), "(out, in)": (1, 0)}, inputs[f"W{i}"], inputs[f"b{i}"],
                            ("nn", "mlp", "layer"), overrides))
        if i < 3:
            layers.append(Stateless(namespace, "relu", {}, ("nn", "mlp"), overrides))
    return layers


def run(layers, x):
    for layer in layers:
        x = layer.forward(x)
    return x


def back(layers, dout):
    for layer in reversed(layers):
        dout = layer.backward(dout)


def mlp_train(namespace, inputs, steps=300, lr=0.1, batch=32, overrides=None):
    """Train the composed MLP ``steps`` batches on inputs x_train/y_train in order; -> its outputs on x_test."""
    layers, head = mlp(namespace, inputs, overrides), Head(namespace, overrides)
    x, y = inputs["x_train"], inputs["y_train"].astype(int)
    for step in range(steps):
        start = (step * batch) % (len(x) - batch + 1)
        head.forward(run(layers, x[start:start + batch].copy()), y[start:start + batch])
        back(layers, head.backward())
        for layer in layers:
            if isinstance(layer, Layer):
                layer.step(lr)
    where = ", ".join(dict.fromkeys(layer.where for layer in layers))
    return {"found": f"MLP of {where}, {head.where}; {steps} steps of plain SGD, lr {lr}, batch {batch}"}, \
        {"scores": run(layers, inputs["x_test"].copy())}


def mlp_gradient_check(namespace, inputs, entries=8, h=1e-6, overrides=None):
    """dW of the first layer through the whole composed network (backward) beside centred finite differences of
    its loss, -mean log p[label] of the network's own softmax output, at ``entries`` weights."""
    layers, head = mlp(namespace, inputs, overrides), Head(namespace, overrides)
    x, y = inputs["x_check"], inputs["y_check"].astype(int)
    head.forward(run(layers, x.copy()), y)
    back(layers, head.backward())
    analytic = layers[0].weight_gradient()
    # the weights that matter most for this batch (a pixel that is 0 in every image has a zero gradient), and
    # random ones where backward says every gradient is 0
    picks = (np.argsort(-np.abs(analytic).reshape(-1))[:entries] if np.any(analytic)
             else np.random.default_rng(0).choice(analytic.size, entries, replace=False))
    numeric = []
    for flat in picks:
        index = np.unravel_index(flat, analytic.shape)
        values = []
        for sign in (1, -1):
            W = inputs["W1"].copy()
            W[index] += sign * h
            layers[0] = Layer(namespace, "linear", {"in": 784, "out": 128}, {"(in, out)": (784, 128),
                              "(out, in)": (128, 784)}, {"(in, out)": (0, 1), "(out, in)": (1, 0)}, W,
                              inputs["b1"], ("nn", "mlp", "layer"), overrides)
            z = run(layers, x.copy())
            if head.fused is None:
                p = head.softmax.forward(z)
            else:  # a fused loss keeps its probabilities to itself: softmax of the logits, stably
                shifted = z - z.max(axis=1, keepdims=True)
                p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            values.append(-np.mean(np.log(p[np.arange(len(y)), y])))
        numeric.append((values[0] - values[1]) / (2 * h))
    return {"found": "the composed MLP's first-layer dW against finite differences of its loss"}, \
        {"analytic": analytic.reshape(-1)[picks], "numeric": np.array(numeric)}


def cnn_overfit(namespace, inputs, steps=20, lr=0.05, overrides=None):
    """The report's CNN of the student's Conv, ReLU, max pool, Linear and loss, trained ``steps`` times on one small
    batch (x_batch, y_batch); -> its outputs on that batch after each step (steps + 1, N, 10)."""
    conv_layouts = {"(out, in, k, k)": (0, 1, 2, 3), "(k, k, in, out)": (2, 3, 1, 0), "(out, k, k, in)": (0, 2, 3, 1)}

    def conv(W, b):
        c_out, c_in, k, _ = W.shape
        return Layer(namespace, "conv", {"in": c_in, "out": c_out, "k": k, "stride": 1, "pad": 1},
                     {"(out, in, k, k)": W.shape, "(k, k, in, out)": (k, k, c_in, c_out),
                      "(out, k, k, in)": (c_out, k, k, c_in)}, conv_layouts, W, b, ("cnn", "conv"), overrides)

    pool_sizes = {"pool": 2, "stride": 2}
    layers = [conv(inputs["C1"], inputs["c1"]), Stateless(namespace, "relu", {}, ("cnn", "conv"), overrides),
              Stateless(namespace, "pool", pool_sizes, ("cnn", "conv"), overrides),
              conv(inputs["C2"], inputs["c2"]), Stateless(namespace, "relu", {}, ("cnn", "conv"), overrides),
              Stateless(namespace, "pool", pool_sizes, ("cnn", "conv"), overrides)]
    head_linear = Layer(namespace, "linear", {"in": 1568, "out": 10}, {"(in, out)": (1568, 10),
                        "(out, in)": (10, 1568)}, {"(in, out)": (0, 1), "(out, in)": (1, 0)}, inputs["L"],
                        inputs["l"], ("cnn", "conv"), overrides)
    head = Head(namespace, overrides)
    x, y = inputs["x_batch"], inputs["y_batch"].astype(int)
    scores = []
    for step in range(steps + 1):
        maps = run(layers, x.copy())
        z = head_linear.forward(maps.reshape(len(x), -1))
        scores.append(np.asarray(head.forward(z, y), dtype=np.float64))
        if step == steps:
            break
        d = head_linear.backward(head.backward())
        back(layers, np.reshape(d, maps.shape))
        for layer in (*layers, head_linear):
            if isinstance(layer, Layer):
                layer.step(lr)
    where = ", ".join(dict.fromkeys(layer.where for layer in (*layers, head_linear)))
    return {"found": f"CNN of {where}, {head.where}; {steps} steps on one batch of {len(x)}, lr {lr}"}, \
        {"scores": np.stack(scores)}
