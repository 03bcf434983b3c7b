"""Which of the report's two networks a file's arrays are, from their shapes alone, in this kit's layout.

    found = identify(contents.entries)      # entries: [(name, ndarray)] as grading.loaders reads them
    found.architecture                      # "mlp" or "cnn"
    found.layouts                           # [Layout("as stored", [W1 (784, 128), b1 (128,), ...]), ...]
    found.notes, found.guesses              # what was read how; what was guessed (the row is then flagged)

Every weight of the two networks has a shape of its own, so each array's role follows from its shape,
whatever its name or place: the MLP's (784, 128), (128, 64), (64, 10) Linear weights as (in, out) or
PyTorch's (out, in), biases (n,), (1, n) or (n, 1); the CNN's kernels (16, 1, 3, 3) and (32, 16, 3, 3) as
(out, in, k, k) or channels-last (k, k, in, out), and its Linear (1568, 10) or (10, 1568). Names only break
ties when two arrays fit one role (an optimizer's buffers saved beside the weights). The arrays come back in
this kit's layout (Linear W (in, out), kernels (out, in, k, k), biases (n,)), in the order of
nn_numpy.mlp()'s and cnn_numpy.cnn()'s parameters.

What shapes cannot tell — the order in which the CNN's (32, 7, 7) maps were flattened before its Linear
(channels first, as PyTorch and this kit, or channels last), and whether the kernels were applied flipped
(a true convolution rather than PyTorch's cross-correlation) — comes back as several :class:`Layout`s, to be
decided on training images (grading.evaluate.choose_layout).
"""

import re
from dataclasses import dataclass, field

import numpy as np

from grading.loaders import FileVerdict


@dataclass(frozen=True)
class Role:
    """One parameter of a network: its name in the notes, its shape in this kit, what kind of array it is."""

    name: str
    shape: tuple
    kind: str  # "linear" (W of y = x W + b), "conv" (kernels), "bias"


ROLES = {
    "mlp": [Role("fc1 weight", (784, 128), "linear"), Role("fc1 bias", (128,), "bias"),
            Role("fc2 weight", (128, 64), "linear"), Role("fc2 bias", (64,), "bias"),
            Role("fc3 weight", (64, 10), "linear"), Role("fc3 bias", (10,), "bias")],
    "cnn": [Role("conv1 kernels", (16, 1, 3, 3), "conv"), Role("conv1 bias", (16,), "bias"),
            Role("conv2 kernels", (32, 16, 3, 3), "conv"), Role("conv2 bias", (32,), "bias"),
            Role("linear weight", (1568, 10), "linear"), Role("linear bias", (10,), "bias")],
}
TITLES = {"mlp": "the MLP (784-128-64-10)", "cnn": "the CNN (conv 16, conv 32, linear 1568-10)"}
# Names that say an array is not the model's weight even when its shape is (optimizer state, gradients, ...).
NOT_WEIGHTS = re.compile(r"optim|momentum|velocity|grad|exp_avg|adam|cache|moment|(^|[._])[mv]_?[A-Za-z]*\d",
                         re.IGNORECASE)
CNN_MAPS = (32, 7, 7)  # (C, H, W) of what the CNN's Linear reads


@dataclass
class Layout:
    """One reading of the arrays: a label for the notes, and the parameters in this kit's layout and order."""

    label: str
    params: list


@dataclass
class Identified:
    architecture: str
    layouts: list                                 # [Layout], the first the kit's own reading
    sources: list = field(default_factory=list)   # the entry name each parameter came from
    notes: list = field(default_factory=list)
    guesses: list = field(default_factory=list)

    @property
    def dtype(self):
        """float64 where the file's weights are float64 (evaluated so, as --eval-only does), else float32."""
        return np.float64 if any(p.dtype == np.float64 for p in self.layouts[0].params) else np.float32


