"""Checks the parts of nn_numpy.py and cnn_numpy.py you have written, one at a time, with NumPy alone.

    python check.py              # every part
    python check.py linear       # one module: linear, relu, softmax, sgd, conv, pool; or one part: ReLU.backward

For each part you have written, a known-answer test on small fixed inputs (the expected numbers, in
check_data.json, come from a correct solution) and, for a backward, your gradient against centred finite
differences of your own forward, in float64. Each line gives CS231n's relative error,
max |a - b| / max(1e-8, |a| + |b|): around 1e-10 is right, above 1e-6 is a bug. A part that still raises
NotImplementedError is "not written yet". The exit status is 0 when every part you have written passes.

These are the public checks. The grader's tests are hidden and differ: other shapes and seeds, ties in max
pooling, the networks trained as a whole.
"""

import ast
import inspect
import json
import sys
import textwrap
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KNOWN_TOLERANCE = 1e-7      # your output against the stored answer
GRADIENT_TOLERANCE = 1e-6   # your backward against finite differences of your forward
H = 1e-5                    # the finite-difference step


def rel_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return np.inf
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))) if a.size else 0.0


def numeric_gradient(f, array):
    """d f() / d array by centred differences, perturbing ``array`` in place (and putting it back)."""
    grad = np.zeros_like(array, dtype=np.float64)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + H
        up = f()
        array[index] = old - H
        down = f()
        array[index] = old
        grad[index] = (up - down) / (2 * H)
    return grad


def rng(seed):
    return np.random.default_rng(seed)


def away_from_zero(r, shape):
    """Values with |x| >= 0.2, so a finite difference never crosses ReLU's kink."""
    return r.choice([-1.0, 1.0], size=shape) * r.uniform(0.2, 1.5, size=shape)


def distinct(r, shape):
    """Values far apart (no two within 0.01), so max pooling has no ties and differences never swap a maximum."""
    return (r.permutation(int(np.prod(shape))).reshape(shape) * 0.05 + r.uniform(0, 0.01, size=shape))


# --- the checks: each returns ({name: output to compare with the stored answer}, [(name, your gradient, f, the
# array it is of)]): run_check takes the finite differences of f() over the array ---------------------------

def linear(nn, r):
    layer = nn.Linear(4, 3, rng(0), np.float64)
    layer.W, layer.b = r.normal(size=(4, 3)), r.normal(size=3)
    return layer, r.normal(size=(5, 4))


def check_linear_forward(nn, cnn):
    layer, x = linear(nn, rng(10))
    return {"y": layer.forward(x)}, []


def layer_gradients(layer, x, dout):
    """A layer with W and b: its dx, dW, db for ``dout``, and each against finite differences of
    sum(forward(x) * dout), whose gradient is exactly what backward(dout) returns and stores."""
    layer.forward(x)
    dx = layer.backward(dout)
    known = {"dx": dx, "dW": layer.dW, "db": layer.db}
    f = lambda: float(np.sum(layer.forward(x) * dout))  # noqa: E731
    return known, [(name, known[name], f, array) for name, array in (("dx", x), ("dW", layer.W), ("db", layer.b))]


def check_linear_backward(nn, cnn):
    r = rng(11)
    layer, x = linear(nn, r)
    return layer_gradients(layer, x, r.normal(size=(5, 3)))


def check_relu_forward(nn, cnn):
    return {"y": nn.ReLU().forward(away_from_zero(rng(20), (4, 6)))}, []


def check_relu_backward(nn, cnn):
    r = rng(21)
    relu, x, dout = nn.ReLU(), away_from_zero(r, (4, 6)), r.normal(size=(4, 6))
    relu.forward(x)
    dx = relu.backward(dout)
    return {"dx": dx}, [("dx", dx, lambda: float(np.sum(relu.forward(x) * dout)), x)]


def check_softmax_forward(nn, cnn):
    r = rng(30)
    logits, labels = r.normal(size=(5, 10)), r.integers(0, 10, 5)
    return {"loss": nn.SoftmaxCrossEntropy().forward(logits, labels),
            "loss, logits near 1000": nn.SoftmaxCrossEntropy().forward(logits + 1000, labels)}, []


