"""The shape of the house (issue 33, ../shared/STYLE.md): what stands at the top level, how big a module or a main
may grow, who may import whom, and that the two teaching files need NumPy alone."""

import ast
import subprocess
import sys
import tomllib

import pytest
from conftest import ROOT

SCRIPTS = {"nn_numpy.py", "nn_torch.py", "cnn_numpy.py", "cnn_torch.py"}
ENTRIES = {"reproduce.py": "reproduction", "grade.py": "grading", "draw.py": "drawing"}
PACKAGES = ("common", "fast_cnn", "reproduction", "grading", "drawing")
MAX_MODULE_LINES = 450
MAX_ENTRY_LINES = 80
MAX_MAIN_LINES = 30


def source_files():
    """Every .py file of the kit but the tests and the benchmarks."""
    return sorted([*ROOT.glob("*.py"), *(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))])


def imported_modules(path):
    """The top-level names of every module ``path`` imports, anywhere in it (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_top_level_holds_the_four_scripts_and_three_short_entries():
    assert {p.name for p in ROOT.glob("*.py")} == SCRIPTS | set(ENTRIES)
    for entry, package in ENTRIES.items():
        path = ROOT / entry
        assert len(path.read_text().splitlines()) <= MAX_ENTRY_LINES, entry
        assert package in imported_modules(path), f"{entry} calls its package, {package}/"


def test_no_package_imports_a_top_level_entry():
    entries = {name.removesuffix(".py") for name in ENTRIES}
    for path in source_files():
        if path.parent != ROOT:
            assert not imported_modules(path) & entries, path.relative_to(ROOT)


def test_common_imports_no_script_and_no_verb():
    forbidden = {name.removesuffix(".py") for name in SCRIPTS | set(ENTRIES)} | {"reproduction", "grading", "drawing"}
    for path in (ROOT / "common").glob("*.py"):
        assert not imported_modules(path) & forbidden, path.name


def test_the_install_puts_no_generic_module_in_site_packages():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(setuptools["py-modules"]) == {name.removesuffix(".py") for name in SCRIPTS}
    assert {package.split(".")[0] for package in setuptools["packages"]} == set(PACKAGES)


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_over_450_lines_and_no_main_over_30(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            assert node.end_lineno - node.lineno + 1 <= MAX_MAIN_LINES, f"main() at line {node.lineno}"


def test_the_four_models_are_listed_once():
    """Only common/models.py spells the list of the four models out."""
    spelled = [path.relative_to(ROOT).as_posix() for path in source_files()
               if '"nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"' in path.read_text()]
    assert spelled == ["common/models.py"]


def test_the_teaching_files_import_with_numpy_alone():
    """tests/numpy_only.py blocks every import outside the standard library, NumPy and the kit's common/, then
    imports nn_numpy and cnn_numpy and takes a training step: the harness, threadpoolctl, matplotlib and tqdm are
    imported where a run needs them, not by the files a student reads."""
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "numpy_only.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_readmes_step_and_gradient_check_runs_with_numpy_alone(tmp_path):
    """The README's paste-able example: one training step and a finite-difference check of one weight."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "numpy_only.py"), str(tmp_path / "example.py")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    error = float(done.stdout.split("rel. error ")[1].split()[0])
    before, after = map(float, done.stdout.split("loss ")[1].split(" after")[0].split(" -> "))
    assert error < 1e-7 and after < before
