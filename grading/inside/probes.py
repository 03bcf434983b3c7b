"""Inside the sandbox: each module of the assignment called on the grader's inputs; raw arrays come back.

    meta, arrays = linear(namespace, inputs, "backward")     # {"dx", "dW" (in, out), "db" (out,)}
    meta["found"]        # "linear: model.py:Dense(in=5, out=3), weights W (in, out), forward via __call__, ..."

One function per module (linear, relu, softmax, loss, sgd, conv, pool), each taking the part to run. A module is
found by name and by probing (finding.py): the class is built with the test's sizes, its parameters found by
shape and set to the grader's test weights, forward then backward called, the gradients found by shape, and
every array returned in the grader's layout. grading/code_checks.py makes the inputs and judges the arrays.
"""

import inspect
import re

import numpy as np

from .finding import (BACKWARD, FORWARD, STEP, Missing, arrays_of, built_classes, call, candidates, construct,
                      defined, described, first, forward_backward, function_pair, gradient_of, layer_with_params,
                      leaf, method, not_found, set_array, short, snapshot)


def linear_class(namespace, inputs, override, backward):
    x, W, b = inputs["x"], inputs["W"], inputs["b"]
    n_in, n_out = W.shape
    instance, w_path, layout, b_path, b_shape, where = layer_with_params(
        namespace, "linear", override, {"in": n_in, "out": n_out}, {"(in, out)": (n_in, n_out),
                                                                     "(out, in)": (n_out, n_in)}, (n_out,),
        ("nn", "mlp", "layer", "model"))
    set_array(instance, w_path, np.array(W if layout == "(in, out)" else W.T))
    set_array(instance, b_path, b.reshape(b_shape).copy())
    y, returned, before, fwd, bwd = forward_backward(instance, x, inputs["dout"] if backward else None)
    meta = {"found": f"linear: {where}, weights {leaf(w_path)} {layout}, forward via {fwd}"}
    if not backward:
        return meta, {"y": y}
    dW, dW_at = gradient_of(instance, {(n_in, n_out), (n_out, n_in)}, w_path, before, returned)
    db, db_at = gradient_of(instance, {(n_out,), (1, n_out), (n_out, 1)}, b_path, before, returned)
    dx = next((r for r in returned if isinstance(r, np.ndarray) and r.shape == x.shape), returned[0])
    out = {"dx": dx}
    if dW is not None:
        out["dW"] = dW if dW.shape == (n_in, n_out) else dW.T
    if db is not None:
        out["db"] = db.reshape(-1)
    meta["found"] += f", backward via {bwd}, gradients {dW_at or '?'}, {db_at or '?'}"
    return meta, out


def linear_functions(namespace, inputs, override, backward):
    forward, backward_fn, where = function_pair(namespace, "linear", override)
    x, W, b, dout = (inputs[k] for k in ("x", "W", "b", "dout"))
    result = call(forward, x.copy(), W.copy(), b.copy())
    y, cache = (result[0], result[1]) if isinstance(result, tuple) and len(result) == 2 else (result, None)
    meta = {"found": f"linear: {where}, weights (in, out) as an argument"}
    if not backward:
        return meta, {"y": y}
    if backward_fn is None:
        raise Missing(f"{where} has no backward function")
    grads = call(backward_fn, dout.copy(), cache if cache is not None else (x, W, b))
    dx, dW, db = (list(grads) + [None, None, None])[:3]
    return meta, {k: v for k, v in (("dx", dx), ("dW", dW), ("db", None if db is None else np.reshape(db, -1)))
                  if v is not None}


def linear(namespace, inputs, part, override=None):
    """part "forward" -> {"y"}; "backward" -> {"dx", "dW" (in, out), "db" (out,)}."""
    try:
        return linear_class(namespace, inputs, override, part == "backward")
    except Missing as e:
        try:
            return linear_functions(namespace, inputs, override, part == "backward")
        except Missing:
            raise e from None