def check_softmax_backward(nn, cnn):
    r = rng(31)
    loss, logits, labels = nn.SoftmaxCrossEntropy(), r.normal(size=(5, 10)), r.integers(0, 10, 5)
    loss.forward(logits, labels)
    dz = loss.backward()
    return {"dlogits": dz}, [("dlogits", dz, lambda: float(loss.forward(logits, labels)), logits)]


def check_sgd_step(nn, cnn):
    r, known = rng(40), {}
    for momentum in (0.0, 0.9):
        model = nn.Sequential(nn.Linear(3, 2, rng(0), np.float64))
        layer = model.layers[0]
        layer.W, layer.b = r.normal(size=(3, 2)), r.normal(size=2)
        optimizer = nn.SGD(model, lr=0.1, momentum=momentum)
        for step in (1, 2):
            layer.dW, layer.db = r.normal(size=(3, 2)), r.normal(size=2)
            optimizer.step()
            known[f"W, momentum {momentum:g}, step {step}"] = layer.W.copy()
            known[f"b, momentum {momentum:g}, step {step}"] = layer.b.copy()
    return known, []


def conv_inputs(r):
    return r.normal(size=(2, 2, 5, 5)), r.normal(size=(3, 2, 3, 3)), r.normal(size=3)


def check_conv_forward_loops(nn, cnn):
    x, W, b = conv_inputs(rng(50))
    return {"y": cnn.conv_forward_loops(x, W, b, 1)}, []


def check_conv_backward_loops(nn, cnn):
    r = rng(51)
    x, W, b = conv_inputs(r)
    dout = r.normal(size=(2, 3, 5, 5))
    dx, dW, db = cnn.conv_backward_loops(x, W, dout, 1)
    known = {"dx": dx, "dW": dW, "db": db}
    f = lambda: float(np.sum(cnn.conv_forward_loops(x, W, b, 1) * dout))  # noqa: E731
    return known, [(name, known[name], f, array) for name, array in (("dx", x), ("dW", W), ("db", b))]


def conv2d(cnn, r):
    x, W, b = conv_inputs(r)
    layer = cnn.Conv2d(2, 3, 3, padding=1, rng=rng(0), dtype=np.float64)
    layer.W, layer.b = W, b
    return layer, x


def check_conv2d_forward(nn, cnn):
    layer, x = conv2d(cnn, rng(52))
    return {"y": layer.forward(x)}, []


def check_conv2d_backward(nn, cnn):
    r = rng(53)
    layer, x = conv2d(cnn, r)
    return layer_gradients(layer, x, r.normal(size=(2, 3, 5, 5)))


def check_maxpool_forward_loops(nn, cnn):
    return {"y": cnn.maxpool_forward_loops(distinct(rng(60), (2, 2, 4, 4)))}, []


def check_maxpool_backward_loops(nn, cnn):
    r = rng(61)
    x, dout = distinct(r, (2, 2, 4, 4)), r.normal(size=(2, 2, 2, 2))
    dx = cnn.maxpool_backward_loops(x, dout)
    f = lambda: float(np.sum(cnn.maxpool_forward_loops(x) * dout))  # noqa: E731
    return {"dx": dx}, [("dx", dx, f, x)]


def check_maxpool2d_forward(nn, cnn):
    return {"y": cnn.MaxPool2d(2).forward(distinct(rng(62), (2, 2, 4, 4)))}, []


def check_maxpool2d_backward(nn, cnn):
    r = rng(63)
    pool, x, dout = cnn.MaxPool2d(2), distinct(r, (2, 2, 4, 4)), r.normal(size=(2, 2, 2, 2))
    pool.forward(x)
    dx = pool.backward(dout)
    return {"dx": dx}, [("dx", dx, lambda: float(np.sum(pool.forward(x) * dout)), x)]


