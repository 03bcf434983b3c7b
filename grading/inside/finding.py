"""Inside the sandbox: find a module of the assignment in a student's code, whatever its names, and wire it up.

    for file, name, obj in candidates(namespace, "linear"):     # classes first, then functions, by name
        instance, kwargs = construct(obj, {"in": 5, "out": 3})   # sizes matched to the constructor's parameters
        w_path, shape = find_param(instance, {(5, 3), (3, 5)})   # the weights, found by shape

``namespace`` is {module name: module} of the student's files as grading/runner.py loads them (definitions
only). What cannot be settled raises Missing, naming what was tried. NumPy alone: this runs beside the student's
code, and the grader's judgement never does (grading/code_checks.py compares the arrays outside).
"""

import inspect
import os
import re
import types

import numpy as np

NAMES = {  # module -> (a class or function name that says it is this module, names that say it is something else)
    "linear": (r"linear|dense|fully.?connected|affine|^fc\d*$|^fc_", r"relu|conv|pool|net|model|layers$"),
    "relu": (r"relu", r"leaky|conv|linear|net|model"),
    "softmax": (r"soft_?max", r"net|model"),
    "loss": (r"cross.?entropy|^ce_?loss|nll|^loss", r"net|model|accuracy"),
    "conv": (r"conv", r"net|model|transpose"),
    "pool": (r"max.?pool|pool", r"avg|average|net|model"),
    "sgd": (r"sgd|optimi[sz]er|^optim|^update", r"adam|rmsprop|net|model"),
}
FORWARD = ("forward", "__call__", "fprop", "forward_pass", "call", "predict")
BACKWARD = ("backward", "bprop", "backprop", "backward_pass", "grad", "gradient")
STEP = ("step", "update", "update_weights", "update_params", "update_parameters", "apply_gradients", "sgd_step")
GRADIENT_NAME = re.compile(r"^d|grad|delta|^g_", re.I)
NOT_GRADIENT = re.compile(r"velocity|momentum|cache|moment|^m_|^v_|adam|prev|old", re.I)
SIZE_NAMES = {  # a constructor parameter's whole name -> which size it takes
    "in": r"in|inp|input|n_?in|d_?in|fan_?in|num_?in(puts)?|in_?(features|size|dim|channels|ch|units|planes)|"
          r"input_?(size|dim|features|channels|units|shape)|c_?in|channels_?in|prev(_size)?",
    "out": r"out|output|n_?out|d_?out|fan_?out|num_?(out(puts)?|filters|kernels|units)|"
           r"out_?(features|size|dim|channels|ch|units|planes)|output_?(size|dim|features|channels|units)|units|"
           r"filters|c_?out|channels_?out|n_?filters|neurons|n_?units",
    "k": r"k|kernel|kernel_?size|filter_?size|ksize|f|field|size",
    "pool": r"pool|pool_?size|kernel_?size|size|k|window|window_?size|ksize|f",
    "stride": r"stride|strides|s|step",
    "pad": r"pad|padding|p|zero_?padding",
    "rng": r"rng|random_?state|generator|random",
    "dtype": r"dtype|precision",
}


class Missing(Exception):
    """The module could not be found, or not driven: the message says what was tried."""


TRIED = {  # the names NAMES matches, as the feedback lists them
    "linear": "Linear, Dense, FullyConnected, Affine, fc, affine_forward/affine_backward",
    "relu": "ReLU, relu/relu_backward", "softmax": "Softmax, SoftMax, softmax",
    "loss": "CrossEntropy, cross_entropy_loss, CELoss, NLL, loss", "conv": "Conv, ConvLayer, Conv2d, conv_forward",
    "pool": "MaxPool, MaxPooling, Pool, max_pool", "sgd": "SGD, Optimizer, update, a network's step/update method",
}


def not_found(namespace, kind):
    """Why no candidate was found: the names tried, what the files define, how to point the grader to it."""
    names = sorted({n for _, n, o in defined(namespace, kind) if inspect.isclass(o) or inspect.isfunction(o)})
    listed = ", ".join(names[:25]) + (", ..." if len(names) > 25 else "")
    return (f"no class or function named like a {kind} layer (tried {TRIED[kind]}; the files define "
            f"{listed or 'none'}); point to it in the grading config: {kind} = \"file.py:Name\"")


# --- finding a module ----------------------------------------------------------------------------------------

def defined(namespace, kind):
    """[(file, name, object)] of the classes and functions the student's files define (not import)."""
    found = []
    for module_name, module in namespace.items():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == module_name:
                found.append((getattr(module, "__file__", module_name), name, obj))
    return found


def matches(kind, name):
    wanted, unwanted = NAMES[kind]
    return re.search(wanted, name, re.I) and not re.search(unwanted, name, re.I)