# --- layers without parameters: ReLU, softmax, max pooling ----------------------------------------------------

def stateless(namespace, kind, override, sizes, x, dout, prefer=()):
    """(y, dx or None, description) of the first candidate class (constructed with ``sizes``) or function pair."""
    tried = []
    for file, name, instance, kwargs in built_classes(namespace, kind, override, sizes, prefer, tried):
        try:
            y, returned, _, fwd, bwd = forward_backward(instance, x, dout)
        except Missing as e:
            tried.append(str(e))
            continue
        return y, (returned[0] if dout is not None else None), f"{described(file, name, kwargs)}, via {fwd}/{bwd}"
    try:
        forward, backward_fn, where = function_pair(namespace, kind, override)
    except Missing:
        raise Missing("; ".join(tried) or not_found(namespace, kind)) from None
    args = [sizes[k] for k in ("pool", "stride") if k in sizes and len(inspect.signature(forward).parameters) > 1]
    result = call(forward, x.copy(), *args[:len(inspect.signature(forward).parameters) - 1])
    y, cache = (result[0], result[1]) if isinstance(result, tuple) and len(result) == 2 else (result, None)
    if dout is None:
        return y, None, where
    if backward_fn is None:
        raise Missing(f"{where} has no backward function")
    n_args = len(inspect.signature(backward_fn).parameters)
    if n_args == 1:  # relu_derivative(x): the local slope; the chain rule is the caller's
        return y, dout * call(backward_fn, x.copy()), where + " (a derivative, times dout)"
    return y, first(call(backward_fn, dout.copy(), cache if cache is not None else x.copy())), where


def relu(namespace, inputs, part, override=None):
    """part "forward" -> {"y"}; "backward" -> {"dx"}."""
    y, dx, where = stateless(namespace, "relu", override, {}, inputs["x"],
                             inputs["dout"] if part == "backward" else None, ("nn", "mlp"))
    return {"found": f"relu: {where}"}, ({"y": y} if part == "forward" else {"dx": dx})


def fused_loss(namespace, override):
    """The first class named like a loss that takes logits and labels and keeps the probabilities: softmax
    and cross-entropy in one (nn_numpy.SoftmaxCrossEntropy), or None."""
    for file, name, obj in candidates(namespace, "loss", override) + candidates(namespace, "softmax", override):
        if inspect.isclass(obj) and re.search(r"soft", name, re.I) and re.search(r"cross|entropy|loss|ce", name, re.I):
            return file, name, obj
    return None


def softmax(namespace, inputs, part, override=None):
    """part "forward" -> {"p"} for inputs x (large logits included); "backward" -> {"dx"}, the vector-Jacobian
    product of its own forward, or, where softmax is fused with the loss, {"fused": 1}."""
    x, dout = inputs["x"], inputs["dout"]
    try:
        y, dx, where = stateless(namespace, "softmax", override, {}, x, dout if part == "backward" else None,
                                 ("nn", "mlp"))
    except Missing:
        fused = fused_loss(namespace, override)
        if fused is None:
            raise
        file, name, cls = fused
        instance, _ = construct(cls, {})
        call(getattr(instance, method(instance, FORWARD)), x.copy(), inputs["labels"].astype(int))
        probs = next((v for _, (_, _, v) in arrays_of(instance).items() if v.shape == x.shape), None)
        meta = {"found": f"softmax: fused with the loss in {short(file)}:{name}", "fused": "yes"}
        if part == "backward":
            return meta, {"fused": np.ones(1)}
        if probs is None:
            raise Missing(f"{name} keeps no probabilities after forward") from None
        return meta, {"p": probs}
    return {"found": f"softmax: {where}"}, ({"p": y} if part == "forward" else {"dx": dx})


# --- the loss ------------------------------------------------------------------------------------------------

CONVENTIONS = ("p_onehot", "p_int", "z_int", "z_onehot")  # what the loss is given: probabilities or logits,
# one-hot or integer labels


