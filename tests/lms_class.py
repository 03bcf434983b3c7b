"""An LMS export built for the tests (issue 35): one zip per student, as a class hands them in, odd ones included.

    raw_zip(path, [("이경민/모델.py", b"x = 1\n")], utf8_flag=False)   # names as CP949 bytes, the flag clear
    disguised(source)                       # renamed names, new comments, reordered definitions: still a copy
    report_pdf(models=MODELS)               # a report showing the three figures of each model named
    expected = build_class(Path("CLASS"), Path("handout"))   # 30 submissions; {student_id: Expected}

Each ordinary student's code is a different module of Python's own library (their "own code": different code,
graded as missing every part), beside the course's handed-out data loader; a few students hand in the kit's code
or a disguised copy of it, so that the code points, the copies and the late factors all show in one class.
"""

import ast
import builtins
import dataclasses
import io
import os
import stat
import sysconfig
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch")
HEADINGS = {"nn_numpy": "2.1 MLP from scratch (pure NumPy)", "nn_torch": "2.2 MLP with PyTorch",
            "cnn_numpy": "2.3 CNN from scratch (pure NumPy)", "cnn_torch": "2.4 CNN with PyTorch"}
DUE = "2025-10-16T14:30+09:00"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
OWN_CODE = ("textwrap", "colorsys", "shlex", "fnmatch", "glob", "bisect", "sched", "netrc", "numbers", "graphlib",
            "queue", "cmd", "codeop", "filecmp", "getopt", "hmac", "linecache", "quopri", "reprlib", "shelve",
            "string", "tabnanny", "timeit", "chunk", "csv")

LOADER = textwrap.dedent('''
    """The course's MNIST loader (handed out with the assignment: students use it as it is)."""
    import gzip
    import numpy as np

    class MNISTLoader:
        """The course's loader of the four MNIST files."""
        def __init__(self, root, batch_size=32, shuffle=True):
            self.root, self.batch_size, self.shuffle = root, batch_size, shuffle
            self.images = self.read_images(f"{root}/train-images-idx3-ubyte.gz")
            self.labels = self.read_labels(f"{root}/train-labels-idx1-ubyte.gz")

        def read_images(self, path):
            with gzip.open(path, "rb") as f:
                data = np.frombuffer(f.read(), np.uint8, offset=16)
            return data.reshape(-1, 28, 28).astype(np.float32) / 255.0

        def read_labels(self, path):
            with gzip.open(path, "rb") as f:
                return np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)

        def __iter__(self):
            order = np.random.permutation(len(self.images)) if self.shuffle else np.arange(len(self.images))
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                yield self.images[batch], self.labels[batch]

        def __len__(self):
            return (len(self.images) + self.batch_size - 1) // self.batch_size
''')


# --- zips -----------------------------------------------------------------------------------------------------

def raw_zip(path, entries, utf8_flag=True):
    """A zip of ``entries`` [(name or ZipInfo, bytes)]; without ``utf8_flag`` the names go in as CP949 bytes with
    the flag clear, as Korean Windows tools write them."""
    raws = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (name, data) in enumerate(entries):
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if not utf8_flag and not info.filename.isascii():   # an ASCII stand-in of the same length, then
                raw = info.filename.encode("cp949")               # its bytes swapped for the CP949 ones
                info.filename = f"{i:03d}".ljust(len(raw), "Q")
                raws[info.filename.encode()] = raw
            archive.writestr(info, data)
    data = path.read_bytes()
    for placeholder, raw in raws.items():
        assert data.count(placeholder) == 2                       # the local header and the central directory
        data = data.replace(placeholder, raw)
    path.write_bytes(data)
    return path