def candidates(namespace, kind, override=None, prefer=()):
    """Classes first, then function pairs, each as (file, name, object); ``prefer``: words of the file names to
    try first (the network's own script, where a module is defined in several files)."""
    if override:
        file, _, name = override.rpartition(":")
        hits = [(f, n, o) for f, n, o in defined(namespace, kind) if n == name and (not file or f.endswith(file))]
        if not hits:
            raise Missing(f"the grading config names {override}, which the submission does not define")
        return hits
    found = [(f, n, o) for f, n, o in defined(namespace, kind) if matches(kind, n)]
    rank = lambda item: (uses_framework(namespace, item[0]), not inspect.isclass(item[2]),  # noqa: E731
                         not any(t.startswith(w) for t in words(item[0]) for w in prefer), item[0], item[1])
    return sorted(found, key=rank)


def words(file):
    """The words of a file's name: "src/cnn_pure_python.py" -> ["cnn", "pure", "python"] (so "nn" is not "cnn")."""
    return re.split(r"[^a-z0-9]+", os.path.basename(file).lower().removesuffix(".py"))


def short(file):
    """The student's file as the feedback names it: its path inside their folder (the runner's working folder)."""
    root = os.getcwd().rstrip("/") + "/"
    return file[len(root):] if file.startswith(root) else file.rsplit("/", 1)[-1]


FRAMEWORKS = {"torch", "tensorflow", "keras", "jax", "flax"}


def uses_framework(namespace, file):
    """True when the student's module of ``file`` imported a framework (the grader calls that part banned; its
    classes are tried after everyone else's)."""
    for module in namespace.values():
        if getattr(module, "__file__", None) == file:
            return any(isinstance(v, types.ModuleType) and v.__name__.partition(".")[0] in FRAMEWORKS
                       for v in vars(module).values())
    return False


# --- constructing and wiring a class ------------------------------------------------------------------------

def construct(cls, sizes):
    """An instance of ``cls`` built with ``sizes`` ({"in": 5, "out": 3, ...}) matched to its constructor's
    parameters by name, else by position; rng and dtype get NumPy's. Raises Missing when no call works."""
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    kwargs, positional, left = {}, [], [k for k in sizes if k not in ("stride", "pad")]
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        key = next((k for k in (*sizes, "rng", "dtype") if re.fullmatch(SIZE_NAMES[k], p.name, re.I)), None)
        if key in sizes:
            value = sizes[key]
            left = [k for k in left if k != key]
        elif key == "rng":
            value = np.random.default_rng(0)
        elif key == "dtype":
            value = np.float64
        elif p.default is p.empty and left:
            value = sizes[left.pop(0)]
        elif p.default is p.empty:
            value = None
        else:
            continue
        if p.kind == p.POSITIONAL_ONLY:
            positional.append(value)
        else:
            kwargs[p.name] = value
    try:
        return cls(*positional, **kwargs), kwargs
    except Exception as e:  # noqa: BLE001 - a student's constructor may raise anything
        raise Missing(f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised "
                      f"{type(e).__name__}: {e}") from None


def arrays_of(obj):
    """{path: (holder, key, ndarray)} of an object's array attributes, one level into dicts (self.params["W"])."""
    out = {}
    for name, value in (vars(obj).items() if hasattr(obj, "__dict__") else ()):
        if isinstance(value, np.ndarray):
            out[name] = (obj, name, value)
        elif isinstance(value, dict):
            out.update({f"{name}[{k!r}]": (value, k, v) for k, v in value.items() if isinstance(v, np.ndarray)})
    return out


def set_array(obj, path, value):
    holder, key, _ = arrays_of(obj)[path]
    if holder is obj:
        setattr(obj, key, value)
    else:
        holder[key] = value


def leaf(path):
    """The name a path ends in: "params['dW']" -> "dW"."""
    return path.split("[")[-1].strip("'\"]")


def find_param(obj, shapes, exclude=()):
    """(attribute path, the shape it has) of the first array attribute whose shape is one of ``shapes``."""
    for path, (_, _, value) in arrays_of(obj).items():
        if path not in exclude and value.shape in shapes and not NOT_GRADIENT.search(path):
            if not GRADIENT_NAME.search(leaf(path)) or leaf(path) in ("W", "b", "w"):
                return path, value.shape
    return None, None


def method(obj, names):
    for name in names:
        if name == "__call__" and "__call__" not in vars(type(obj)):
            continue
        if callable(getattr(obj, name, None)):
            return name
    return None


def first(value):
    """A layer's output: the first element where a tuple (out, cache) comes back."""
    return value[0] if isinstance(value, (tuple, list)) and value else value