def loss_inputs(inputs, convention):
    pred = inputs["p"] if convention.startswith("p") else inputs["z"]
    labels = inputs["labels"].astype(int)
    return pred.copy(), (np.eye(pred.shape[1])[labels] if convention.endswith("onehot") else labels)


def takes_target_first(function):
    names = list(inspect.signature(function).parameters)
    return bool(names) and re.search(r"true|target|label|^y$|gt", names[0], re.I)


def loss(namespace, inputs, part, override=None):
    """part "forward" -> {convention: loss} for each way of calling it that did not raise; "backward" ->
    {convention: gradient} (the grader tells whether it is dL/dp or dL/dz, the softmax folded in)."""
    fused = fused_loss(namespace, override)
    if fused is not None:
        file, name, cls = fused
        instance, _ = construct(cls, {})
        value = call(getattr(instance, method(instance, FORWARD)), *loss_inputs(inputs, "z_int"))
        meta = {"found": f"loss: {short(file)}:{name}, softmax and cross-entropy fused, on logits and integer labels"}
        if part == "forward":
            return meta, {"z_int": np.asarray(value, dtype=np.float64)}
        grad = call(getattr(instance, method(instance, BACKWARD)))
        return meta, {"z_int": first(grad)}
    functions = [(f, n, o) for f, n, o in candidates(namespace, "loss", override, ("nn", "mlp"))
                 if inspect.isfunction(o)]
    forward = [c for c in functions if not re.search(r"grad|back|deriv|prime", c[1], re.I)]
    backward = [c for c in functions if re.search(r"grad|back|deriv|prime", c[1], re.I)]
    chosen = forward if part == "forward" else backward
    classes = [c for c in candidates(namespace, "loss", override, ("nn", "mlp")) if inspect.isclass(c[2])]
    if not chosen and classes:
        return loss_object(classes[0], inputs, part)
    if not chosen:
        raise Missing(f"no {'loss' if part == 'forward' else 'loss-gradient'} function (tried names like "
                      f"cross_entropy{'' if part == 'forward' else '_gradient, loss_backward'})")
    file, name, function = chosen[0]

    def attempt(pred, target):
        return function(*((target, pred) if takes_target_first(function) else (pred, target)))

    return {"found": f"loss: {short(file)}:{name}"}, each_convention(inputs, attempt, file, name)


def loss_object(found, inputs, part):
    """A loss class of its own (CrossEntropy: forward(pred, labels), backward() -> the gradient), called each way
    it takes: {convention: loss} or {convention: gradient}."""
    file, name, cls = found

    def attempt(pred, target):
        instance, _ = construct(cls, {})
        value = call(getattr(instance, method(instance, FORWARD)), pred, target)
        return value if part == "forward" else call(getattr(instance, method(instance, BACKWARD)))

    return {"found": f"loss: {short(file)}:{name}"}, each_convention(inputs, attempt, file, name)


def each_convention(inputs, attempt, file, name):
    """{convention: attempt(pred, target) as float64} for every CONVENTION the student's loss takes."""
    out = {}
    for convention in CONVENTIONS:
        try:
            out[convention] = np.asarray(first(attempt(*loss_inputs(inputs, convention))), dtype=np.float64)
        except Missing:
            raise
        except Exception:  # noqa: BLE001 - a calling convention the student's loss does not take
            continue
    if not out:
        raise Missing(f"{short(file)}:{name} raised for every way of calling it (probabilities or logits, "
                      f"one-hot or integer labels)")
    return out


# --- SGD ---------------------------------------------------------------------------------------------------

GRADIENT_NAMES = ("d{}", "grad_{}", "{}_grad", "d_{}", "g{}", "grad{}")


def gradient_slot(layer, name):
    """The attribute keeping the gradient of parameter ``name`` (dW of W), or None."""
    return next((g.format(name) for g in GRADIENT_NAMES if g.format(name) in vars(layer)), None)


