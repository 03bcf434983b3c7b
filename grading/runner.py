"""Runs inside the sandbox, beside one student's files: loads them (definitions only), calls the grader's probes
on them, and writes each part's raw arrays to the channel. Started by grading/sandbox.py, never by hand:

    python -I -S -B /sandbox/lib/grading/runner.py /sandbox/job/job-0.json 3     # the job, the channel's fd

The job (JSON): the student's folder ("root") and files, sys.path ("paths": NumPy alone, grading/channel.py, the
probes), the inputs (.npz), the rlimits, the uid, the parts ({"part", "index", "probe": "module:function", "args"}).
Before any student code: the audit hook, the drop to the uid (when root), the rlimits. Each file keeps only its
imports, definitions and simple assignments (keep()); an import nothing can satisfy gets an inert stand-in
(grading/standins.py). Each part calls probe(namespace, inputs, **args) -> (meta, arrays), namespace {module name:
module}, inputs copied as read; its frame, or its error frame (the exception's last line, the student's file:line),
goes to the channel, then an audit frame.
"runner:call" is a built-in probe calling one student function. Nothing here judges: the grader compares outside.
"""

import ast
import importlib
import importlib.util
import json
import os
import sys
import traceback

BANNED = {"torch", "torchvision", "tensorflow", "keras", "jax", "jaxlib", "flax"}
WATCHED = {"socket.connect", "socket.bind", "socket.sendto", "os.fork", "os.forkpty", "os.system", "os.exec",
           "os.posix_spawn", "os.spawn", "subprocess.Popen", "os.kill", "ctypes.dlopen"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CAP = 300                       # entries kept in each list of the audit record


class Audit:
    """The audit hook's record: imports (with the student's file:line), banned imports, stand-ins, and actions
    attempted (connect, bind, fork, exec, system, writes outside /tmp), each with where and how often."""

    def __init__(self, root):
        self.root = root.rstrip("/") + "/"
        self.imports, self.banned, self.standins, self.dropped, self.load_errors = [], [], [], [], []
        self.actions, self.watching = {}, False   # imports are recorded once the student's files start loading

    def where(self, frame):
        """'model.py:42' of the innermost frame of a student's file from ``frame`` outwards, or ''."""
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(self.root):
                return f"{name[len(self.root):]}:{frame.f_lineno}"
            frame = frame.f_back
        return ""

    def __call__(self, event, args):
        """The hook: must never raise (an exception here would fail the audited operation)."""
        try:
            if event == "import":
                if self.watching and len(self.imports) < CAP:
                    where = self.where(sys._getframe(1))
                    self.imports.append(f"{args[0]} ({where})" if where else str(args[0]))
                    banned = f"{str(args[0]).partition('.')[0]} ({where or 'imported by code outside the files'})"
                    if banned.partition(" ")[0] in BANNED and banned not in self.banned and len(self.banned) < CAP:
                        self.banned.append(banned)
            elif event in WATCHED:
                detail = args[1] if event.startswith("socket.") else args[0] if args else ""
                self.act(f"{event} {str(detail)[:120]}")
            elif event == "open" and self.watching and written(args):
                self.act(f"open for writing {str(args[0])[:200]}")
        except Exception:  # noqa: BLE001
            pass

    def act(self, what):
        where = self.where(sys._getframe(2))
        if not where and what.startswith("ctypes.dlopen"):
            return                                     # NumPy's own use of ctypes
        key = f"{what} at {where or '?'}"
        if key in self.actions or len(self.actions) < CAP:
            self.actions[key] = self.actions.get(key, 0) + 1

    def record(self):
        """The record as JSON-able lists, stand-ins given by their leaves (matplotlib.pyplot, not matplotlib)."""
        leaves = [n for n in self.standins if not any(o.startswith(n + ".") for o in self.standins)]
        return {"imports": self.imports, "banned": self.banned, "standins": leaves, "dropped": self.dropped,
                "load_errors": self.load_errors, "uid": os.getuid(),
                "actions": [f"{k} ({n}×)" if n > 1 else k for k, n in self.actions.items()]}


def written(args):
    """True when an 'open' audit event opens for writing a path outside /tmp (or a file descriptor)."""
    path, mode, flags = (tuple(args) + (None, None))[:3]
    if not ((isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS):
        return False
    return isinstance(path, int) or not (os.path.abspath(os.fsdecode(path)) + "/").startswith("/tmp/")


# --- the student's files --------------------------------------------------------------------------------------

def simple(node):
    """True for a constant, a name, an attribute chain (np.float32), and tuples, lists, dicts and arithmetic of
    them."""
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, (ast.Name, ast.Attribute)) and simple(node.value)
    parts = {ast.Tuple: lambda n: n.elts, ast.List: lambda n: n.elts, ast.Set: lambda n: n.elts,
             ast.Dict: lambda n: n.keys + n.values, ast.UnaryOp: lambda n: [n.operand],
             ast.BinOp: lambda n: [n.left, n.right], ast.Compare: lambda n: [n.left] + n.comparators}.get(type(node))
    return parts is not None and all(p is not None and simple(p) for p in parts(node))


def main_guard(node):
    """True for ``if __name__ == "__main__":``."""
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def keep(body, file, dropped):
    """The statements of ``body`` that are imports, definitions or simple assignments (and if/try blocks made of
    them, ``if __name__ == "__main__":`` aside); each one dropped is noted in ``dropped`` as 'file:line what'."""
    kept = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                             ast.Pass)) or isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            kept.append(node)                                  # (a constant alone: a docstring)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and (node.value is None or simple(node.value)) and all(
                isinstance(t, ast.Name) or isinstance(t, ast.Tuple) and all(isinstance(e, ast.Name) for e in t.elts)
                for t in getattr(node, "targets", [getattr(node, "target", None)])):
            kept.append(node)
        elif isinstance(node, ast.If) and not main_guard(node) and simple(node.test):
            node.body = keep(node.body, file, dropped) or [ast.Pass()]
            node.orelse = keep(node.orelse, file, dropped)
            kept.append(node)
        elif isinstance(node, ast.Try) and all(h.type is None or simple(h.type) for h in node.handlers):
            node.body = keep(node.body, file, dropped)
            for handler in node.handlers:
                handler.body = keep(handler.body, file, dropped) or [ast.Pass()]
            node.orelse, node.finalbody = keep(node.orelse, file, dropped), keep(node.finalbody, file, dropped)
            if node.body:
                kept.append(node)
        elif len(dropped) < CAP:
            what = "if __name__ == '__main__'" if isinstance(node, ast.If) and main_guard(node) else \
                type(node).__name__.lower()
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                what = f"call {ast.unparse(node.value.func)[:60]}()"
            dropped.append(f"{file}:{node.lineno} {what}")
    return kept


