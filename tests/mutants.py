"""Students made from the kit's own nn_numpy.py and cnn_numpy.py: correct ones, mutants with one known bug each,
and hostile ones; for tests/test_code_grading.py and benchmarks/grade_class.py.

    write_student(folder / "PA1_1001_relu", "relu_unmasked")   # the kit's two files, ReLU's backward unmasked
    MUTANTS["relu_unmasked"].part                              # "relu.backward": the one module part that fails

A mutation replaces one exact piece of the kit's source (asserted to occur once), so a change to the kit that
moves it fails here loudly rather than making a mutant that is not one.
"""

from collections import namedtuple
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Mutant = namedtuple("Mutant", "file old new part")

MUTANTS = {
    "relu_unmasked": Mutant("nn_numpy.py", "return dout * (self.out > 0)", "return dout * 1", "relu.backward"),
    "dW_not_summed": Mutant("nn_numpy.py", "self.dW = self.x.T @ dout", "self.dW = self.x[-1:].T @ dout[-1:]",
                            "linear.backward.dW"),
    "ce_without_1_over_n": Mutant("nn_numpy.py", "return dlogits / dlogits.dtype.type(n)", "return dlogits",
                                  "loss.backward"),
    "conv_dx_unflipped": Mutant("cnn_numpy.py", "dcols = (d @ self.W.reshape(len(self.W), -1))",
                                "dcols = (d @ self.W[:, :, ::-1, ::-1].reshape(len(self.W), -1))",
                                "conv.backward.dx"),
    "pool_to_every_position": Mutant("cnn_numpy.py", "= np.where(first, dout, 0)", "= dout",
                                     "pool.backward"),
    "sgd_adds": Mutant("nn_numpy.py", "param -= param.dtype.type(self.lr) * grad",
                       "param += param.dtype.type(self.lr) * grad", "sgd.step"),
}

# Hostile students: the kit's code with this put at the top of SGD.step (the one method only the sgd.step part
# calls), each written so that it would gain (a wrong step passing, or a right one failing) only if it worked.
STEP = "    def step(self):\n"
HOSTILE = {
    "connect": """        import socket
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"answers please")
            self.lr = -self.lr          # reached the grader: would make the step wrong
        except OSError:
            pass
""",
    "fork_bomb": """        import os
        for _ in range(10000):
            try:
                os.fork()
            except OSError:
                break
""",
    "infinite_loop": """        while True:
            pass
""",
    "huge_allocation": """        import numpy
        self.hoard = numpy.ones(50 * 2**30 // 8)     # 50 GB
""",
    "write_outside": """        for path in ("/tmp/../OUTSIDE", "OUTSIDE_PATH", "../escaped.txt", "/sandbox/escaped.txt"):
            try:
                open(path, "w").write("written")
                self.lr = -self.lr
            except OSError:
                pass
""",
    "read_grader": """        for path in ("GRADER_FILE", "SECRET_FILE", "/etc/shadow", "../PA1_1000_kit/nn_numpy.py"):
            try:
                open(path).read()
                self.lr = -self.lr      # found the grader's files: would make the step wrong
            except OSError:
                pass
""",
    "monkeypatch_numpy": """        import numpy
        numpy.allclose = lambda *a, **k: True
        numpy.testing.assert_allclose = lambda *a, **k: None
        numpy.max = lambda *a, **k: 0.0
        self.lr = -self.lr              # a wrong step, to be judged right by a patched NumPy
""",
    "fake_results": """        import os
        print("ALL TESTS PASSED: 22/22 points")
        os._exit(0)
""",
}


def kit_source(name):
    return (ROOT / name).read_text(encoding="utf-8")


def write_student(folder, mutant=None, hostile=None, replacements=None):
    """The kit's nn_numpy.py and cnn_numpy.py in ``folder``, with one MUTANTS bug or one HOSTILE behaviour (its
    placeholders filled from ``replacements``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources = {name: kit_source(name) for name in ("nn_numpy.py", "cnn_numpy.py")}
    if mutant:
        m = MUTANTS[mutant]
        assert sources[m.file].count(m.old) == 1, f"{mutant}: {m.old!r} is not once in {m.file}"
        sources[m.file] = sources[m.file].replace(m.old, m.new)
    if hostile:
        code = HOSTILE[hostile]
        for key, value in (replacements or {}).items():
            code = code.replace(key, str(value))
        at = sources["nn_numpy.py"].index(STEP) + len(STEP)
        sources["nn_numpy.py"] = sources["nn_numpy.py"][:at] + code + sources["nn_numpy.py"][at:]
    for name, text in sources.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def torch_student(folder):
    """The kit's files with ``import torch`` in nn_numpy.py (the NumPy part may not use it)."""
    write_student(folder)
    path = Path(folder) / "nn_numpy.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("import numpy as np\n", "import numpy as np\nimport torch\n", 1), encoding="utf-8")
    return Path(folder)


# A student who wrote it all their own way (after an instructor's review): other class names, a loss class on
# probabilities apart from the softmax, and an optimizer built on a list of layers; every MLP part is right.
OWN_STYLE = '''import numpy as np


class Dense:
    def __init__(self, n_in, n_out):
        self.weight = np.random.randn(n_in, n_out) * 0.1
        self.bias = np.zeros(n_out)
        self.grad_weight, self.grad_bias = np.zeros_like(self.weight), np.zeros_like(self.bias)

    def forward(self, x):
        self.x = x
        return x @ self.weight + self.bias

    def backward(self, grad):
        self.grad_weight = self.x.T @ grad
        self.grad_bias = grad.sum(axis=0)
        return grad @ self.weight.T


class Relu:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask


class Softmax:
    def forward(self, x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.p = e / e.sum(axis=1, keepdims=True)
        return self.p

    def backward(self, grad):
        return self.p * (grad - (grad * self.p).sum(axis=1, keepdims=True))


class CrossEntropy:
    def forward(self, probs, labels):
        self.probs, self.labels = probs, labels
        return -np.mean(np.log(probs[np.arange(len(labels)), labels]))

    def backward(self):
        n = len(self.labels)
        g = np.zeros_like(self.probs)
        g[np.arange(n), self.labels] = -1.0 / self.probs[np.arange(n), self.labels] / n
        return g


class SGDOptimizer:
    def __init__(self, layers, lr=0.1):
        self.layers, self.lr = layers, lr

    def step(self):
        for layer in self.layers:
            if isinstance(layer, Dense):
                layer.weight -= self.lr * layer.grad_weight
                layer.bias -= self.lr * layer.grad_bias


class MLP:
    def __init__(self):
        self.layers = [Dense(784, 128), Relu(), Dense(128, 64), Relu(), Dense(64, 10)]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad
'''
OWN_STYLE_PASSES = ("linear.forward", "linear.backward.dx", "linear.backward.dW", "linear.backward.db", "relu.forward",
                    "relu.backward", "softmax.forward", "softmax.backward", "loss.forward", "loss.backward",
                    "sgd.step", "mlp.train")


def own_style_student(folder):
    folder = Path(folder)
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "mlp_scratch.py").write_text(OWN_STYLE, encoding="utf-8")
    return folder
