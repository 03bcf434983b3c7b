"""The grader's side of the module tests: the inputs each part is called on, drawn from the class's secret seed,
the float64 NumPy reference each result is compared with, and the verdict. Nothing here runs student code; the
arrays come from the sandbox (grading/sandbox.py), which ran grading/inside/ beside the student's files.

    calls = probe_calls(seed, mnist)              # [Call]: what to run in the sandbox, with its inputs
    rows = judge(call, result, tolerances)        # [Row(part, verdict, error, detail)] for one call's arrays

The contract: forward gives the module's output, and backward the true vector-Jacobian product of that part's own
forward (dout -> dx, and every parameter's gradient). A factor moved between modules (the batch's 1/N in Linear
instead of the loss, a softmax whose backward passes the gradient through because the loss gradient already is
dL/dz) fails that part; the whole-network gradient check (mlp.gradient_check) shows beside it whether the student's
network is right as a whole, and grading.toml can allow such a convention.
"""

from dataclasses import dataclass, field

import numpy as np

from cnn_numpy import conv_backward_loops

VERDICTS = ("pass", "fail", "missing", "banned", "error", "timeout")


@dataclass
class Call:
    """One probe run in the sandbox: which function of grading/inside/, its arguments and its inputs."""
    name: str               # e.g. "linear.backward"
    probe: str              # "probes:linear" (a module of grading/inside/ and its function)
    args: dict
    inputs: dict            # name -> float64 array
    parts: tuple            # the rubric parts this call's arrays decide
    module: str = ""        # "linear", ...: where the grading config's overrides apply
    answers: dict = field(default_factory=dict)  # what the grader judges with and the sandbox never sees


@dataclass
class Row:
    part: str
    verdict: str
    error: float = None     # the relative error (CS231n's), where one was measured
    detail: str = ""
    found: str = ""
    extra: dict = field(default_factory=dict)


def rel_error(a, b):
    """max |a - b| / max(1e-8, |a| + |b|) elementwise (CS231n); inf where the shapes differ or a is not finite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


# --- the references, in float64 ------------------------------------------------------------------------------

def softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def conv_forward(x, W, b, stride, pad):
    """y[n, o, i, j] = b[o] + sum W[o, c, u, v] xp[n, c, i*s + u, j*s + v]."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = W.shape[2]
    ho, wo = (xp.shape[2] - k) // stride + 1, (xp.shape[3] - k) // stride + 1
    y = np.zeros((len(x), len(W), ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            y[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return y


def conv_backward(x, W, dout, stride, pad):
    """(dx, dW, db) of conv_forward; stride 1 through the kit's loops (themselves checked by finite differences)."""
    if stride == 1:
        return conv_backward_loops(x, W, dout, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dW, k = np.zeros_like(xp), np.zeros_like(W), W.shape[2]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + k), slice(j * stride, j * stride + k)
            dW += np.tensordot(dout[:, :, i, j], xp[:, :, rows, cols], axes=([0], [0]))
            dxp[:, :, rows, cols] += np.tensordot(dout[:, :, i, j], W, axes=([1], [0]))
    return dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]], dW, dout.sum(axis=(0, 2, 3))


def pool_windows(x, size, stride):
    ho, wo = (x.shape[2] - size) // stride + 1, (x.shape[3] - size) // stride + 1
    return [(i, j, slice(i * stride, i * stride + size), slice(j * stride, j * stride + size))
            for i in range(ho) for j in range(wo)], ho, wo


def pool_forward(x, size, stride):
    windows, ho, wo = pool_windows(x, size, stride)
    y = np.zeros((*x.shape[:2], ho, wo))
    for i, j, r, c in windows:
        y[:, :, i, j] = x[:, :, r, c].max(axis=(2, 3))
    return y


def pool_backward(x, dout, size, stride):
    """dx, each window's gradient to its first maximum in row-major order (PyTorch's rule), windows adding up."""
    windows, _, _ = pool_windows(x, size, stride)
    dx = np.zeros_like(x)
    n, c = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    for i, j, r, cols in windows:
        flat = x[:, :, r, cols].reshape(*x.shape[:2], -1).argmax(axis=2)
        u, v = np.unravel_index(flat, (size, size))
        np.add.at(dx, (n, c, r.start + u, cols.start + v), dout[:, :, i, j])
    return dx


def valid_tie_gradient(x, dout, dx, size, stride, tol):
    """True where ``dx`` sends each window's gradient only to its maxima, in any split that adds up to it (a
    subgradient: with ties, max pooling is not differentiable, and splitting or choosing are both right)."""
    windows, _, _ = pool_windows(x, size, stride)
    if stride != size or dx.shape != x.shape:
        return False
    for i, j, r, c in windows:
        block, grad = x[:, :, r, c], dx[:, :, r, c]
        is_max = block == block.max(axis=(2, 3), keepdims=True)
        if np.any(np.abs(grad[~is_max]) > tol) or \
                np.any(np.abs(grad.sum(axis=(2, 3)) - dout[:, :, i, j]) > tol * (1 + np.abs(dout[:, :, i, j]))):
            return False
    return True


# --- the inputs: one secret seed per class --------------------------------------------------------------------

def away_from_zero(x, margin=0.05):
    """x with no entry within ``margin`` of 0, where ReLU's slope is undefined."""
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin * 2, x)