# part (as grading.toml's [handout] names it) -> (module, check)
CHECKS = {"Linear.forward": ("linear", check_linear_forward), "Linear.backward": ("linear", check_linear_backward),
          "ReLU.forward": ("relu", check_relu_forward), "ReLU.backward": ("relu", check_relu_backward),
          "SoftmaxCrossEntropy.forward": ("softmax", check_softmax_forward),
          "SoftmaxCrossEntropy.backward": ("softmax", check_softmax_backward),
          "SGD.step": ("sgd", check_sgd_step),
          "conv_forward_loops": ("conv", check_conv_forward_loops),
          "conv_backward_loops": ("conv", check_conv_backward_loops),
          "Conv2d.forward": ("conv", check_conv2d_forward), "Conv2d.backward": ("conv", check_conv2d_backward),
          "maxpool_forward_loops": ("pool", check_maxpool_forward_loops),
          "maxpool_backward_loops": ("pool", check_maxpool_backward_loops),
          "MaxPool2d.forward": ("pool", check_maxpool2d_forward),
          "MaxPool2d.backward": ("pool", check_maxpool2d_backward)}


def answers(nn, cnn):
    """{part: {name: output as nested lists}} of a correct solution: what check_data.json stores."""
    return {part: {name: np.asarray(value, dtype=np.float64).tolist() for name, value in check(nn, cnn)[0].items()}
            for part, (_, check) in CHECKS.items()}


def unwritten(error):
    """"not checked yet: needs X written first", X the part whose NotImplementedError stopped the check."""
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    raised_in = frames[-1].f_code.co_name if frames else ""
    owner = frames[-1].f_locals.get("self") if frames else None
    return f"not checked yet: needs {type(owner).__name__ + '.' if owner is not None else ''}{raised_in} written first"


def is_blank(part, nn, cnn):
    """Whether the part's body is still the handout's single `raise NotImplementedError`."""
    owner, _, method = part.rpartition(".")
    for module in (nn, cnn):
        obj = getattr(module, owner or method, None)
        obj = getattr(obj, method, None) if owner else obj
        if obj is None:
            continue
        try:
            node = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
        except (OSError, TypeError, SyntaxError, IndexError):
            return False
        body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])
    return False


def run_check(part, check, nn, cnn, expected):
    """The lines of one part, and whether it passes (None: not written yet)."""
    if is_blank(part, nn, cnn):
        return [f"{part:<30} not written yet"], None
    try:
        known, gradients = check(nn, cnn)
    except NotImplementedError as error:
        return [f"{part:<30} {unwritten(error)}"], None
    except Exception as error:  # noqa: BLE001 - a student's bug is a line, not a traceback
        return [f"{part:<30} FAIL  {type(error).__name__}: {error}"], False
    lines, ok = [], True
    for name, value in known.items():
        error = rel_error(value, expected[name])
        ok &= error <= KNOWN_TOLERANCE
        lines.append(f"{part:<30} {name:<26} known answer     rel. error {error:.1e}  "
                     f"{'ok' if error <= KNOWN_TOLERANCE else 'FAIL'}")
    for name, yours, f, array in gradients:
        try:
            error = rel_error(yours, numeric_gradient(f, array))
        except NotImplementedError as missing:
            lines.append(f"{part:<30} {name:<26} finite diff.     {unwritten(missing)}")
            continue
        ok &= error <= GRADIENT_TOLERANCE
        lines.append(f"{part:<30} {name:<26} finite diff.     rel. error {error:.1e}  "
                     f"{'ok' if error <= GRADIENT_TOLERANCE else 'FAIL'}")
    return lines, ok


def main(argv=None):
    wanted = (sys.argv[1:] if argv is None else argv)[:1]
    sys.path.insert(0, str(HERE))
    import cnn_numpy
    import nn_numpy

    expected = json.loads((HERE / "check_data.json").read_text(encoding="utf-8"))
    chosen = {part: check for part, (module, check) in CHECKS.items()
              if not wanted or wanted[0].lower() in (module, part.lower())}
    if not chosen:
        print(f"check.py: no module or part {wanted[0]!r}; the modules are "
              f"{', '.join(dict.fromkeys(m for m, _ in CHECKS.values()))}", file=sys.stderr)
        return 2
    verdicts = {}
    for part, check in chosen.items():
        lines, verdicts[part] = run_check(part, check, nn_numpy, cnn_numpy, expected[part])
        print("\n".join(lines))
    written = [p for p, v in verdicts.items() if v is not None]
    failed = [p for p, v in verdicts.items() if v is False]
    print(f"\n{len(written)} of {len(chosen)} parts written; " +
          (f"{len(failed)} fail: {', '.join(failed)}" if failed else "every written part passes"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
