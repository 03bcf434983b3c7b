"""The assignment kit (issue 36): the handout made from the kit's solution and grading.toml, its public checks,
and the round trip through both check.py and grade.py — blank, filled in, and one mutant per part.

One grade.py run over a class of handouts (blank, filled in, the six mutants) is shared by the tests that read it."""

import ast
import csv
import json
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT, run_script
from grading import handout
from grading.handout_check import CHECKS
from grading.sandbox import sandbox_problem
from mutants import MUTANTS

PARTS = {f"{file}:{q}" for entries in tomllib.loads((ROOT / "grading" / "grading.toml").read_text())["handout"].values()
         for file, _, q in (e.partition(":") for e in entries)}
# Run a script of the handout with every framework blocked: the student's folder needs NumPy (and, for the
# training harness, matplotlib and tqdm), never torch.
NO_FRAMEWORK = ("import sys, runpy\n"
                "class Block:\n"
                "    def find_spec(self, name, path=None, target=None):\n"
                "        if name.split('.')[0] in ('torch', 'tensorflow', 'jax', 'keras', 'fast_cnn'):\n"
                "            raise ImportError('blocked: ' + name)\n"
                "sys.meta_path.insert(0, Block())\n"
                "sys.argv = sys.argv[1:]\n"
                "sys.path.insert(0, '.')\n"
                "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def check_py(folder, *args):
    return subprocess.run([sys.executable, "-c", NO_FRAMEWORK, "check.py", *args], cwd=folder, capture_output=True,
                          text=True, timeout=120)


def filled(folder, mutant=None):
    """The handout in ``folder`` with the kit's two files put back (one MUTANTS bug in them, if named)."""
    for name in handout.FILES:
        text = (ROOT / name).read_text(encoding="utf-8")
        if mutant and MUTANTS[mutant].file == name:
            text = text.replace(MUTANTS[mutant].old, MUTANTS[mutant].new)
        if name == "cnn_numpy.py":
            text = text.replace(handout.FAST_LAYERS, handout.TEXTBOOK_ONLY)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handout") / "handout"
    files = handout.write_handout(folder)
    return folder, files


@pytest.fixture
def copy(written, tmp_path):
    return shutil.copytree(written[0], tmp_path / "handout")


def blank_body(node):
    body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def test_the_handout_holds_the_two_files_common_the_checks_and_a_readme_and_no_fast_path(written):
    folder, files = written
    assert {"nn_numpy.py", "cnn_numpy.py", "check.py", "check_data.json", "README.md", "common/run.py",
            "common/harness_numpy.py", "common/data.py"} <= set(files)
    assert not any(f.startswith("fast_cnn") or f.endswith("harness_torch.py") for f in files)


def test_each_listed_part_is_blank_and_every_other_definition_is_the_kits(written):
    folder, _ = written
    for name in handout.FILES:
        kit = handout.definitions(ast.parse((ROOT / name).read_text(encoding="utf-8")))
        given = handout.definitions(ast.parse((folder / name).read_text(encoding="utf-8")))
        assert set(given) == set(kit)
        for qualname, node in given.items():
            if f"{name}:{qualname}" in PARTS:
                assert blank_body(node) and qualname in ast.unparse(node.body[-1]), qualname
                assert ast.get_docstring(node) == ast.get_docstring(kit[qualname])       # its equations kept
                assert ast.dump(node.args) == ast.dump(kit[qualname].args)               # its signature kept
            elif name == "nn_numpy.py" or qualname != "build_parser":
                assert ast.dump(node) == ast.dump(kit[qualname]), qualname


def test_no_line_of_a_solution_body_is_in_the_handout(written):
    folder, _ = written
    rubric = handout.read_rubric(handout.DEFAULT)
    _, removed = handout.handed_out_sources(rubric)
    handed_out = {line.strip() for path in folder.rglob("*") if path.is_file() and path.suffix in (".py", ".md")
                  for line in path.read_text(encoding="utf-8").splitlines()}
    # A solution line that the code given whole also has (Adam.step's loop header, Flatten's x_shape, common/'s
    # "return None") is not a leak; every other must be gone from every file of the handout.
    given = [*(folder / name for name in removed), *(folder / "common").glob("*.py"), folder / "check.py"]
    kept = {line.strip() for path in given for line in path.read_text(encoding="utf-8").splitlines()}
    for name, parts in removed.items():
        solution = {line.strip() for lines in parts.values() for line in lines
                    if line.strip() and not line.strip().startswith("#")}
        only = solution - kept
        assert len(only) > 15 and not only & handed_out, sorted(only & handed_out)
    data = json.loads((folder / "check_data.json").read_text())

    def numbers_only(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and numbers_only(v) for k, v in value.items())
        if isinstance(value, list):
            return all(numbers_only(v) for v in value)
        return isinstance(value, float)

    assert numbers_only(data) and set(data) == set(CHECKS)


def test_every_part_of_the_rubric_has_a_public_check():
    assert {p.partition(":")[2] for p in PARTS} == set(CHECKS)


def test_check_py_says_not_written_yet_for_every_blank_part(written):
    result = check_py(written[0])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert [line.split()[0] for line in lines[:-1]] == list(CHECKS)
    assert all(line.endswith("not written yet") for line in lines[:-1])
    assert lines[-1] == "0 of 15 parts written; nothing to check yet"


def test_the_kits_bodies_put_back_pass_every_check(copy):
    result = check_py(filled(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "15 of 15 parts written; every checked part passes" in result.stdout
    one = check_py(copy, "relu")
    assert one.returncode == 0 and "2 of 2 parts written" in one.stdout and "Linear" not in one.stdout


@pytest.mark.parametrize("mutant", MUTANTS)
def test_each_mutant_fails_exactly_its_part_in_check_py(copy, mutant):
    result = check_py(filled(copy, mutant))
    failed = sorted({line.split()[0] for line in result.stdout.splitlines() if "FAIL" in line})
    owner = {"relu.backward": "ReLU.backward", "linear.backward.dW": "Linear.backward",
             "loss.backward": "SoftmaxCrossEntropy.backward", "conv.backward.dx": "Conv2d.backward",
             "pool.backward": "MaxPool2d.backward", "sgd.step": "SGD.step"}[MUTANTS[mutant].part]
    assert result.returncode == 1 and failed == [owner], result.stdout


# A student's first mistakes (from a first-time student's review), each caught with a line saying what is wrong
MISTAKES = {
    "relu_at_zero": ("nn_numpy.py", "return dout * (self.out > 0)", "return dout * (self.out >= 0)",
                     "ReLU.backward", "dx, x with exact zeros     known answer     rel. error 1.0e+00  FAIL: worst"),
    "relu_in_place": ("nn_numpy.py", "self.out = np.maximum(x, 0)", "x[x < 0] = 0\n        self.out = x",
                      "ReLU.forward", "x left unchanged           FAIL  forward changed its input x in place"),
    "db_not_summed": ("nn_numpy.py", "self.db = dout.sum(axis=0)", "self.db = dout", "Linear.backward",
                      "db                         known answer     FAIL  shape (5, 3), expected (3,)"),
    "db_mean": ("nn_numpy.py", "self.db = dout.sum(axis=0)", "self.db = dout.mean(axis=0)", "Linear.backward",
                "FAIL: yours is 0.2 times the answer everywhere"),
    "pool_ties_all": ("cnn_numpy.py", "first = (self.x[:, :, u::2, v::2] == self.y) & ~taken",
                      "first = (self.x[:, :, u::2, v::2] == self.y)", "MaxPool2d.backward",
                      "(each tied maximum given all of it?)"),
    "softmax_unshifted": ("nn_numpy.py", "return (np.log(total[:, 0]) - shifted[rows, labels]).mean()",
                          "return -np.log(np.exp(logits)[rows, labels] / np.exp(logits).sum(1)).mean()",
                          "SoftmaxCrossEntropy.forward", "loss, one logit +800       known answer     rel. error nan"
                                                         "  FAIL: yours has nan (an overflow?)"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_students_first_mistakes_fail_their_part_saying_what_is_wrong(copy, mistake):
    file, old, new, part, says = MISTAKES[mistake]
    filled(copy)
    text = (copy / file).read_text(encoding="utf-8")
    assert text.count(old) == 1
    (copy / file).write_text(text.replace(old, new), encoding="utf-8")
    result = check_py(copy)
    failed = sorted({line.split()[0] for line in result.stdout.splitlines() if "FAIL" in line})
    assert result.returncode == 1 and part in failed and says in result.stdout, result.stdout


def test_a_part_written_before_the_one_it_needs_says_so(copy):
    text = (ROOT / "nn_numpy.py").read_text(encoding="utf-8")
    backward = text[text.index("    def backward(self, dout):\n        \"\"\"dout (N, out)"):text.index("class ReLU")]
    path = copy / "nn_numpy.py"
    given = path.read_text(encoding="utf-8")
    start = given.index("    def backward(self, dout):\n        \"\"\"dout (N, out)")
    path.write_text(given[:start] + backward + given[given.index("class ReLU"):], encoding="utf-8")
    result = check_py(copy, "linear")
    assert "Linear.forward                 not written yet" in result.stdout
    assert "Linear.backward                not checked yet: needs Linear.forward written first" in result.stdout


def test_a_filled_in_handout_trains_end_to_end_without_a_framework(copy, tmp_path, mnist_dir):
    filled(copy)
    for script, extra in (("nn_numpy.py", ("--batch-size", "8")),
                          ("cnn_numpy.py", ("--batch-size", "8", "--lr", "0.05"))):
        result = subprocess.run([sys.executable, "-c", NO_FRAMEWORK, script, "--epochs", "1", "--limit-train", "2000",
                                 "--quiet", *extra, "--out-dir", str(tmp_path / "figures"), "--checkpoint",
                                 str(tmp_path / "ck" / script)], cwd=copy, capture_output=True, text=True,
                                timeout=300, env={"MNIST_DIR": str(mnist_dir), "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stdout + result.stderr
        record = json.loads((tmp_path / "figures" / script[:-3] / "metrics.json").read_text())
        assert record["final"]["test_acc"] > 0.8


def test_the_readme_is_made_from_the_rubric_the_grader_reads(written, tmp_path):
    readme = (written[0] / "README.md").read_text(encoding="utf-8")
    assert "### linear (4 points)" in readme and "`linear.backward.dW` 1" in readme
    assert "| 1 day late | 75% |" in readme and "| 7 days late | 10% |" in readme
    assert "PA1_<studentID>_<name>.zip" in readme and "worth 0.5 points (6 in all)" in readme
    assert "y[n, o, i, j] = b[o] + sum over c, u, v of W[o, c, u, v] * xp[n, c, i + u, j + v]" in readme
    config = tmp_path / "pa1.toml"
    config.write_text('[points]\n"linear.forward" = 3\n[late]\nschedule = [[12, 0.5]]\n')
    mine = handout.readme(handout.read_rubric(config))
    assert "### linear (6 points)" in mine and "| 0.5 days late | 50% |" in mine and "75%" not in mine


def test_an_out_folder_that_is_not_a_handout_is_refused_in_one_line(tmp_path, written):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    result = run_script("-m", "grading.handout", "--out", tmp_path / "mine")
    assert result.returncode != 0 and "is not a handout written by this command" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and (tmp_path / "mine" / "thesis.tex").is_file()
    again = run_script("-m", "grading.handout", "--out", written[0])          # an earlier handout is replaced
    assert again.returncode == 0, again.stderr
    nested = run_script("-m", "grading.handout", "--out", tmp_path / "course" / "pa1" / "handout")
    assert nested.returncode == 0 and (tmp_path / "course" / "pa1" / "handout" / "check.py").is_file()
    assert not list((tmp_path / "course" / "pa1").glob(".handout-*"))     # no stage left beside it
    bad = tmp_path / "bad.toml"
    bad.write_text('[handout]\nlinear = ["nn_numpy.py:Linear.nope"]\n')
    result = run_script("-m", "grading.handout", "--out", tmp_path / "h2", "--config", bad)
    assert result.returncode != 0 and "Linear.nope not defined in nn_numpy.py" in result.stderr


@pytest.fixture(scope="module")
def graded(written, tmp_path_factory, mnist_dir):
    if sandbox_problem():
        pytest.skip(sandbox_problem())
    tmp = tmp_path_factory.mktemp("handout-class")
    shutil.copytree(written[0], tmp / "class" / "PA1_1_blank")
    filled(shutil.copytree(written[0], tmp / "class" / "PA1_2_filled"))
    for i, mutant in enumerate(MUTANTS):
        filled(shutil.copytree(written[0], tmp / "class" / f"PA1_{10 + i}_{mutant}"), mutant)
    result = run_script("grade.py", tmp / "class", "--out", tmp / "out", "--boilerplate", written[0], "--quiet",
                        env={"MNIST_DIR": str(mnist_dir)}, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp / "out" / "modules.csv", newline="", encoding="utf-8") as f:
        modules = list(csv.DictReader(f))
    with open(tmp / "out" / "scores.csv", newline="", encoding="utf-8") as f:
        scores = {row["student_id"]: row for row in csv.DictReader(f)}
    return modules, scores


def test_grade_py_finds_every_part_of_the_blank_handout_missing(graded):
    modules, scores = graded
    rows = [r for r in modules if r["student_id"] == "1"]
    assert rows and all(r["verdict"] == "missing" for r in rows), [r for r in rows if r["verdict"] != "missing"]
    assert any("not written yet (NotImplementedError: Linear.forward" in r["detail"] for r in rows)
    assert scores["1"]["code_points"] == "0"


def test_grade_py_gives_the_filled_in_handout_full_points_and_each_mutant_fails_its_part(graded):
    modules, scores = graded
    assert scores["2"]["code_points"] == "22"
    for i, mutant in enumerate(MUTANTS):
        verdict = {r["part"]: r["verdict"] for r in modules if r["student_id"] == str(10 + i)}
        assert verdict[MUTANTS[mutant].part] == "fail", mutant