def glorot(rng, fan_in, fan_out, shape):
    return rng.uniform(-1, 1, shape) * np.sqrt(6 / (fan_in + fan_out))


def probe_calls(seed, mnist):
    """[Call] of every part, inputs drawn from ``seed`` (the class's secret); ``mnist``: (train images (N, 784) in
    [0, 1], train labels) of which the first 9,600 train the composed MLP and images 50,000-51,999 judge it (the
    test set is never used)."""
    rng = np.random.default_rng(seed)
    n = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    calls = []

    def add(name, probe, inputs, parts, answers=None, **args):
        calls.append(Call(name, probe, args, {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()},
                          tuple(parts), name.split(".")[0], answers or {}))

    lin = {"x": n(6, 7), "W": n(7, 5), "b": n(5), "dout": n(6, 5)}
    add("linear.forward", "probes:linear", lin, ["linear.forward"], part="forward")
    add("linear.backward", "probes:linear", lin, ["linear.backward.dx", "linear.backward.dW", "linear.backward.db"],
        part="backward")
    act = {"x": away_from_zero(n(6, 9)), "dout": n(6, 9)}
    add("relu.forward", "probes:relu", act, ["relu.forward"], part="forward")
    add("relu.backward", "probes:relu", act, ["relu.backward"], part="backward")
    labels = rng.integers(0, 10, 6)
    z = 3 * n(6, 10)
    rows = np.arange(6)
    z[rows, labels] = np.maximum(z[rows, labels], z.max(axis=1) - 2)   # p[label] >= 1.3%: log(p + 1e-7) is right
    soft = {"x": z, "dout": n(6, 10), "labels": labels}
    add("softmax.forward", "probes:softmax", soft, ["softmax.forward"], part="forward")
    add("softmax.large_logits", "probes:softmax", {**soft, "x": 50 * z + 1000}, ["softmax.large_logits"],
        part="forward")
    add("softmax.backward", "probes:softmax", soft, ["softmax.backward"], part="backward")
    ce = {"z": z, "p": softmax(z), "labels": labels}
    add("loss.forward", "probes:loss", ce, ["loss.forward"], part="forward")
    add("loss.backward", "probes:loss", ce, ["loss.backward"], part="backward")
    add("sgd.step", "probes:sgd", {"lr": [0.05], "pool": n(300_000)}, ["sgd.step"], part="step")
    # C_in 2, C_out 4, k 3: no two weight layouts share a shape
    conv = {"x": n(2, 2, 7, 7), "W": n(4, 2, 3, 3), "b": n(4), "dout": n(2, 4, 7, 7), "stride": [1], "pad": [1]}
    add("conv.forward", "probes:conv", conv, ["conv.forward"], part="forward")
    add("conv.backward", "probes:conv", conv, ["conv.backward.dx", "conv.backward.dW", "conv.backward.db"],
        part="backward")
    strided = {**conv, "x": n(2, 2, 8, 8), "dout": n(2, 4, 4, 4), "stride": [2]}
    add("conv.forward_stride", "probes:conv", strided, ["conv.forward_stride"], part="forward")
    add("conv.backward_stride", "probes:conv", strided, ["conv.backward_stride"], part="backward")
    pool = {"x": n(2, 3, 6, 6), "dout": n(2, 3, 3, 3), "size": [2], "stride": [2]}
    add("pool.forward", "probes:pool", pool, ["pool.forward"], part="forward")
    add("pool.backward", "probes:pool", pool, ["pool.backward"], part="backward")
    ties = {**pool, "x": rng.integers(0, 3, (2, 3, 6, 6))}
    add("pool.ties", "probes:pool", ties, ["pool.forward_ties", "pool.backward_ties"], part="both")
    overlap = {"x": n(2, 3, 7, 7), "dout": n(2, 3, 3, 3), "size": [3], "stride": [2]}
    add("pool.stride", "probes:pool", overlap, ["pool.forward_stride", "pool.backward_stride"], part="both")
    images, train_labels = mnist
    mlp = {"x_train": images[:9600], "y_train": train_labels[:9600], "x_test": images[50_000:52_000],
           "x_check": images[:16], "y_check": train_labels[:16]}
    for i, (a, b) in enumerate(((784, 128), (128, 64), (64, 10)), 1):
        mlp[f"W{i}"], mlp[f"b{i}"] = glorot(rng, a, b, (a, b)), np.zeros(b)
    add("mlp.train", "networks:mlp_train", mlp, ["mlp.train"], {"y_test": train_labels[50_000:52_000]}, steps=300,
        lr=0.1, batch=32)
    add("mlp.gradient_check", "networks:mlp_gradient_check", mlp, ["mlp.gradient_check"])
    cnn = {"C1": glorot(rng, 9, 144, (16, 1, 3, 3)), "c1": np.zeros(16), "C2": glorot(rng, 144, 288, (32, 16, 3, 3)),
           "c2": np.zeros(32), "L": glorot(rng, 1568, 10, (1568, 10)), "l": np.zeros(10),
           "x_batch": images[:4].reshape(4, 1, 28, 28), "y_batch": train_labels[:4]}
    add("cnn.overfit", "networks:cnn_overfit", cnn, ["cnn.overfit"], steps=20, lr=0.05)
    return calls