def encrypted_flag(path):
    """Set the 'encrypted' bit of every entry (local headers and the central directory), as a zip tool with a
    password would."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + offset] |= 0x1
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


# --- a copy in disguise ---------------------------------------------------------------------------------------

class Renamer(ast.NodeTransformer):
    """Every name the file defines (classes, functions, arguments, variables, attributes it sets) renamed."""

    def __init__(self, tree):
        keep = set(dir(builtins)) | {"self", "np", "numpy", "math", "sys", "functools", "__init__", "__call__"}
        defined = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
        self.names = {n: f"q{i}_{n[::-1].lower()}" for i, n in enumerate(sorted(defined - keep))}

    def visit_Name(self, node):
        node.id = self.names.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.names.get(node.arg, node.arg)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        node.attr = self.names.get(node.attr, node.attr)
        return node

    def visit_FunctionDef(self, node):
        self.generic_visit(node)
        node.name = self.names.get(node.name, node.name)
        return node

    visit_ClassDef = visit_FunctionDef


def disguised(source):
    """``source`` with its names renamed, its comments and docstrings rewritten, its top-level definitions in
    reverse order, and laid out anew (ast.unparse)."""
    tree = ast.parse(source)
    tree = Renamer(tree).visit(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
            node.body[0] = ast.Expr(ast.Constant("My own implementation, written from scratch."))
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    tree.body = imports + [n for n in tree.body if n not in imports][::-1]
    return "# my solution\n" + ast.unparse(tree)


# --- reports --------------------------------------------------------------------------------------------------

_PDFS = {}


def report_pdf(models=MODELS, pages_of_text=0):
    """PDF bytes of a report with, for each of ``models``, a page: its heading, its stated test accuracy and
    three captioned figures (the loss graph, the confusion matrix, the top-3 images); ``pages_of_text`` more
    pages of prose. Made with matplotlib, TrueType fonts embedded so the text extracts as written."""
    key = (tuple(models), pages_of_text)
    if key not in _PDFS:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib.backends.backend_pdf import PdfPages

        rng = np.random.default_rng(len(models))
        buffer = io.BytesIO()
        with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(buffer, metadata={"CreationDate": None}) as pdf:
            for model in models:
                fig = plt.figure(figsize=(8.27, 11.69))
                fig.text(0.08, 0.95, HEADINGS[model], fontsize=14)
                fig.text(0.08, 0.92, f"Test accuracy: {97 + rng.random():.2f}%", fontsize=10)
                captions = ("Figure 1: Train and test loss graph", "Figure 2: 10x10 probability confusion matrix",
                            "Figure 3: Top-3 images per class")
                for row, caption in enumerate(captions):
                    ax = fig.add_axes([0.15, 0.65 - row * 0.29, 0.7, 0.22])
                    ax.imshow(rng.random((10, 10)))
                    ax.set_axis_off()
                    fig.text(0.08, 0.62 - row * 0.29, caption, fontsize=10)
                pdf.savefig(fig)
                plt.close(fig)
            for page in range(pages_of_text):
                fig = plt.figure(figsize=(8.27, 11.69))
                fig.text(0.08, 0.9, f"3.{page + 1} Discussion: the CNN keeps the spatial structure.", fontsize=10)
                pdf.savefig(fig)
                plt.close(fig)
        _PDFS[key] = buffer.getvalue()
    return _PDFS[key]


# --- the class ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Expected:
    zip_name: str
    status: str = "graded"
    factor: float = 1.0
    code_points: float = None        # None: not asserted
    report_points: float = None
    copies_of: tuple = ()            # substrings of the copies column
    notes: tuple = ()                # substrings of the note
    time_key: str = None             # what --times names it by (None: not in --times)
    hours_late: float = 0.0


def own(module):
    return (STDLIB / f"{module}.py").read_text(encoding="utf-8")


def ordinary(i, top=""):
    """An ordinary submission's entries: their own code, the course's loader, a full report."""
    return [(f"{top}nn_numpy.py", own(OWN_CODE[i]).encode()), (f"{top}dataset/dataloader.py", LOADER.encode()),
            (f"{top}report.pdf", report_pdf())]


def kit_code(top=""):
    return [(f"{top}{name}", (ROOT / name).read_bytes()) for name in ("nn_numpy.py", "cnn_numpy.py")]


def build_class(folder, handout):
    """Write the class into ``folder`` (and the course's handed-out files into ``handout``); return
    ({student_id: Expected}, times.csv rows [(key, time)])."""
    import datetime

    folder, handout = Path(folder), Path(handout)
    folder.mkdir(parents=True)
    (handout / "dataset").mkdir(parents=True)
    (handout / "dataset" / "dataloader.py").write_text(LOADER, encoding="utf-8")
    due = datetime.datetime.fromisoformat(DUE)
    expected, times = {}, []

    def add(student_id, name, entries, utf8=True, late_hours=None, key="id", **what):
        zip_name = f"PA1_{student_id}_{name}.zip"
        raw_zip(folder / zip_name, entries, utf8)
        item = Expected(zip_name, **what)
        if late_hours is not None:
            item.time_key = student_id if key == "id" else zip_name
            item.hours_late = max(0.0, late_hours)
            at = due + datetime.timedelta(hours=late_hours)
            times.append((item.time_key, at.isoformat() if key == "id" else
                          at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")))
        expected[student_id] = item
        return item

    kit_report = [("보고서.pdf", report_pdf())]
    add("2024001", "김민준", kit_code("PA1_2024001_김민준/") + kit_report, late_hours=0.0, code_points=22,
        report_points=6, copies_of=("PA1_2024002_이서연", "source:the kit"))
    add("2024002", "이서연", [("코드/mlp.py", disguised((ROOT / "nn_numpy.py").read_text()).encode())] + kit_report,
        utf8=False, late_hours=3, factor=0.75, report_points=6, copies_of=("PA1_2024001_김민준",))
    for n, (sid, name, hours, factor, key) in enumerate([("2024003", "박지호", 24, 0.75, "id"),
                                                         ("2024004", "최수아", 36, 0.5, "file"),
                                                         ("2024005", "정우진", 60, 0.25, "id"),
                                                         ("2024006", "강하은", 120, 0.10, "file"),
                                                         ("2024007", "조민서", 192, 0.0, "id"),
                                                         ("2024025", "문서진", -30, 1.0, "id")]):
        add(sid, name, ordinary(n), late_hours=hours, key=key, factor=factor, code_points=0, report_points=6)
    item = add("2024008", "윤도윤", ordinary(6), code_points=0, report_points=6, notes=("modification time",))
    os.utime(folder / item.zip_name, (due.timestamp() - 7200, due.timestamp() - 7200))   # 2 h early, by mtime
    add("2024009", "장서윤", ordinary(7) + [("../../escaped.py", b"print('out')\n")], late_hours=-1,
        report_points=6, notes=("leaves the submission's folder",))
    link = zipfile.ZipInfo("link.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    add("2024010", "임지우", ordinary(8) + [(link, b"/etc/passwd")], late_hours=-1, report_points=6,
        notes=("symbolic link",))
    add("2024011", "한예준", ordinary(9) + [("cache.bin", bytes(64 << 20))], late_hours=-1, status="refused",
        code_points=0, report_points=0, notes=("zip bomb",))
    inner = raw_zip(folder.parent / "inner.zip", ordinary(10)).read_bytes()
    (folder.parent / "inner.zip").unlink()
    add("2024012", "오하린", [("PA1_2024012_오하린.zip", inner)], late_hours=-1, report_points=6)
    for sid, name, status in (("2024013", "서준우", "not a zip"), ("2024014", "신지아", "empty"),
                              ("2024015", "권현우", "encrypted")):
        item = add(sid, name, [("nn_numpy.py", b"x = 1\n")], late_hours=-1, status=status, code_points=0,
                   report_points=0)
        path = folder / item.zip_name
        if status == "not a zip":
            path.write_bytes(b"%PDF-1.4 this is my report, renamed .zip by mistake")
        elif status == "empty":
            zipfile.ZipFile(path, "w").close()
        else:
            encrypted_flag(path)
    add("2024016", "황수빈", ordinary(11)[:2] + [("report.pdf", report_pdf(("nn_numpy", "nn_torch")))],
        late_hours=-1, report_points=3.5, notes=("cnn_numpy: confusion matrix, top-3 images",
                                                 "marked by hand"))
    add("2024017", "안시우", ordinary(12)[:2], late_hours=-1, report_points=0, notes=("no PDF report",))
    add("2024018", "송유나", ordinary(13)[:2] + [("report.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 40)],
        late_hours=-1, report_points=0, notes=("could not be read",))
    add("2024019", "류건우", ordinary(14) + [("data/train-images-idx3-ubyte.gz", b"\x1f\x8b not really"),
                                           ("model.npz", (ROOT / "reference" / "nn_numpy.npz").read_bytes())],
        late_hours=-1, report_points=6, notes=("datasets handed in", "weights handed in"))
    raw_zip(folder / "homework_final.zip", ordinary(15))
    expected["homework_final"] = Expected("homework_final.zip", report_points=6, notes=("is not named PA1_",),
                                          time_key="homework_final.zip")
    times.append(("homework_final.zip", DUE))
    folder21 = folder / "PA1_2024021_전하준"
    for rel, data in ordinary(16):
        (folder21 / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder21 / rel).write_bytes(data)
    expected["2024021"] = Expected(folder21.name, report_points=6, time_key="2024021", hours_late=1.25, factor=0.75)
    times.append(("2024021", (due + datetime.timedelta(hours=1.25)).isoformat()))
    add("2024022", "배서현", ordinary(17), late_hours=-2, code_points=0, report_points=6)   # the boilerplate pair
    add("2024023", "홍지안", ordinary(18), late_hours=-2, code_points=0, report_points=6)
    original = ROOT.parent / "shared" / "original"
    files = ("nn_pure_python.py", "cnn_pure_python.py", "nn_framework.py", "cnn_framework.py")
    if all((original / f).is_file() for f in files):
        add("2024024", "유은우", [(f, (original / f).read_bytes()) for f in files] + kit_report, late_hours=-1,
            report_points=6, copies_of=("source:the original report's code",))
    else:
        add("2024024", "유은우", ordinary(19), late_hours=-1, report_points=6)
    add("2024026", "남궁민", ordinary(20) + [("draft.pdf", report_pdf(("nn_numpy",)))] +
        [("final/report_final.pdf", report_pdf(pages_of_text=3))], late_hours=-1, report_points=6,
        notes=("3 PDFs: the largest, final/report_final.pdf",))   # beside report.pdf and draft.pdf
    for n, (sid, name) in enumerate((("2024027", "Alice_Kim"), ("2024028", "황보"), ("2024029", "Jun_Park"),
                                     ("2024030", "제갈"))):
        add(sid, name, ordinary(21 + n, top=f"PA1_{sid}/"), utf8=n % 2 == 0, late_hours=-0.5, code_points=0,
            report_points=6)
    return expected, times
