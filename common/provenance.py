"""What made a run: the code (a digest of the kit's modules a script runs) and the machine that ran it.

    from common.provenance import code_digest, machine_id
    digest = code_digest(ROOT / "cnn_numpy.py")       # 'sha256:…' of the kit's code that script runs + versions
    machine = machine_id()                             # a short fingerprint of this machine's arithmetic

common/run.py records both in every metrics.json (``code``, ``machine``); reproduction/reuse.py decides from
them whether a run on disk can stand for a new one. The digest covers the script and every module of the kit it
imports, directly or not (nn_numpy.py, common/*.py, fast_cnn/*.py, ...; third-party packages only by their
version: numpy always, torch where imported). The source is normalised first (ast.parse, docstrings dropped,
ast.dump), so comments, docstrings and layout do not count; a change of code does, and so does a refactor that
keeps every number (which reproduce.py's first-epoch check then accepts).
"""

import ast
import hashlib
import importlib.metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONED = ("numpy", "torch")  # third-party packages whose version is part of the digest, where imported


# --- code identity -------------------------------------------------------------------------------------------

def normalised(source):
    """ast.dump of ``source`` without its docstrings (and without line numbers): what the code does."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def module_file(name, root):
    """The kit's file for module ``name`` (a package's __init__.py), or None if it is not the kit's."""
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(tree, path, root):
    """Every module an import statement in ``tree`` (anywhere: lazy imports count) may load, as dotted names."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1] if package else []
                base = ".".join([*parent, base] if base else parent)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import module`
    return [n for n in names if n]


def kit_modules(script, root=ROOT):
    """(the kit's files ``script`` runs, sorted; the top-level names of the other packages it imports)."""
    root = Path(root).resolve()
    seen, others, todo = set(), set(), [Path(script).resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(ast.parse(path.read_text()), path, root):
            parts = name.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            found = [module_file(".".join(parts[:i]), root) for i in range(1, len(parts) + 1)]
            todo += [f for f in found if f is not None]
            if found[0] is None:
                others.add(parts[0])
    return sorted(seen), others


def code_digest(script, root=ROOT):
    """'sha256:<hex>' over the normalised source of the kit's modules ``script`` runs (with their paths) and the
    versions of numpy and, where imported, torch."""
    root = Path(root).resolve()
    files, others = kit_modules(script, root)
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(root).as_posix()}\0{normalised(path.read_text())}\0".encode())
    for package in VERSIONED:
        if package in others or package == "numpy":
            h.update(f"{package}=={version(package)}\0".encode())
    return "sha256:" + h.hexdigest()


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def machine_id():
    """A short fingerprint of this machine's arithmetic: architecture, host, CPU model, the CPU's vector
    instructions (NumPy and PyTorch pick their kernels by them: two "AMD EPYC" hosts, one with AVX-512, round
    differently), NumPy's BLAS and the kernel it chose. Another CPU (or BLAS) may round differently, so a run is
    trusted without a check only on the machine that made or checked it."""
    import platform

    import numpy as np

    cpu, flags = "", ""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
        words = next((line.split(":", 1)[1].split() for line in info if line.startswith(("flags", "Features"))), [])
        flags = " ".join(sorted(w for w in words if w.startswith(VECTOR_FLAGS)))
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):  # NumPy before 1.26 prints its configuration only
        blas = {}
    text = "|".join([platform.machine(), platform.node(), cpu or platform.processor(), str(blas.get("name")),
                     str(blas.get("version")), flags, blas_kernel()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


VECTOR_FLAGS = ("sse", "ssse", "avx", "fma", "f16c", "amx", "asimd", "sve", "neon")  # /proc/cpuinfo's SIMD words


def blas_kernel():
    """The kernel family NumPy's own BLAS chose at load time ("SkylakeX", "Haswell", "Zen"...; OPENBLAS_CORETYPE
    can force one), or "" where threadpoolctl is absent or the BLAS does not say. Only NumPy's library counts, so
    the answer is the same whether or not torch or SciPy (each with a BLAS of its own) was imported first."""
    import numpy as np

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ""
    site = Path(np.__file__).resolve().parent.parent
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    own = [pool for pool in pools if Path(pool.get("filepath", "")).resolve().is_relative_to(site)
           and Path(pool["filepath"]).resolve().relative_to(site).parts[0] in ("numpy", "numpy.libs")]
    kernels = {str(pool.get("architecture", "")) for pool in own or
               [pool for pool in pools if pool.get("internal_api") == "openblas"]}
    return ",".join(sorted(kernels))