# --- the verdicts ----------------------------------------------------------------------------------------------

def compare(part, got, want, tol, found="", what=""):
    """A Row: pass within ``tol`` (relative error), else fail naming the array and by how much."""
    if got is None:
        return Row(part, "missing", None, f"no {what or 'result'} found after the call", found)
    error = rel_error(got, want)
    shape = np.shape(got)
    if shape != np.shape(want):
        return Row(part, "fail", error, f"{what} has shape {shape}, expected {np.shape(want)}", found)
    verdict = "pass" if error <= tol else "fail"
    detail = f"{what} relative error {error:.1e} (tolerance {tol:g})"
    if verdict == "fail":
        worst = np.unravel_index(np.argmax(np.abs(np.asarray(got, dtype=np.float64) - want)), shape) if shape else ()
        detail += f"; worst at {tuple(int(i) for i in worst)}: {float(np.asarray(got)[worst]):.6g}, expected " \
                  f"{float(np.asarray(want)[worst]):.6g}" + scale_hint(got, want, tol)
    return Row(part, verdict, error, detail, found)


def scale_hint(got, want, tol):
    """"; it is 2x the expected everywhere" where ``got`` is the reference times one factor (a batch size too many,
    a missing 1/N), else ""."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    big = np.abs(want) > 1e-8 * max(1.0, float(np.max(np.abs(want)))) if want.size else want
    if not np.any(big) or not np.all(np.isfinite(got)):
        return ""
    factor = float(np.median(got[big] / want[big]))
    if factor == 0 or rel_error(got, factor * want) > tol:
        return ""
    return f"; it is {factor:.6g}x the expected everywhere"


def onehot(labels, classes=10):
    return np.eye(classes)[np.asarray(labels, dtype=int)]


def judge_loss(call, arrays, tol, found):
    p, y = call.inputs["p"], call.inputs["labels"].astype(int)
    n, Y = len(y), onehot(y)
    if call.args["part"] == "forward":
        want = -np.mean(np.log(p[np.arange(n), y]))
        errors = {c: rel_error(np.reshape(v, ()) if np.size(v) == 1 else v, want) for c, v in arrays.items()}
    else:
        refs = {"dL/dz, the softmax folded in": (p - Y) / n, "dL/dp": -Y / (n * p)}
        errors = {f"{c} -> {name}": rel_error(v, ref) for c, v in arrays.items() for name, ref in refs.items()
                  if not (c.startswith("z") and name == "dL/dp")}
    best = min(errors, key=errors.get)
    convention, _, gives = best.partition(" -> ")
    what = {"p": "probabilities", "z": "logits"}[convention[0]]
    what += ", one-hot labels" if convention.endswith("onehot") else ", integer labels"
    what += f"; it gives {gives}" if gives else ""
    verdict = "pass" if errors[best] <= tol else "fail"
    return [Row(call.parts[0], verdict, errors[best],
                f"called with {what}: relative error {errors[best]:.1e} (tolerance {tol:g})", found)]


def judge_sgd(call, arrays, tol, found):
    lr = float(call.inputs["lr"][0])
    if "W0" in arrays:
        return [compare("sgd.step", arrays.get("W"), arrays["W0"] - lr * arrays["dW"], tol, found, "W after a step")]
    before = {k[7:]: v for k, v in arrays.items() if k.startswith("before ")}
    pairs = []
    for name in before:
        base = name.split("[")[-1].strip("'\"]")
        grads = [g for g in before if g != name and g.split("[")[-1].strip("'\"]").lower() in
                 {f"d{base}".lower(), f"grad_{base}".lower(), f"{base}_grad".lower(), f"d_{base}".lower(),
                  f"g{base}".lower()}]
        if grads and before[grads[0]].shape == before[name].shape:
            pairs.append((name, grads[0]))
    if not pairs:
        return [Row("sgd.step", "missing", None, "no parameter beside its gradient (W and dW, ...) was found", found)]
    rows = [compare("sgd.step", arrays.get(f"after {p}"), before[p] - lr * before[g], tol, found,
                    f"{p} after a step") for p, g in pairs]
    worst = max(rows, key=lambda r: (r.verdict != "pass", r.error or 0))
    return [worst]


def accuracy(scores, labels):
    return float(np.mean(np.argmax(scores, axis=-1) == np.asarray(labels, dtype=int)))


def probabilities(scores):
    """Scores as probabilities: as they are where every row already is a distribution, else their softmax."""
    s = np.asarray(scores, dtype=np.float64)
    if np.all(s >= 0) and np.allclose(s.sum(axis=-1), 1, atol=1e-6):
        return s
    shifted = s - s.max(axis=-1, keepdims=True)
    return np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)


def judge(call, arrays, found, config):
    """[Row] for one finished call: its arrays against the references (``config``: the rubric's tolerances and
    thresholds, grading/rubric.py)."""
    tol, x = config["tolerance"], call.inputs.get("x")
    name = call.name
    if name == "linear.forward":
        return [compare("linear.forward", arrays.get("y"), x @ call.inputs["W"] + call.inputs["b"], tol, found, "y")]
    if name == "linear.backward":
        dout, W = call.inputs["dout"], call.inputs["W"]
        rows = [compare("linear.backward.dx", arrays.get("dx"), dout @ W.T, tol, found, "dx"),
                compare("linear.backward.dW", arrays.get("dW"), x.T @ dout, tol, found, "dW"),
                compare("linear.backward.db", arrays.get("db"), dout.sum(axis=0), tol, found, "db")]
        if rows[1].verdict == "fail" and rel_error(arrays["dW"], x.T @ dout / len(x)) <= tol:
            rows[1].detail += "; it is the batch mean (x.T @ dout / N): the 1/N moved into Linear"
            rows[1].extra["convention"] = "linear-mean"
        return rows
    if name.startswith("relu."):
        want = np.maximum(x, 0) if name == "relu.forward" else call.inputs["dout"] * (x > 0)
        key = "y" if name == "relu.forward" else "dx"
        return [compare(call.parts[0], arrays.get(key), want, tol, found, key)]
    if name in ("softmax.forward", "softmax.large_logits"):
        row = compare(call.parts[0], arrays.get("p"), softmax(x), tol, found, "p")
        return [row]
    if name == "softmax.backward":
        if "fused" in arrays:
            return [Row("softmax.backward", "fused", None, "softmax and the loss are one module: its gradient is "
                        "dL/dz, judged as loss.backward", found)]
        p, dout = softmax(x), call.inputs["dout"]
        row = compare("softmax.backward", arrays.get("dx"), p * (dout - (dout * p).sum(axis=1, keepdims=True)), tol,
                      found, "dx")
        if row.verdict == "fail" and rel_error(arrays.get("dx"), dout) <= tol:
            row.detail += "; it passes the gradient through unchanged (the loss gradient is then expected to be dL/dz)"
            row.extra["convention"] = "softmax-pass-through"
        return [row]
    if name.startswith("loss."):
        return judge_loss(call, arrays, config["loss_tolerance"], found)
    if name == "sgd.step":
        return judge_sgd(call, arrays, tol, found)
    if name.startswith("conv."):
        W, b = call.inputs["W"], call.inputs["b"]
        stride, pad = int(call.inputs["stride"][0]), int(call.inputs["pad"][0])
        if "forward" in name:
            return [compare(call.parts[0], arrays.get("y"), conv_forward(x, W, b, stride, pad), tol, found, "y")]
        dx, dW, db = conv_backward(x, W, call.inputs["dout"], stride, pad)
        rows = [compare(part, arrays.get(key), want, tol, found, key)
                for part, key, want in zip(("conv.backward.dx", "conv.backward.dW", "conv.backward.db"),
                                           ("dx", "dW", "db"), (dx, dW, db))]
        if name == "conv.backward_stride":  # one part: the worst of the three
            return [Row("conv.backward_stride", *worst_of(rows))]
        return rows
    if name.startswith("pool."):
        size, stride, dout = int(call.inputs["size"][0]), int(call.inputs["stride"][0]), call.inputs["dout"]
        y_ref, dx_ref = pool_forward(x, size, stride), pool_backward(x, dout, size, stride)
        if name == "pool.forward":
            return [compare("pool.forward", arrays.get("y"), y_ref, tol, found, "y")]
        if name == "pool.backward":
            return [compare("pool.backward", arrays.get("dx"), dx_ref, tol, found, "dx")]
        forward = compare(call.parts[0], arrays.get("y"), y_ref, tol, found, "y")
        if name == "pool.ties":
            dx = arrays.get("dx")
            ok = dx is not None and valid_tie_gradient(x, dout, np.asarray(dx), size, stride, 1e-9)
            backward = Row(call.parts[1], "pass" if ok else "fail", None,
                           "each window's gradient goes to its maxima only and adds up to it" if ok else
                           "some window's gradient goes to an element that is not its maximum, or does not add up "
                           f"to it (largest difference from the first-maximum rule {rel_error(dx, dx_ref):.1e})", found)
        else:
            backward = compare(call.parts[1], arrays.get("dx"), dx_ref, tol, found,
                               f"dx (windows {size}x{size}, stride {stride}, overlapping)")
        return [forward, backward]
    return judge_networks(call, arrays, found, config)


def worst_of(rows):
    """(verdict, error, detail, found) of the worst of ``rows``."""
    worst = max(rows, key=lambda r: (r.verdict != "pass", r.error or 0))
    return worst.verdict, worst.error, worst.detail, worst.found


def judge_networks(call, arrays, found, config):
    if call.name == "mlp.train":
        acc = accuracy(arrays["scores"], call.answers["y_test"]) if "scores" in arrays else 0.0
        threshold = config["mlp_accuracy"]
        return [Row("mlp.train", "pass" if acc >= threshold else "fail", None,
                    f"held-out accuracy {acc:.1%} after {call.args['steps']} steps (at least {threshold:.0%} needed)",
                    found, {"accuracy": acc})]
    if call.name == "mlp.gradient_check":
        error = rel_error(arrays.get("analytic"), arrays.get("numeric"))
        ok = error <= config["network_tolerance"]
        return [Row("mlp.gradient_check", "pass" if ok else "fail", error,
                    f"the whole network's first-layer dW against finite differences of its loss: relative error "
                    f"{error:.1e} ({'the network is right as a whole' if ok else 'wrong as a whole'})", found)]
    if call.name == "cnn.overfit":
        p = probabilities(arrays["scores"])
        y = call.inputs["y_batch"].astype(int)
        losses = -np.log(np.maximum(p[:, np.arange(len(y)), y], 1e-300)).mean(axis=1)
        ok = np.isfinite(losses[-1]) and losses[-1] <= config["cnn_loss_ratio"] * losses[0]
        return [Row("cnn.overfit", "pass" if ok else "fail", None,
                    f"loss on one batch {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses) - 1} steps (must fall to "
                    f"{config['cnn_loss_ratio']:g} of the first)", found, {"losses": losses.round(4).tolist()})]
    raise ValueError(f"no judge for {call.name}")
