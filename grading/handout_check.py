"""Checks the parts of nn_numpy.py and cnn_numpy.py you have written, one at a time, with NumPy alone.

    python check.py              # every part
    python check.py linear       # one module: linear, relu, softmax, sgd, conv, pool; or one part: ReLU.backward

For each part you have written, a known-answer test on small fixed inputs (the expected numbers, in
check_data.json, come from a correct solution) and, for a backward, your gradient against centred finite
differences of your own forward, in float64. Each line gives CS231n's relative error,
max |a - b| / max(1e-8, |a| + |b|), and "ok" below 1e-7 against a known answer, below 1e-6 against finite
differences (right code lands near 1e-10; a convolution's dx, summing many terms, near 1e-7). A failure says
what it can: a wrong shape, a constant factor (a 1/N too many or too few), the worst entry. Some checks are
rules: a forward must leave its input unchanged; with tied maxima, max pooling may split the gradient among
them, as long as it goes to the maxima only and sums to dout. Max pooling on a 5x5 input drops the last row
and column (they belong to no window). A part that still raises NotImplementedError is
"not written yet". The exit status is 0 when every part you have written passes.

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


# --- the checks. Each returns (known, gradients, rules): {name: output compared with the stored answer};
# [(name, your gradient, f, the array it is of)], compared with the finite differences of f() over the array;
# [(name, passes, what it means)], a property that has more than one right answer (max pooling's ties) ------

def forward(layer_or_function, x, *args):
    """(y, the rule that x is left as it was): a forward must not change its input (the layer before, or a
    finite difference, still needs it)."""
    before = x.copy()
    y = layer_or_function(x, *args)
    same = bool(np.array_equal(x, before))
    return y, ("x left unchanged", same, "forward leaves its input as it was" if same else
               "forward changed its input x in place: compute into a new array (np.maximum(x, 0), x - m, ...)")


def linear(nn, r):
    layer = nn.Linear(4, 3, rng(0), np.float64)
    layer.W, layer.b = r.normal(size=(4, 3)), r.normal(size=3)
    return layer, r.normal(size=(5, 4))


def check_linear_forward(nn, cnn):
    layer, x = linear(nn, rng(10))
    y, kept = forward(layer.forward, x)
    return {"y": y}, [], [kept]


def layer_gradients(layer, x, dout):
    """A layer with W and b: its dx, dW, db for ``dout``, and each against finite differences of
    sum(forward(x) * dout), whose gradient is exactly what backward(dout) returns and stores."""
    layer.forward(x)
    dx = layer.backward(dout)
    known = {"dx": dx, "dW": layer.dW, "db": layer.db}
    f = lambda: float(np.sum(layer.forward(x) * dout))  # noqa: E731
    return known, [(name, known[name], f, array) for name, array in (("dx", x), ("dW", layer.W),
                                                                      ("db", layer.b))], []


def check_linear_backward(nn, cnn):
    r = rng(11)
    layer, x = linear(nn, r)
    return layer_gradients(layer, x, r.normal(size=(5, 3)))


def with_zeros(r, shape):
    x = away_from_zero(r, shape)
    x.flat[::5] = 0.0       # exactly 0: ReLU's output 0, its gradient 0 (as PyTorch)
    return x


def check_relu_forward(nn, cnn):
    y, kept = forward(nn.ReLU().forward, with_zeros(rng(20), (4, 6)))
    return {"y": y}, [], [kept]


def check_relu_backward(nn, cnn):
    r = rng(21)
    relu, x, dout = nn.ReLU(), with_zeros(r, (4, 6)), r.normal(size=(4, 6))
    relu.forward(x)
    known = {"dx, x with exact zeros": relu.backward(dout)}
    smooth = away_from_zero(r, (4, 6))        # finite differences only away from the kink at 0
    relu.forward(smooth)
    dx = relu.backward(dout)
    return known, [("dx", dx, lambda: float(np.sum(relu.forward(smooth) * dout)), smooth)], []


def check_softmax_forward(nn, cnn):
    r = rng(30)
    logits, labels = r.normal(size=(5, 10)), r.integers(0, 10, 5)
    wide = logits.copy()
    wide[:, 3] += 800.0                        # one logit 800 above the rest: exp(800) overflows unless shifted
    loss, kept = forward(lambda z: nn.SoftmaxCrossEntropy().forward(z, labels), logits)
    return {"loss": loss, "loss, logits near 1000": nn.SoftmaxCrossEntropy().forward(logits + 1000, labels),
            "loss, one logit +800": nn.SoftmaxCrossEntropy().forward(wide, labels)}, [], [kept]


def check_softmax_backward(nn, cnn):
    r = rng(31)
    loss, logits, labels = nn.SoftmaxCrossEntropy(), r.normal(size=(5, 10)), r.integers(0, 10, 5)
    loss.forward(logits, labels)
    dz = loss.backward()
    return {"dlogits": dz}, [("dlogits", dz, lambda: float(loss.forward(logits, labels)), logits)], []


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
            known[f"W, momentum {momentum:g}, step {step}"] = model.layers[0].W.copy()
            known[f"b, momentum {momentum:g}, step {step}"] = model.layers[0].b.copy()
    return known, [], []


def conv_inputs(r):
    return r.normal(size=(2, 2, 5, 5)), r.normal(size=(3, 2, 3, 3)), r.normal(size=3)


def check_conv_forward_loops(nn, cnn):
    x, W, b = conv_inputs(rng(50))
    y, kept = forward(cnn.conv_forward_loops, x, W, b, 1)
    return {"y": y}, [], [kept]


def check_conv_backward_loops(nn, cnn):
    r = rng(51)
    x, W, b = conv_inputs(r)
    dout = r.normal(size=(2, 3, 5, 5))
    dx, dW, db = cnn.conv_backward_loops(x, W, dout, 1)
    known = {"dx": dx, "dW": dW, "db": db}
    f = lambda: float(np.sum(cnn.conv_forward_loops(x, W, b, 1) * dout))  # noqa: E731
    return known, [(name, known[name], f, array) for name, array in (("dx", x), ("dW", W), ("db", b))], []


def conv2d(cnn, r):
    x, W, b = conv_inputs(r)
    layer = cnn.Conv2d(2, 3, 3, padding=1, rng=rng(0), dtype=np.float64)
    layer.W, layer.b = W, b
    return layer, x


def check_conv2d_forward(nn, cnn):
    layer, x = conv2d(cnn, rng(52))
    y, kept = forward(layer.forward, x)
    return {"y": y}, [], [kept]


def check_conv2d_backward(nn, cnn):
    r = rng(53)
    layer, x = conv2d(cnn, r)
    return layer_gradients(layer, x, r.normal(size=(2, 3, 5, 5)))


def ties_rule(x, dout, dx):
    """Where a window has several maxima, any split of its gradient among them is right: dx is 0 off the
    maxima (and on the odd last row and column, in no window), and each window's dx sums to its dout."""
    dx = np.asarray(dx, dtype=np.float64)
    if dx.shape != x.shape:
        return "dx, tied maxima", False, f"dx has shape {dx.shape}, x {x.shape}"
    h, w = dout.shape[2] * 2, dout.shape[3] * 2
    windows = x[:, :, :h, :w].reshape(*x.shape[:2], h // 2, 2, w // 2, 2)
    grads = dx[:, :, :h, :w].reshape(windows.shape)
    off_max = ((grads != 0) & (windows < windows.max(axis=(3, 5), keepdims=True))).any(axis=(3, 5))
    wrong_sum = ~np.isclose(grads.sum(axis=(3, 5)), dout)
    if off_max.any() or wrong_sum.any():
        at = tuple(int(i) for i in np.argwhere(off_max | wrong_sum)[0])
        n, c, i, j = at
        return "dx, tied maxima", False, (
            f"window {at}: " + ("gradient on an element that is not its maximum" if off_max[at] else
                                f"its gradient sums to {grads[n, c, i, :, j, :].sum():.4g}, dout is "
                                f"{dout[at]:.4g} (each tied maximum given all of it?)"))
    if np.any(dx[:, :, h:] != 0) or np.any(dx[:, :, :, w:] != 0):
        return "dx, tied maxima", False, "the odd last row or column, in no window, must get 0"
    return "dx, tied maxima", True, "the gradient goes to the maxima only and sums to dout"


def tied(r, shape):
    return r.integers(0, 3, size=shape).astype(np.float64)   # values 0, 1, 2: most windows tie


def check_maxpool_forward_loops(nn, cnn):
    y, kept = forward(cnn.maxpool_forward_loops, distinct(rng(60), (2, 2, 4, 4)))
    return {"y": y, "y, 5x5 input":
            cnn.maxpool_forward_loops(distinct(rng(64), (1, 2, 5, 5)))}, [], [kept]


def check_maxpool_backward_loops(nn, cnn):
    r = rng(61)
    x, dout = distinct(r, (2, 2, 4, 4)), r.normal(size=(2, 2, 2, 2))
    dx = cnn.maxpool_backward_loops(x, dout)
    f = lambda: float(np.sum(cnn.maxpool_forward_loops(x) * dout))  # noqa: E731
    x_tied, dout_tied = tied(r, (2, 2, 5, 5)), r.normal(size=(2, 2, 2, 2))
    return {"dx": dx}, [("dx", dx, f, x)], [ties_rule(x_tied, dout_tied,
                                                       cnn.maxpool_backward_loops(x_tied, dout_tied))]


def check_maxpool2d_forward(nn, cnn):
    y, kept = forward(cnn.MaxPool2d(2).forward, distinct(rng(62), (2, 2, 4, 4)))
    return {"y": y, "y, 5x5 input":
            cnn.MaxPool2d(2).forward(distinct(rng(65), (1, 2, 5, 5)))}, [], [kept]


def check_maxpool2d_backward(nn, cnn):
    r = rng(63)
    pool, x, dout = cnn.MaxPool2d(2), distinct(r, (2, 2, 4, 4)), r.normal(size=(2, 2, 2, 2))
    pool.forward(x)
    dx = pool.backward(dout)
    x_tied, dout_tied = tied(r, (2, 2, 5, 5)), r.normal(size=(2, 2, 2, 2))
    pool.forward(x_tied)
    rule = ties_rule(x_tied, dout_tied, pool.backward(dout_tied))
    return {"dx": dx}, [("dx", dx, lambda: float(np.sum(pool.forward(x) * dout)), x)], [rule]


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


def verdict(yours, expected, tolerance):
    """(ok, 'rel. error 1.9e-10  ok' or 'FAIL' with what is wrong: the shape, a constant factor, the worst entry)."""
    yours, expected = np.asarray(yours, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if yours.shape != expected.shape:
        return False, f"FAIL  shape {yours.shape}, expected {expected.shape}"
    error = rel_error(yours, expected)
    if error <= tolerance:
        return True, f"rel. error {error:.1e}  ok"
    text = f"rel. error {error:.1e}  FAIL"
    if not np.all(np.isfinite(yours)):
        return False, text + f": yours has {'nan' if np.isnan(yours).any() else 'inf'} (an overflow?)"
    nonzero = np.abs(expected) > 1e-12
    ratios = yours[nonzero] / expected[nonzero]
    if ratios.size and np.allclose(ratios, ratios[0], rtol=1e-6) and np.allclose(yours[~nonzero], 0):
        return False, text + f": yours is {ratios[0]:.4g} times the answer everywhere"
    worst = np.unravel_index(np.argmax(np.abs(yours - expected) / np.maximum(1e-8, np.abs(yours) +
                                                                            np.abs(expected))), yours.shape)
    where = f" at {tuple(int(i) for i in worst)}" if yours.ndim else ""
    return False, text + f": worst{where}: yours {yours[worst]:.6g}, expected {expected[worst]:.6g}"


def error_line(error):
    """'ValueError: ... (nn_numpy.py:57)': the exception and the innermost line of your files."""
    frames = [(frame.f_code.co_filename, line) for frame, line in traceback.walk_tb(error.__traceback__)]
    mine = [f"{Path(name).name}:{line}" for name, line in frames if Path(name).resolve().parent == HERE
            and Path(name).name != "check.py"]
    return f"{type(error).__name__}: {error}" + (f" ({mine[-1]})" if mine else "")


def run_check(part, check, nn, cnn, expected):
    """The lines of one part, and whether it passes (None: not written yet, or waiting on another part)."""
    if is_blank(part, nn, cnn):
        return [f"{part:<30} not written yet"], None
    try:
        known, gradients, rules = check(nn, cnn)
    except NotImplementedError as error:
        return [f"{part:<30} {unwritten(error)}"], None
    except Exception as error:  # noqa: BLE001 - a student's bug is a line, not a traceback
        return [f"{part:<30} FAIL  {error_line(error)}"], False
    lines, ok = [], True
    for name, value in known.items():
        good, text = verdict(value, expected[name], KNOWN_TOLERANCE)
        ok &= good
        lines.append(f"{part:<30} {name:<26} known answer     {text}")
    for name, yours, f, array in gradients:
        try:
            good, text = verdict(yours, numeric_gradient(f, array), GRADIENT_TOLERANCE)
        except NotImplementedError as missing:
            lines.append(f"{part:<30} {name:<26} finite diff.     {unwritten(missing)}")
            continue
        except Exception as error:  # noqa: BLE001
            good, text = False, f"FAIL  {error_line(error)}"
        ok &= good
        lines.append(f"{part:<30} {name:<26} finite diff.     {text}")
    for name, good, meaning in rules:
        ok &= good
        lines.append(f"{part:<30} {name:<26} {'ok' if good else 'FAIL'}  {meaning}" if not good else
                     f"{part:<30} {name:<26} ok")
    return lines, ok


def main(argv=None):
    wanted = (sys.argv[1:] if argv is None else argv)[:1]
    if wanted and wanted[0].startswith("-"):
        print(__doc__)
        return 0 if wanted[0] in ("-h", "--help") else 2
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
    blank = [p for p in chosen if is_blank(p, nn_numpy, cnn_numpy)]
    checked = [p for p, v in verdicts.items() if v is not None]
    failed = [p for p, v in verdicts.items() if v is False]
    waiting = len(chosen) - len(blank) - len(checked)
    print(f"\n{len(chosen) - len(blank)} of {len(chosen)} parts written" +
          (f" ({waiting} waiting on another part)" if waiting else "") + "; " +
          (f"{len(failed)} fail: {', '.join(failed)}" if failed else
           "every checked part passes" if checked else "nothing to check yet"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
