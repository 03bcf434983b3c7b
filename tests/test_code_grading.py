"""grade.py grades the code a class hands in (issue 34): the original's own code gets the verdicts a careful TA
gives it, the kit's code passes, each mutant fails its own part, each hostile student costs only its own row.

Two grade.py runs are shared by the tests that read them: a class of the kit, the original, the six mutants and a
torch user (the default rubric), and a class of hostile students (tight limits, one per-student pointer)."""

import csv
import json
import re
import socket
import threading

import pytest

from conftest import ROOT, run_script
from grading.sandbox import sandbox_problem
from mutants import HOSTILE, MUTANTS, OWN_STYLE_PASSES, own_style_student, torch_student, write_student

SHARED = ROOT.parent / "shared" / "original"
ORIGINAL = ("nn_pure_python.py", "cnn_pure_python.py", "nn_framework.py", "cnn_framework.py", "dataset-dataloader.py",
            "run_all.py")
needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")
# The parts a careful TA fails in the original's code, and why (everything else passes):
ORIGINAL_FAILS = {
    "conv.backward.db": "2x the expected",       # db += sum(dout[:, c]) inside the loop over the batch: N times db
    "conv.backward_stride": "2x the expected",   # the same db
    "pool.backward_stride": "overlapping",       # overlapping windows: a later window's mask overwrites dx
    "softmax.backward": "passes the gradient through unchanged",  # a convention: the loss gradient is dL/dz
}
UNIT = ("linear", "relu", "softmax", "loss", "sgd", "conv", "pool")
# A mutant's bug also shows in the part that runs the same code: the fused softmax's backward is the loss's.
SAME_CODE = {"ce_without_1_over_n": {"softmax.backward"}, "pool_to_every_position": {"pool.backward_ties"}}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def verdicts(out, student):
    return {r["part"]: r for r in read_csv(out / "modules.csv") if r["student_id"] == student}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, mnist_dir):
    if sandbox_problem():
        pytest.skip(sandbox_problem())
    tmp = tmp_path_factory.mktemp("code")
    folder, out = tmp / "class", tmp / "graded"
    write_student(folder / "PA1_1000_kit_copy")
    for i, name in enumerate(MUTANTS):
        write_student(folder / f"PA1_{2000 + i}_{name}", mutant=name)
    torch_student(folder / "PA1_3000_torch_user")
    own_style_student(folder / "PA1_5000_own_style")
    (folder / "PA1_3000_torch_user" / "model.npz").write_bytes((ROOT / "reference" / "nn_numpy.npz").read_bytes())
    if all((SHARED / f).is_file() for f in ORIGINAL):
        (folder / "PA1_4000_original").mkdir()
        for name in ORIGINAL:
            (folder / "PA1_4000_original" / name).write_bytes((SHARED / name).read_bytes())
    result = run_script(ROOT / "grade.py", folder, "--out", out, "--quiet", env={"MNIST_DIR": str(mnist_dir)},
                        timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


@needs_sandbox
def test_the_kits_own_code_passes_every_part_that_earns_points(graded_class):
    out, _ = graded_class
    rows = verdicts(out, "1000")
    assert {p: r["verdict"] for p, r in rows.items() if float(r["max_points"]) > 0 and r["verdict"] != "pass"} == {}
    scores = {r["student_id"]: r for r in read_csv(out / "scores.csv")}
    assert scores["1000"]["code_points"] == "22" and scores["1000"]["max_points"] == "28"   # + 6 for the report
    assert scores["1000"]["name"] == "kit copy" and scores["1000"]["status"] == "graded"
    # the kit's layers have no stride: those parts (worth 0) are missing, saying why
    assert rows["pool.backward_stride"]["verdict"] == "missing" and "2x2" in rows["pool.backward_stride"]["detail"]


@needs_sandbox
def test_a_student_with_names_and_an_optimizer_of_their_own_gets_every_mlp_part(graded_class):
    """Dense/Relu/Softmax, a CrossEntropy class on probabilities, SGDOptimizer(layers, lr): an instructor's
    class had this student lose 7 of the points (loss classes were not tried; the optimizer was built on the
    network and its error blamed on the student)."""
    out, _ = graded_class
    rows = verdicts(out, "5000")
    assert {part: rows[part]["verdict"] for part in OWN_STYLE_PASSES} == {part: "pass" for part in OWN_STYLE_PASSES}


@needs_sandbox
def test_the_originals_code_gets_a_careful_tas_verdicts(graded_class):
    out, _ = graded_class
    if not (SHARED / "cnn_pure_python.py").is_file():
        pytest.skip("the original's code is not in ../shared/original")
    rows = verdicts(out, "4000")
    assert {p for p, r in rows.items() if r["verdict"] != "pass"} == set(ORIGINAL_FAILS)
    for part, why in ORIGINAL_FAILS.items():
        assert rows[part]["verdict"] == "fail" and why in rows[part]["detail"], rows[part]
    assert re.search(r"db relative error .*worst at \(\d+,\): -?[\d.]+, expected -?[\d.]+", rows["conv.backward.db"]
                     ["detail"])
    feedback = (out / "feedback" / "4000.html").read_text()
    # each network's own script: the MLP's layers from nn_pure_python.py, the CNN's from cnn_pure_python.py
    assert "linear: nn_pure_python.py:LinearLayer" in feedback and "conv: cnn_pure_python.py:ConvLayer" in feedback
    assert "dataset.dataloader" in feedback and "matplotlib.pyplot" in feedback   # inert stand-ins, named
    assert "whole network" in rows["mlp.gradient_check"]["detail"] and rows["mlp.gradient_check"]["verdict"] == "pass"
    scores = {r["student_id"]: r for r in read_csv(out / "scores.csv")}
    assert scores["4000"]["code_points"] == "20.5" and "banned" not in scores["4000"]["note"]


@needs_sandbox
@pytest.mark.parametrize("name", list(MUTANTS))
def test_each_mutant_fails_its_own_part_and_no_other_module_part(graded_class, name):
    out, _ = graded_class
    index = list(MUTANTS).index(name)
    rows = verdicts(out, str(2000 + index))
    failed = {p for p, r in rows.items() if r["verdict"] == "fail" and p.partition(".")[0] in UNIT}
    assert MUTANTS[name].part in failed
    assert failed - {MUTANTS[name].part} <= SAME_CODE.get(name, set()), failed
    others = {p: r["verdict"] for p, r in rows.items() if p.partition(".")[0] in UNIT and p not in failed
              and float(r["max_points"]) > 0}
    assert set(others.values()) == {"pass"}, others


@needs_sandbox
def test_importing_torch_in_the_numpy_part_bans_its_parts_naming_the_line(graded_class):
    out, _ = graded_class
    rows = verdicts(out, "3000")
    line = (ROOT / "nn_numpy.py").read_text().splitlines().index("import numpy as np") + 2
    assert rows["linear.forward"]["verdict"] == "banned"
    assert f"nn_numpy.py:{line} imports torch" in rows["linear.forward"]["detail"]
    assert rows["conv.forward"]["verdict"] == "pass"       # cnn_numpy.py's own Conv2d imports no framework
    assert rows["cnn.overfit"]["verdict"] == "banned"      # but its network uses nn_numpy's Linear
    score = {r["student_id"]: r for r in read_csv(out / "scores.csv")}["3000"]
    assert score["test_acc"] and float(score["test_acc"]) > 97 and score["weights_file"] == "model.npz"


@needs_sandbox
def test_the_outputs_agree_with_each_other(graded_class):
    out, result = graded_class
    modules, scores = read_csv(out / "modules.csv"), read_csv(out / "scores.csv")
    for score in scores:
        rows = [r for r in modules if r["student_id"] == score["student_id"]]
        assert sum(float(r["points"]) for r in rows) == pytest.approx(float(score["code_points"]))
        results = json.loads((out / "gradescope" / score["student_id"] / "results.json").read_text())
        assert results["score"] == pytest.approx(float(score["final"]))
        assert float(score["final"]) == pytest.approx(float(score["code_points"]) + float(score["report_points"]))
        assert [t["name"] for t in results["tests"] if t["max_score"] and not t["name"].startswith("report")] == \
            [r["part"] for r in rows if float(r["max_points"])]
        assert (out / "feedback" / f"{score['student_id']}.html").is_file()
    summary = (out / "summary.md").read_text()
    assert "## Pass rate per module part" in summary and "## Totals" in summary
    assert "## Weights: grades of 1 submission" in summary
    assert "one score per student" in result.stdout.strip().splitlines()[-1]
    assert re.search(r"secret\.toml", summary) and (out / "secret.toml").is_file()


# --- hostile students ------------------------------------------------------------------------------------------

HOSTILE_CONFIG = """
[limits]
wall_seconds = 30
cpu_seconds = 30
memory_mb = 2048
processes = 32

[students.5000]
linear = "nn_numpy.py:Thing"
"""


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory, mnist_dir):
    if sandbox_problem():
        pytest.skip(sandbox_problem())
    tmp = tmp_path_factory.mktemp("hostile")
    folder, out, outside = tmp / "class", tmp / "graded", tmp / "outside.txt"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    arrived, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                arrived.append(listener.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    write_student(folder / "PA1_1000_kit")
    config = tmp / "rubric.toml"
    config.write_text(HOSTILE_CONFIG)
    places = {"PORT": listener.getsockname()[1], "OUTSIDE_PATH": outside, "GRADER_FILE": ROOT / "grading" /
              "code_checks.py", "SECRET_FILE": tmp / "rubric.toml.secret"}
    for i, name in enumerate(HOSTILE):
        write_student(folder / f"PA1_{1001 + i}_{name}", hostile=name, replacements=places)
    # a linear layer under a name discovery does not know: missing, then found where the rubric points
    for student in ("PA1_5000_pointed", "PA1_5001_unpointed"):
        write_student(folder / student)
        path = folder / student / "nn_numpy.py"
        path.write_text(re.sub(r"\bLinear\b", "Thing", path.read_text()))
    result = run_script(ROOT / "grade.py", folder, "--out", out, "--config", config, "--quiet",
                        env={"MNIST_DIR": str(mnist_dir)}, timeout=900)
    stop.set()
    thread.join()
    listener.close()
    assert result.returncode == 0, result.stdout + result.stderr
    return out, outside, arrived, folder


@needs_sandbox
@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_student_costs_only_its_own_row_and_gains_nothing(hostile_class, name):
    out, outside, arrived, folder = hostile_class
    rows = verdicts(out, str(1001 + list(HOSTILE).index(name)))
    kit = verdicts(out, "1000")
    changed = {p: r["verdict"] for p, r in rows.items() if r["verdict"] != kit[p]["verdict"]}
    assert set(changed) <= {"sgd.step"}, changed
    expected = {"infinite_loop": "timeout", "huge_allocation": "error", "fake_results": "error",
                "monkeypatch_numpy": "fail", "fork_bomb": "pass", "connect": "pass", "write_outside": "pass",
                "read_grader": "pass"}[name]
    assert rows["sgd.step"]["verdict"] == expected, rows["sgd.step"]
    assert not arrived and not outside.exists() and not (folder / "escaped.txt").exists()


@needs_sandbox
def test_the_hostile_students_actions_are_named_in_their_feedback(hostile_class):
    out = hostile_class[0]
    connect = (out / "feedback" / f"{1001 + list(HOSTILE).index('connect')}.html").read_text()
    assert "socket.connect" in connect
    loop = verdicts(out, str(1001 + list(HOSTILE).index("infinite_loop")))["sgd.step"]["detail"]
    assert "wall-clock limit" in loop
    memory = verdicts(out, str(1001 + list(HOSTILE).index("huge_allocation")))["sgd.step"]["detail"]
    assert "MemoryError" in memory or "memory" in memory


@needs_sandbox
def test_a_module_discovery_cannot_settle_is_missing_until_the_rubric_points_to_it(hostile_class):
    out = hostile_class[0]
    unpointed, pointed = verdicts(out, "5001"), verdicts(out, "5000")
    assert unpointed["linear.forward"]["verdict"] == "missing"
    assert "no class or function named like a linear layer (tried Linear, Dense" in unpointed["linear.forward"]["detail"]
    assert "the files define" in unpointed["linear.forward"]["detail"] and "Thing" in unpointed["linear.forward"]["detail"]
    assert pointed["linear.forward"]["verdict"] == "pass" and pointed["mlp.train"]["verdict"] == "pass"
    assert "nn_numpy.py:Thing" in (out / "feedback" / "5000.html").read_text()


def test_where_bwrap_cannot_start_grade_py_refuses_in_one_line_unless_told(tmp_path, monkeypatch):
    from common.errors import UsageError
    from grading import cli, sandbox
    from grading.lms import gather

    folder = write_student(tmp_path / "class" / "PA1_1_a").parent
    submissions = gather(folder, tmp_path / "out")
    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bwrap cannot create a sandbox here (no user "
                        "namespaces): enable unprivileged user namespaces, or grade with --no-sandbox")
    args = cli.build_parser().parse_args([str(folder), "--out", str(tmp_path / "out")])
    with pytest.raises(UsageError, match="--no-sandbox"):
        cli.code_plan(submissions, args, tmp_path / "out")
    args = cli.build_parser().parse_args([str(folder), "--out", str(tmp_path / "out"), "--no-sandbox"])
    assert cli.code_plan(submissions, args, tmp_path / "out")["sandboxed"] is False
    args = cli.build_parser().parse_args([str(folder), "--weights-only"])
    assert cli.code_plan(submissions, args, tmp_path / "out") is None