def gradient_of(obj, shape, param_path, before, returned=()):
    """The gradient of the parameter at ``param_path``, found by its shape: an attribute other than the parameter
    (by a gradient's name first) that is new or changed by backward, else one of the arrays backward returned."""
    hits = []
    for path, (_, _, value) in arrays_of(obj).items():
        if path == param_path or value.shape not in shape or NOT_GRADIENT.search(path):
            continue
        changed = path not in before or not np.array_equal(before[path], value)
        hits.append((not changed, not GRADIENT_NAME.search(leaf(path)), path, value))
    if hits:
        hits.sort(key=lambda h: h[:3])
        return hits[0][3], hits[0][2]
    for i, value in enumerate(returned):
        if isinstance(value, np.ndarray) and value.shape in shape:
            return value, f"returned[{i}]"
    return None, None


def snapshot(obj):
    return {path: value.copy() for path, (_, _, value) in arrays_of(obj).items()}


def call(function, *args):
    """Call a student's function; a TypeError about its arguments is a Missing (wrong signature), the rest its own."""
    try:
        return function(*args)
    except TypeError as e:
        if "argument" in str(e) or "positional" in str(e):
            raise Missing(f"{getattr(function, '__qualname__', function)} does not take {len(args)} argument(s): "
                          f"{e}") from None
        raise


# --- a layer with parameters: Linear and Conv ------------------------------------------------------------------

def described(file, name, kwargs):
    """"model.py:Dense(in=5, out=3)": where a class is and the sizes it was built with."""
    return f"{short(file)}:{name}({', '.join(f'{k}={v}' for k, v in kwargs.items() if isinstance(v, (int, float)))})"


def built_classes(namespace, kind, override, sizes, prefer, tried):
    """(file, name, instance, kwargs) of each candidate class that builds with ``sizes``, in order; why each other
    one did not goes to ``tried``."""
    for file, name, obj in candidates(namespace, kind, override, prefer):
        if not inspect.isclass(obj):
            continue
        try:
            instance, kwargs = construct(obj, sizes)
        except Missing as e:
            tried.append(str(e))
            continue
        yield file, name, instance, kwargs


def layer_with_params(namespace, kind, override, sizes, w_shapes, b_shape, prefer):
    """(instance, W path, W layout, b path, b shape, description) of the first candidate class that builds with
    ``sizes`` and holds arrays of one of ``w_shapes`` ({layout: shape}) and of b's size."""
    tried = []
    for file, name, instance, kwargs in built_classes(namespace, kind, override, sizes, prefer, tried):
        shapes = {shape: layout for layout, shape in reversed(w_shapes.items())}  # the first layout wins a tie
        w_path, w_shape = find_param(instance, set(shapes))
        size = int(np.prod(b_shape))
        b_path, b_found = find_param(instance, {(size,), (1, size), (size, 1)}, exclude={w_path})
        if w_path and b_path:
            return instance, w_path, shapes[w_shape], b_path, b_found, described(file, name, kwargs)
        tried.append(f"{short(file)}:{name} holds no weights of shape {' or '.join(map(str, w_shapes.values()))} "
                     f"with a bias of {size}")
    raise Missing("; ".join(tried) or not_found(namespace, kind))


def forward_backward(instance, x, dout):
    """(y, the arrays backward returned, the snapshot before backward, forward's name, backward's name)."""
    fwd, bwd = method(instance, FORWARD), method(instance, BACKWARD)
    if not fwd or not bwd:
        raise Missing(f"{type(instance).__name__} has no {'forward' if not fwd else 'backward'}-like method "
                      f"(tried {', '.join(FORWARD if not fwd else BACKWARD)})")
    y = first(call(getattr(instance, fwd), x.copy()))
    if dout is None:
        return y, (), {}, fwd, bwd
    before = snapshot(instance)
    returned = call(getattr(instance, bwd), dout.copy())
    returned = tuple(returned) if isinstance(returned, (tuple, list)) else (returned,)
    return y, returned, before, fwd, bwd



def function_pair(namespace, kind, override):
    """(forward function, backward function or None, where) of a CS231n-style pair: <name>_forward and
    <name>_backward (or <name> with <name>_backward, <name>_grad, <name>_derivative)."""
    functions = {n: (f, o) for f, n, o in candidates(namespace, kind, override) if inspect.isfunction(o)}
    for name, (file, fn) in functions.items():
        if re.search(r"back|grad|deriv|prime", name, re.I):
            continue
        stem = re.sub(r"_?(forward|fwd|fprop)$", "", name, flags=re.I)
        partner = next((functions[n][1] for n in functions if n != name and n.lower().startswith(stem.lower())
                        and re.search(r"back|grad|deriv|prime", n, re.I)), None)
        where = f"{short(file)}:{name}" + (f" / {partner.__name__}" if partner else "")
        return fn, partner, where
    raise Missing(not_found(namespace, kind))