def layers_in(network):
    """The layer objects a network holds (attributes and lists of them) that have weights beside a gradient
    attribute; a gradient still None (no backward yet) is given an array of its parameter's shape."""
    held = []
    for value in vars(network).values():
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            if not hasattr(item, "__dict__") or isinstance(item, np.ndarray):
                continue
            params = {k: v for k, v in vars(item).items() if isinstance(v, np.ndarray) and not gradient_slot_of(k)}
            if not any(k in ("W", "w", "weight", "weights") for k in params):
                continue
            slots = {k: gradient_slot(item, k) for k in params}
            if not any(slots.values()):
                continue
            for k, slot in slots.items():
                if slot and not isinstance(getattr(item, slot), np.ndarray):
                    setattr(item, slot, np.zeros_like(params[k], dtype=np.float64))
            held.append(item)
    return held


def gradient_slot_of(name):
    """True for a name that is a gradient's (dW, grad_W, W_grad)."""
    return bool(re.match(r"^(d_?|g|grad_?)[A-Za-z]", name) or name.endswith("_grad")) and name not in ("data",)


def sgd(namespace, inputs, part, override=None):
    """-> {"W", "b"} of a layer after one SGD step of lr inputs["lr"] from W, b with gradients dW, db (the first
    layer of the student's network, or arrays given to an sgd function), and {"shapes"} used."""
    lr, pool = float(inputs["lr"].reshape(-1)[0]), inputs["pool"]
    for file, name, function in candidates(namespace, "sgd", override):
        if inspect.isfunction(function) and not re.match(r"(make|build|get|create|init)_", name) \
                and len(inspect.signature(function).parameters) >= 3:
            W, dW = pool[:12].reshape(3, 4).copy(), pool[12:24].reshape(3, 4).copy()
            result = call(function, W, dW, lr)
            after = W if result is None else np.asarray(first(result), dtype=np.float64)
            return {"found": f"sgd: {short(file)}:{name}(param, grad, lr)"}, {"W0": pool[:12].reshape(3, 4),
                                                                               "dW": dW, "W": after}
    networks = [(f, n, o) for f, n, o in defined(namespace, "sgd") if inspect.isclass(o)
                and re.search(r"net|model|mlp|nn$|three|sequential", n, re.I)]
    optimizers = [c for c in candidates(namespace, "sgd", override) if inspect.isclass(c[2])]
    tried = []
    for file, name, cls in sorted(networks, key=lambda c: "cnn" in c[0].lower() or "conv" in c[1].lower()):
        network, layers = None, []
        for args in ((), "a layer"):
            try:
                if args == "a layer":  # a container of layers (Sequential): give it one of the student's own
                    args = (layer_with_params(namespace, "linear", None, {"in": 4, "out": 3},
                                              {"(in, out)": (4, 3), "(out, in)": (3, 4)}, (3,), ())[0],)
                network = cls(*args)
            except Exception as e:  # noqa: BLE001 - a student's constructor may raise anything
                tried.append(f"{name}() raised {type(e).__name__}: {e}")
                continue
            layers = layers_in(network)
            if layers:
                break
        if not layers:
            continue
        layer, offset, shapes = layers[0], 0, {}
        values = {}
        for path, (_, _, value) in arrays_of(layer).items():
            piece = pool[offset:offset + value.size]
            if len(piece) < value.size:
                raise Missing(f"{name}'s first layer is larger than the grader's test pool")
            set_array(layer, path, piece.reshape(value.shape).copy())
            values[path], shapes[path] = piece.reshape(value.shape).copy(), value.shape
            offset += value.size
        step = method(network, STEP)
        if step:
            call(getattr(network, step), lr)
            where = f"{short(file)}:{name}.{step}(lr)"
        elif optimizers:
            o_file, o_name, o_cls = optimizers[0]
            where = optimizer_step(o_cls, network, layer, values, lr)
            where = f"{short(o_file)}:{o_name}({where.replace('network', name)}"
        else:
            tried.append(f"{name} has no update method ({', '.join(STEP)}) and there is no optimizer class")
            continue
        after = {path: value for path, (_, _, value) in arrays_of(layer).items()}
        out = {f"before {p}": v for p, v in values.items()}
        out.update({f"after {p}": np.asarray(after[p], dtype=np.float64) for p in values})
        return {"found": f"sgd: {where}, on {type(layer).__name__}'s {', '.join(values)}"}, out
    raise Missing("; ".join(tried) or "no SGD: no function sgd(param, grad, lr), no network with an update method "
                                       "or optimizer class")