def guarded(tree):
    """The line ranges of the try blocks of ``tree`` that catch ImportError (or anything wider): an import there
    that fails raises, as the student's code expects, instead of getting a stand-in."""
    catches = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and node.body and any(
                h.type is None or catches & {n.id for n in ast.walk(h.type) if isinstance(n, ast.Name)}
                for h in node.handlers):
            ranges.append((node.body[0].lineno, node.body[-1].end_lineno))
    return ranges


def importer(root):
    """(file, line) of the code doing the import under way (importlib's own frames skipped), or (None, 0)."""
    frame = sys._getframe(2)
    while frame is not None and ("importlib" in frame.f_code.co_filename or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    return (frame.f_code.co_filename, frame.f_lineno) if frame is not None else (None, 0)


class StudentFiles:
    """A meta-path finder and loader over the student's folder: dotted names map to files (models/cnn.py is
    models.cnn; a dot in a file's name becomes _), each loaded through keep(); a name with no file of its own may
    match one file of that name in a subfolder (a script's sibling) when a student's file imports it. A name
    already imported, NumPy's, the grader's and the probes' are not taken."""

    def __init__(self, root, audit, protected):
        self.root, self.audit, self.protected = root.rstrip("/"), audit, protected
        self.files, self.dirs, self.by_stem, self.loaded, self.guarded = {}, {}, {}, {}, {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            rel = os.path.relpath(folder, self.root)
            parts = [] if rel == "." else rel.split(os.sep)
            if parts:
                self.dirs.setdefault(".".join(parts), folder)
            for name in sorted(f for f in files if f.endswith(".py")):
                stem = name[:-3].replace(".", "_")
                dotted = ".".join(parts) if stem == "__init__" and parts else ".".join(parts + [stem])
                self.files.setdefault(dotted, os.path.join(folder, name))
                self.by_stem.setdefault(stem, []).append(os.path.join(folder, name))
        self.names = {path: name for name, path in self.files.items()}

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.protected:
            return None
        file = self.files.get(name)
        if file is None and "." not in name and name not in self.dirs and len(self.by_stem.get(name, ())) == 1 \
                and str(importer(self.root)[0]).startswith(self.root + "/"):
            file = self.by_stem[name][0]
        if file is not None:
            return importlib.util.spec_from_file_location(name, file, loader=self, submodule_search_locations=(
                [] if os.path.basename(file) == "__init__.py" else None))
        return importlib.util.spec_from_loader(name, self, is_package=True) if name in self.dirs else None

    def create_module(self, spec):
        return self.loaded.get(spec.origin) if spec.origin else None

    def exec_module(self, module):
        file = getattr(module.__spec__, "origin", None)
        if not file or file not in self.names or self.loaded.get(file) is module:
            return                                                 # a folder, or a file loaded under another name
        self.loaded[file] = module
        try:
            with open(file, "rb") as handle:
                tree = ast.parse(handle.read(), filename=file)
            tree.body = keep(tree.body, os.path.relpath(file, self.root), self.audit.dropped)
            self.guarded[file] = guarded(tree)
            exec(compile(ast.fix_missing_locations(tree), file, "exec", dont_inherit=True), module.__dict__)
        except BaseException:
            del self.loaded[file]
            raise


class StandIns:
    """The last meta-path finder: an import made by a student's file (or below a stand-in) that nothing else
    satisfies gets an inert StandInModule, named in the audit record."""

    def __init__(self, audit, files):
        from grading.standins import StandInModule
        self.audit, self.files, self.module = audit, files, StandInModule

    def find_spec(self, name, path=None, target=None):
        file, line = importer(self.audit.root)
        if any(a <= line <= b for a, b in self.files.guarded.get(file, ())):
            return None                                   # try: import cupy as np / except ImportError: ...
        by_student = str(file).startswith(self.audit.root)
        if not (by_student or isinstance(sys.modules.get(name.rpartition(".")[0]), self.module)):
            return None
        if len(self.audit.standins) < CAP:
            self.audit.standins.append(name)
        return importlib.util.spec_from_loader(name, self, is_package=True)

    create_module = lambda self, spec: self.module(spec.name)  # noqa: E731
    exec_module = staticmethod(lambda module: None)


def load_student(job, audit):
    """{module name: module} of the student's files in ``job["files"]`` order; a file that fails to load is
    noted in the audit record (with its error line) and left out."""
    finder = StudentFiles(job["root"], audit, {"numpy", "grading", "runner"}
                          | {p["probe"].partition(":")[0].partition(".")[0] for p in job["parts"]})
    sys.meta_path.insert(0, finder)
    sys.meta_path.append(StandIns(audit, finder))
    namespace = {}
    audit.watching = True
    for rel in job["files"]:
        name = finder.names.get(os.path.join(finder.root, rel))
        if name is None:
            continue
        try:
            namespace[name] = importlib.import_module(name)
        except BaseException as error:  # noqa: BLE001 - the student's SystemExit too
            audit.load_errors.append(f"{rel}: {error_line(error, job['root'])}")
    for module in list(sys.modules.values()):
        if getattr(getattr(module, "__spec__", None), "origin", None) in finder.names:
            namespace.setdefault(module.__name__, module)
    return namespace


# --- the parts ------------------------------------------------------------------------------------------------

def error_line(error, root):
    """'ZeroDivisionError: division by zero (model.py:42)': the exception's last line, and the innermost line of
    the student's files in its traceback (else the innermost line at all)."""
    kind = type(error)
    while kind.__name__.startswith("_") and kind.__base__ not in (None, object):
        kind = kind.__base__                           # numpy's _ArrayMemoryError is a MemoryError
    try:
        text = error.msg if isinstance(error, SyntaxError) else str(error)
    except BaseException:  # noqa: BLE001 - a student's exception whose __str__ raises
        text = "(its message could not be printed)"
    line = f"{kind.__name__}: {text}" if text else kind.__name__
    root = root.rstrip("/") + "/"
    where = last = ""
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        name = frame.f_code.co_filename
        last = f"{os.path.basename(name)}:{lineno}"
        if name.startswith(root):
            where = f"{name[len(root):]}:{lineno}"
    if isinstance(error, SyntaxError) and error.filename and error.filename.startswith(root):
        where = f"{error.filename[len(root):]}:{error.lineno}"
    where = where or last
    return f"{line[:400]} ({where})" if where else line[:400]


def call(namespace, inputs, function, args=()):
    """The built-in probe: the student's ``function`` ("name" or "module:name") called on the inputs named in
    ``args``; its result comes back as the array "result"."""
    module_name, _, name = function.rpartition(":")
    modules = [namespace[module_name]] if module_name else list(namespace.values())
    for module in modules:
        target = getattr(module, name, None)
        if callable(target):
            return {"function": f"{module.__name__}.{name}"}, {"result": target(*[inputs[a] for a in args])}
    raise LookupError(f"no function {name!r} in the student's files")


def attempt(function, *args):
    """function(*args), or the exception it raised."""
    try:
        return function(*args)
    except BaseException as error:  # noqa: BLE001
        return error


class Copies(dict):
    """The part's inputs: each one read is a fresh copy (the student's code cannot change the next part's)."""

    def __getitem__(self, key):
        return super().__getitem__(key).copy()


def resolve(spec):
    """The probe function of "module:function" ("runner:..." is this module's own)."""
    module_name, _, name = spec.partition(":")
    module = sys.modules[__name__] if module_name == "runner" else importlib.import_module(module_name)
    return getattr(module, name)


def numeric(arrays):
    """The probe's arrays as float64 ndarrays (None entries left out); anything else raises TypeError."""
    import numpy as np
    if not isinstance(arrays, dict):
        raise TypeError(f"the probe returned {type(arrays).__name__}, not a dict of arrays")
    out = {}
    for key, value in ((k, v) for k, v in arrays.items() if v is not None):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"result {str(key)[:60]!r} is not a numeric array ({type(value).__name__}, "
                            f"dtype {array.dtype})")
        out[str(key)] = np.array(array, dtype=np.float64)
    return out


def drop_privileges(job):
    """Become job["uid"] (when started as root) and set the rlimits; before any student code."""
    import resource
    uid = job.get("uid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError(f"still uid {os.getuid()} after setuid({uid})")
    for name, value in job["rlimits"].items():
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]
        cap = (lambda v: v) if hard == resource.RLIM_INFINITY else (lambda v: min(v, hard))
        resource.setrlimit(limit, (cap(value), cap(value + 1 if name == "RLIMIT_CPU" else value)))


def set_up(argv):
    """(job, inputs, send): the audit hook, the uid and rlimits, NumPy and the channel, before any student code;
    send(meta, arrays) writes one frame (from a process the student's code forked, it writes nothing and exits)."""
    with open(argv[1], encoding="utf-8") as handle:
        job, fd = json.load(handle), int(argv[2])
    audit, main_pid = Audit(job["root"]), os.getpid()
    sys.addaudithook(audit)
    sys.stdout.reconfigure(line_buffering=True)
    sys.path.extend(job["paths"])
    try:
        drop_privileges(job)
        import numpy as np
        from grading import channel
        inputs = dict(np.load(job["inputs"], allow_pickle=False))
    except BaseException as error:  # noqa: BLE001
        os.write(2, f"runner: the sandbox could not be set up: {error_line(error, '/')}\n".encode())
        os._exit(3)

    def send(meta, arrays=None):
        if os.getpid() != main_pid:
            os._exit(0)
        try:
            try:
                channel.write_frame(fd, meta, arrays or {})
            except OSError:
                raise
            except BaseException as error:  # noqa: BLE001 - a result that cannot be sent is that part's error
                channel.write_frame(fd, {"part": meta.get("part"), "index": meta.get("index"),
                                         "error": f"the result could not be sent: {error_line(error, '/')}"}, {})
        except BaseException:  # noqa: BLE001 - the channel closed or replaced by the student's code
            os._exit(4)

    return job, audit, inputs, send


def run_part(part, probe, namespace, inputs, root):
    """(meta, arrays) of one part: its probe on the student's namespace and its own inputs, or its error."""
    index = part["index"]
    try:
        if isinstance(probe, BaseException):
            raise probe
        mine = Copies({k.partition(".")[2]: v for k, v in inputs.items() if k.partition(".")[0] in ("*", str(index))})
        meta, arrays = probe(namespace, mine, **part.get("args", {}))
        return (dict(meta) if isinstance(meta, dict) else {"meta": str(meta)}), numeric(arrays)
    except BaseException as error:  # noqa: BLE001 - SystemExit and KeyboardInterrupt of student code too
        return {"error": error_line(error, root)}, {}


def main(argv):
    """Set up, load the student's files, run the parts, one frame each (and the audit record after each)."""
    job, audit, inputs, send = set_up(argv)
    send({"part": "__started__"})
    probes = {part["index"]: attempt(resolve, part["probe"]) for part in job["parts"]}
    namespace = load_student(job, audit)
    send({"part": "__audit__", "audit": audit.record()})
    for part in job["parts"]:
        send({"part": "__begin__", "index": part["index"]})
        meta, arrays = run_part(part, probes[part["index"]], namespace, inputs, job["root"])
        send({**meta, "part": part["part"], "index": part["index"]}, arrays)
        send({"part": "__audit__", "audit": audit.record()})
    attempt(lambda: (sys.stdout.flush(), sys.stderr.flush()))
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
