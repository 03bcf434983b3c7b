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