def optimizer_arguments(network, layer, lr):
    """(how, constructor arguments) an optimizer class may take: the network, its parameters(), a list of
    layers it holds (``network.layers``), or the one layer."""
    yield "network", (network, lr)
    if callable(getattr(network, "parameters", None)):
        yield "network.parameters()", (network.parameters(), lr)
    for attribute, value in vars(network).items():
        if isinstance(value, (list, tuple)) and any(item is layer for item in value):
            yield f"network.{attribute}", (value, lr)
    yield "[layer]", ([layer], lr)


def optimizer_step(cls, network, layer, values, lr):
    """Build the student's optimizer the first way it takes whose step() runs, and take one step; returns how
    ("network.layers, lr).step()"). The layer's arrays are set to ``values`` before each try, so a try that
    failed half-way changes nothing; where every way fails, the first one's exception is the student's error."""
    first_error = None
    for how, args in optimizer_arguments(network, layer, lr):
        for path, value in values.items():
            set_array(layer, path, value.copy())
        try:
            optimizer = cls(*args)
            step = method(optimizer, STEP)
            if step is None:
                raise Missing(f"{cls.__name__} has no step method ({', '.join(STEP)})")
            function = getattr(optimizer, step)
            call(function) if len(inspect.signature(function).parameters) == 0 else call(function, network)
        except Exception as error:  # noqa: BLE001 - a student's optimizer may raise anything: try the next way
            first_error = first_error or error
            continue
        return f"{how}, lr).{step}()"
    raise first_error


# --- convolution and max pooling -----------------------------------------------------------------------------

def images_layout(instance, x, fwd):
    """("NCHW" or "NHWC", y in NCHW): forward on x as (N, C, H, W) first, and as (N, H, W, C) if that fails."""
    try:
        return "NCHW", first(call(getattr(instance, fwd), x.copy()))
    except Missing:
        raise
    except Exception as nchw_error:  # noqa: BLE001 - maybe the layer wants channels last
        try:
            y = first(call(getattr(instance, fwd), np.ascontiguousarray(x.transpose(0, 2, 3, 1))))
        except Exception:  # noqa: BLE001
            raise nchw_error from None
        return "NHWC", np.asarray(y).transpose(0, 3, 1, 2)


