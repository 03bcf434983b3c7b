"""Run by tests/test_layout.py: import the two teaching files with every third-party package but NumPy blocked,
then take one training step and a gradient check with them, as a student with NumPy alone installed would.

    python tests/numpy_only.py        # prints "ok" and exits 0, or names the import that was blocked
    python tests/numpy_only.py FILE   # runs the Python code in FILE under the same block, after the check
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIT = {"nn_numpy", "cnn_numpy", "common"}  # what the teaching files may import from the kit


class NumPyOnly:
    """A meta-path finder that refuses every module outside the standard library, NumPy and the kit's KIT."""

    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "numpy" or top in KIT:
            return None
        raise ImportError(f"blocked: {name} (the teaching files must import NumPy alone)")


sys.meta_path.insert(0, NumPyOnly())
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import cnn_numpy  # noqa: E402
import nn_numpy  # noqa: E402

rng = np.random.default_rng(0)
model, loss_fn = cnn_numpy.cnn(rng, np.float64), nn_numpy.SoftmaxCrossEntropy()
x, y = rng.random((4, 1, 28, 28)), np.array([0, 1, 2, 3])
loss = loss_fn.forward(model.forward(x), y)
model.backward(loss_fn.backward())
nn_numpy.SGD(model, 0.1).step()
assert loss_fn.forward(model.forward(x), y) < loss, "one SGD step on a batch lowers its loss"
blocked = sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in {"torch", "matplotlib", "tqdm",
                                                                             "threadpoolctl", "scipy"})
assert not blocked, blocked
print("ok")
if len(sys.argv) > 1:
    exec(compile(Path(sys.argv[1]).read_text(), sys.argv[1], "exec"), {"__name__": "__main__"})