def fit(array, role):
    """(``array`` in this kit's layout for ``role``, how it was stored or None), or None if it cannot be it."""
    shape = tuple(array.shape)
    if role.kind == "bias":
        n = role.shape[0]
        if array.size == n and array.ndim <= 2 and max(shape, default=0) == n:
            return array.reshape(n), None
        return None
    if role.kind == "linear":
        if shape == role.shape:
            return array, None
        if shape == role.shape[::-1]:
            return array.T, "(out, in)"
        return None
    out, cin, k, _ = role.shape
    if shape == role.shape:
        return array, None
    if shape == (k, k, cin, out):
        return array.transpose(3, 2, 0, 1), "channels-last (k, k, in, out)"
    if cin == 1 and shape == (out, k, k):
        return array[:, None], "(out, k, k)"
    return None


def candidates(entries, architecture):
    """For each role, [(name, array in the kit's layout, stored-as note)], best first: not named as optimizer
    state, then in the file's order."""
    found = []
    for role in ROLES[architecture]:
        fits = [(name, *fitted) for name, array in entries if (fitted := fit(array, role)) is not None]
        found.append(sorted(fits, key=lambda item: bool(NOT_WEIGHTS.search(item[0]))))
    return found


def identify(entries):
    """The :class:`Identified` network of ``entries``; FileVerdict "no model" or "refused" when it is neither."""
    scored = {arch: candidates(entries, arch) for arch in ROLES}
    complete = [arch for arch, found in scored.items() if all(found)]
    if not complete:
        raise not_a_network(entries, scored)
    architecture = max(complete, key=lambda arch: sum(map(len, scored[arch])))
    found = identified(architecture, scored[architecture])
    check_finite(found)
    return found


def identified(architecture, found):
    result = Identified(architecture, layouts=[])
    params, stored = [], []
    for role, fits in zip(ROLES[architecture], found):
        name, array, how = fits[0]
        others = [other for other, value, _ in fits[1:] if other != name and not np.array_equal(value, array)]
        if others:
            result.guesses.append(f"{len(others) + 1} arrays fit the {role.name} ({name}, {', '.join(others)}); "
                                  f"took {name}")
        params.append(np.array(array, dtype=np.result_type(array.dtype, np.float32)))
        result.sources.append(name)
        if how:
            stored.append(f"{role.name} {how}")
    if stored:
        result.notes.append("stored as " + ", ".join(stored))
    result.layouts = cnn_layouts(params) if architecture == "cnn" else [Layout("as stored", params)]
    return result


def cnn_layouts(params):
    """The four readings of a CNN that shapes cannot tell apart: flatten order x kernel flip."""
    conv1, b1, conv2, b2, linear, b3 = params
    channels_last = linear.reshape(*CNN_MAPS[1:], CNN_MAPS[0], -1).transpose(2, 0, 1, 3).reshape(linear.shape)
    layouts = []
    for flatten, weight in (("channels-first", linear), ("channels-last", channels_last)):
        for flipped in (False, True):
            kernels = [k[..., ::-1, ::-1].copy() if flipped else k for k in (conv1, conv2)]
            label = f"flatten {flatten}" + (", kernels flipped (true convolution)" if flipped else "")
            layouts.append(Layout(label, [kernels[0], b1, kernels[1], b2, weight, b3]))
    return layouts


def check_finite(found):
    for role, name, value in zip(ROLES[found.architecture], found.sources, found.layouts[0].params):
        if not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise FileVerdict("refused", f"{name} (the {role.name}) holds {bad} non-finite value(s) (NaN or "
                                         f"infinity) among its {value.size}: these weights cannot be evaluated")


def not_a_network(entries, scored):
    """The verdict for arrays that complete neither network: "no model" without any matrix, else the wrong
    architecture, naming the shapes found and what is missing."""
    matrices = [(name, array.shape) for name, array in entries if array.ndim >= 2]
    if not matrices:
        held = ", ".join(f"{name} {tuple(array.shape)}" for name, array in entries[:6]) or "no arrays"
        raise FileVerdict("no model", f"holds no network's weights ({held})")
    closest = max(scored, key=lambda arch: sum(map(bool, scored[arch])))
    missing = [f"{role.name} {role.shape}" for role, fits in zip(ROLES[closest], scored[closest]) if not fits]
    shapes = ", ".join(f"{tuple(shape)}" for _, shape in matrices[:8])
    raise FileVerdict("refused", f"wrong architecture: its weight shapes are {shapes}; closest is "
                                 f"{TITLES[closest]}, which also needs {', '.join(missing)}")