def conv(namespace, inputs, part, override=None):
    """inputs x (N, C_in, H, W), W (C_out, C_in, k, k), b, dout, stride, pad. part "forward" -> {"y"} (N, C_out,
    Ho, Wo); "backward" -> {"dx", "dW" (C_out, C_in, k, k), "db"}; NCHW or NHWC images, either weight layout."""
    x, W, b = inputs["x"], inputs["W"], inputs["b"]
    stride, pad = int(inputs["stride"].reshape(-1)[0]), int(inputs["pad"].reshape(-1)[0])
    c_out, c_in, k, _ = W.shape
    layouts = {"(out, in, k, k)": (c_out, c_in, k, k), "(k, k, in, out)": (k, k, c_in, c_out),
               "(out, k, k, in)": (c_out, k, k, c_in)}
    instance, w_path, layout, b_path, b_shape, where = layer_with_params(
        namespace, "conv", override, {"in": c_in, "out": c_out, "k": k, "stride": stride, "pad": pad}, layouts,
        (c_out,), ("cnn", "conv"))
    settings = {key: getattr(instance, key) for key in ("stride", "padding", "pad") if hasattr(instance, key)}
    if settings.get("stride", 1) != stride or settings.get("padding", settings.get("pad", 0)) != pad:
        raise Missing(f"{where} did not take stride {stride} and padding {pad} (it has {settings or 'neither'})")
    order = {"(out, in, k, k)": (0, 1, 2, 3), "(k, k, in, out)": (2, 3, 1, 0), "(out, k, k, in)": (0, 2, 3, 1)}[layout]
    set_array(instance, w_path, np.ascontiguousarray(W.transpose(order)))
    set_array(instance, b_path, b.reshape(b_shape).copy())
    fwd, bwd = method(instance, FORWARD), method(instance, BACKWARD)
    if not fwd:
        raise Missing(f"{where} has no forward-like method")
    images, y = images_layout(instance, x, fwd)
    meta = {"found": f"conv: {where}, weights {leaf(w_path)} {layout}, images {images}, forward via {fwd}"}
    if part == "forward":
        return meta, {"y": y}
    if not bwd:
        raise Missing(f"{where} has no backward-like method")
    dout = inputs["dout"] if images == "NCHW" else np.ascontiguousarray(inputs["dout"].transpose(0, 2, 3, 1))
    before = snapshot(instance)
    returned = call(getattr(instance, bwd), dout.copy())
    returned = tuple(returned) if isinstance(returned, (tuple, list)) else (returned,)
    dW, dW_at = gradient_of(instance, {layouts[layout]}, w_path, before, returned)
    db, db_at = gradient_of(instance, {(c_out,), (1, c_out), (c_out, 1)}, b_path, before, returned)
    dx = returned[0] if images == "NCHW" else np.asarray(returned[0]).transpose(0, 3, 1, 2)
    out = {"dx": dx}
    if dW is not None:
        out["dW"] = dW.transpose(np.argsort(order))
    if db is not None:
        out["db"] = db.reshape(-1)
    meta["found"] += f", backward via {bwd}, gradients {dW_at or '?'}, {db_at or '?'}"
    return meta, out


def pool(namespace, inputs, part, override=None):
    """inputs x (N, C, H, W), dout, size, stride. part "forward" -> {"y"}; "backward" -> {"dx"}; "both"."""
    size, stride = int(inputs["size"].reshape(-1)[0]), int(inputs["stride"].reshape(-1)[0])
    tried = []
    for file, name, instance, kwargs in built_classes(namespace, "pool", override, {"pool": size, "stride": stride},
                                                      ("cnn", "conv"), tried):
        settings = {key: getattr(instance, key) for key in ("stride",) if hasattr(instance, key)}
        if stride != size and settings.get("stride", size) != stride:
            raise Missing(f"{short(file)}:{name} did not take stride {stride} (only its pool size)")
        fwd, bwd = method(instance, FORWARD), method(instance, BACKWARD)
        if not fwd:
            raise Missing(f"{short(file)}:{name} has no forward-like method")
        images, y = images_layout(instance, inputs["x"], fwd)
        meta = {"found": f"max pool: {described(file, name, kwargs)}, images {images}, via {fwd}/{bwd}"}
        if part == "forward":
            return meta, {"y": y}
        dout = inputs["dout"] if images == "NCHW" else np.ascontiguousarray(inputs["dout"].transpose(0, 2, 3, 1))
        dx = first(call(getattr(instance, bwd), dout.copy()))
        dx = dx if images == "NCHW" else np.asarray(dx).transpose(0, 3, 1, 2)
        return meta, ({"dx": dx} if part == "backward" else {"y": y, "dx": dx})
    if size != stride:
        raise Missing("; ".join(tried) or "no max-pooling class that takes a stride")
    y, dx, where = stateless(namespace, "pool", override, {"pool": size, "stride": stride}, inputs["x"],
                             None if part == "forward" else inputs["dout"], ("cnn", "conv"))
    return {"found": f"max pool: {where}"}, {"forward": {"y": y}, "backward": {"dx": dx}}.get(part, {"y": y, "dx": dx})
