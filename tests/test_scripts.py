"""The four scripts driven through their command lines, as a user runs them (quick runs on 2,000 images)."""

import json

import pytest

from reproduction import experiments
from conftest import ROOT, run_script

SCRIPTS = ["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"]
REPORT_DEFAULTS = {"nn_numpy": (20, 0.1, 32), "nn_torch": (20, 0.01, 32), "cnn_numpy": (5, 0.01, 16),
                   "cnn_torch": (10, 0.001, 32)}
FIGURES = ["loss.png", "confusion_matrix.png", "top3.png", "mistakes.png"]
QUICK = [*experiments.QUICK_BASE, "--quiet"]
# Smoke settings shared with `reproduce.py --quick` (see there why they differ from the report's): measured
# 85-89% (MLPs, 3 epochs) and 89-91% (CNNs, 1 epoch) on 2,000 images.
SMOKE = {script: (experiments.QUICK_FLAGS[script], 0.80 if script.startswith("nn") else 0.85) for script in SCRIPTS}
TIMING_KEYS = {"seconds", "seconds_with_eval", "seconds_total"}


def refuse(token):
    raise ValueError(f"not strict JSON: {token}")


def quick_run(script, folder, *extra):
    result = run_script(f"{script}.py", *QUICK, "--out-dir", folder / "figures",
                        "--checkpoint", folder / "checkpoints" / script, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "figures" / script / "metrics.json").read_text(), parse_constant=refuse), result


@pytest.fixture(scope="module", params=SCRIPTS)
def trained(request, tmp_path_factory, mnist_dir):
    folder = tmp_path_factory.mktemp(request.param)
    record, result = quick_run(request.param, folder, *SMOKE[request.param][0])
    return request.param, folder, record, result


def check_schema(record, script):
    assert set(record) >= {"model", "framework", "config", "history", "final", "confusion_matrix",
                           "seconds_total", "versions"}
    assert record["model"] == script and record["framework"] == ("numpy" if "numpy" in script else "torch")
    assert {"epochs", "lr", "batch_size", "seed", "dtype"} <= set(record["config"])
    if record["framework"] == "torch":
        assert record["config"]["device"] == "cpu" and "torch" in record["versions"]
    else:
        assert "torch" not in record["versions"]
    every = record["config"]["eval_train"] == "every"
    for entry in record["history"]:
        assert set(entry) >= {"epoch", "test_loss", "test_acc", "seconds", "train_loss_running", "train_acc_running"}
        assert 0 <= entry["train_acc_running"] <= 1 and 0 <= entry["test_acc"] <= 1 and entry["test_loss"] > 0
        # --eval-train: the whole training set after the last epoch only (default) or after every epoch
        assert ("train_loss" in entry) == ("train_acc" in entry) == (every or entry is record["history"][-1])
    assert 0 <= record["history"][-1]["train_acc"] <= 1
    counts = record["confusion_matrix"]
    assert len(counts) == 10 and all(len(row) == 10 for row in counts)
    assert sum(map(sum, counts)) == 10000
    assert sum(counts[i][i] for i in range(10)) / 10000 == pytest.approx(record["final"]["test_acc"])


def test_a_short_run_on_2000_images_learns_and_writes_every_output(trained):
    script, folder, record, result = trained
    check_schema(record, script)
    assert record["final"]["test_acc"] > SMOKE[script][1]
    assert record["final"] == {k: record["history"][-1][k] for k in record["final"]}
    for name in FIGURES:
        assert (folder / "figures" / script / name).stat().st_size > 5000
    suffix = ".npz" if "numpy" in script else ".pt"
    assert (folder / "checkpoints" / script).exists() or (folder / "checkpoints" / (script + suffix)).exists()
    epochs = record["config"]["epochs"]
    assert f"epoch  {epochs}/{epochs}" in result.stdout and "test accuracy" in result.stdout


QUICK_RUNS = json.loads((ROOT / "tests" / "data" / "quick_runs.json").read_text())
NUMBERS = ("history", "final", "confusion_matrix")  # what must not move (timings and provenance may)


def numbers_of(record):
    return {"config": {k: record["config"][k] for k in QUICK_RUNS["runs"]["nn_numpy"]["config"]},
            "history": [{k: v for k, v in h.items() if not k.startswith("seconds")} for h in record["history"]],
            **{k: record[k] for k in NUMBERS[1:]}}


def same_machine_as_the_recording():
    from common.provenance import machine_id

    if machine_id() != QUICK_RUNS["machine"]:
        pytest.skip("tests/data/quick_runs.json was recorded on another machine: another CPU or BLAS may round "
                    "differently")


def test_a_quick_run_gives_the_numbers_recorded_before_the_restructuring(trained):
    """Issue 33 moved every module but the four scripts' arithmetic: the same seed gives the same metrics.json
    numbers, bit for bit, as before it (on the machine that recorded them)."""
    same_machine_as_the_recording()
    script, _, record, _ = trained
    assert numbers_of(record) == QUICK_RUNS["runs"][script]


def test_the_textbook_cnn_gives_the_numbers_recorded_before_the_restructuring(tmp_path, mnist_dir):
    same_machine_as_the_recording()
    record, _ = quick_run("cnn_numpy", tmp_path, *SMOKE["cnn_numpy"][0], "--layers", "textbook")
    assert numbers_of(record) == QUICK_RUNS["runs"]["cnn_numpy --layers textbook"]


def test_eval_train_every_evaluates_the_training_set_after_every_epoch(tmp_path, mnist_dir):
    record, result = quick_run("nn_numpy", tmp_path, "--epochs", "2", "--limit-train", "500", "--eval-train", "every")
    check_schema(record, "nn_numpy")
    assert record["config"]["eval_train"] == "every" and all("train_acc" in h for h in record["history"])
    assert "(batch means)" not in result.stdout
    default, result = quick_run("nn_numpy", tmp_path / "default", "--epochs", "2", "--limit-train", "500")
    assert "train_acc" not in default["history"][0] and "train_acc" in default["history"][1]
    assert result.stdout.count("(batch means)") == 1
    # the same training either way: only what is measured differs
    assert default["history"][1]["test_loss"] == record["history"][1]["test_loss"]
    assert default["final"] == record["final"]


def test_same_seed_gives_identical_results(trained, tmp_path):
    script, _, record, _ = trained
    again, _ = quick_run(script, tmp_path, *SMOKE[script][0])

    def without_timings(r):
        r = json.loads(json.dumps(r))
        r.pop("seconds_total")
        r.pop("finished_at")
        for entry in r["history"]:
            for key in TIMING_KEYS & set(entry):
                entry.pop(key)
        return r

    assert without_timings(again) == without_timings(record)


def test_another_seed_gives_another_run(trained, tmp_path):
    script, _, record, _ = trained
    other, _ = quick_run(script, tmp_path, *SMOKE[script][0], "--seed", "1")
    assert other["final"]["train_loss"] != record["final"]["train_loss"]


def test_eval_only_redraws_everything_from_the_checkpoint(trained):
    script, folder, record, _ = trained
    figures = folder / "figures" / script
    for name in FIGURES:
        (figures / name).unlink()
    again, result = quick_run(script, folder, *SMOKE[script][0], "--eval-only")
    for name in FIGURES:
        assert (figures / name).exists()
    assert again["final"] == pytest.approx(record["final"], rel=1e-6)
    assert again["history"] == record["history"] and again["config"]["eval_only"] is True
    assert again["eval_seconds"] > 0
    # provenance stays the training's (issue 27): when, how long and by which code, on which machine, exactly;
    # the evaluation beside
    assert (again["finished_at"], again["seconds_total"], again["code"], again["machine"]) == \
        (record["finished_at"], record["seconds_total"], record["code"], record["machine"])
    assert again["code"] is not None and again["evaluated_at"] >= again["finished_at"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_defaults_are_the_reports_and_help_shows_them(script):
    result = run_script(f"{script}.py", "--help")
    epochs, lr, batch_size = REPORT_DEFAULTS[script]
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag, value in (("--epochs", epochs), ("--lr", lr), ("--batch-size", batch_size)):
        assert f"(default: {value})" in text, flag


def test_every_script_sees_the_same_batches_for_the_same_seed(tmp_path, mnist_dir):
    """The shuffle has its own stream from --seed: architecture and framework do not change the data order.
    Seed 0 runs the default (--shuffle once: the original's one order, kept every epoch), seed 1 --shuffle epoch."""
    digests = {}
    shuffle = {0: [], 1: ["--shuffle", "epoch"]}
    for script in SCRIPTS:
        for seed in (0, 1):
            result = run_script(f"{script}.py", "--epochs", "2", "--limit-train", "300", "--batch-size", "50",
                                "--quiet", "--seed", seed, *shuffle[seed], "--out-dir", tmp_path / f"s{seed}",
                                "--checkpoint", tmp_path / "ck" / f"{script}{seed}")
            assert result.returncode == 0, result.stderr
            record = json.loads((tmp_path / f"s{seed}" / script / "metrics.json").read_text())
            assert record["config"]["shuffle"] == ("epoch" if seed else "once")
            digests[script, seed] = [entry["order_digest"] for entry in record["history"]]
    for seed in (0, 1):
        orders = {script: digests[script, seed] for script in SCRIPTS}
        assert len({tuple(d) for d in orders.values()}) == 1, orders
    assert len(set(digests["nn_numpy", 0])) == 1   # once: the same order both epochs
    assert len(set(digests["nn_numpy", 1])) == 2   # epoch: a fresh order each epoch
    assert digests["nn_numpy", 0][0] != digests["nn_numpy", 1][0]


def test_eval_only_records_what_it_evaluated(trained, tmp_path):
    """The training's config stays; the data flags of the evaluation are recorded beside it."""
    script, folder, record, _ = trained
    extra = ["--dtype", "float64"] if "numpy" in script else []
    result = run_script(f"{script}.py", "--eval-only", "--limit-train", "100", *extra, "--out-dir", tmp_path,
                        "--checkpoint", next((folder / "checkpoints").glob(f"{script}*")))
    assert result.returncode == 0, result.stderr
    assert "the checkpoint was trained with limit_train 2000" in result.stdout
    again = json.loads((tmp_path / script / "metrics.json").read_text())
    assert again["config"]["limit_train"] == 2000 and again["config"]["eval_only"] is True
    evaluated = again["config"]["evaluated_with"]
    assert evaluated["limit_train"] == 100
    assert evaluated["dtype"] == ("float64" if "numpy" in script else "float32")
    assert round(again["final"]["train_acc"] * 100, 9) == int(round(again["final"]["train_acc"] * 100))
    assert again["final"]["test_acc"] == pytest.approx(record["final"]["test_acc"], abs=2e-4)


def test_eval_only_without_data_flags_takes_the_checkpoints(trained, tmp_path):
    script, folder, record, _ = trained
    result = run_script(f"{script}.py", "--eval-only", "--out-dir", tmp_path,
                        "--checkpoint", next((folder / "checkpoints").glob(f"{script}*")))
    assert result.returncode == 0, result.stderr
    again = json.loads((tmp_path / script / "metrics.json").read_text())
    assert again["config"]["evaluated_with"]["limit_train"] == 2000
    assert again["final"] == pytest.approx(record["final"], rel=1e-6)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_recommends_a_quick_run_that_learns(script):
    """The --help example is the smoke setting the tests hold to their accuracy bar."""
    text = " ".join(run_script(f"{script}.py", "--help").stdout.split())
    flags = " ".join([*experiments.QUICK_BASE, *experiments.QUICK_FLAGS[script]])
    assert f"python {script}.py" in text
    parser = __import__(script).build_parser()
    example = text.split(f"python {script}.py ", 1)[1].split()
    recommended = vars(parser.parse_args(example))
    assert recommended == vars(parser.parse_args(flags.split()))


@pytest.mark.parametrize("script", ["nn_numpy"])  # the other three share common.cli (tests/test_common.py)
def test_the_quick_run_help_recommends_leaves_figures_and_checkpoints_alone(script, tmp_path, mnist_dir):
    """Issue 22: it wrote into figures/ and checkpoints/ (the committed reproduction's), and a later --eval-only
    then evaluated the quick run instead of the committed reference checkpoint."""
    text = run_script(f"{script}.py", "--help").stdout
    example = text.split(f"python {script}.py ", 1)[1].split()
    suffix = ".npz" if "numpy" in script else ".pt"
    result = run_script(ROOT / f"{script}.py", *example, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not the report's configuration (" in result.stdout and "outputs go under runs/" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert (tmp_path / "runs" / "checkpoints" / f"{script}{suffix}").is_file()
    record = json.loads((tmp_path / "runs" / script / "metrics.json").read_text(), parse_constant=refuse)
    assert record["config"]["limit_train"] == 2000
    result = run_script(ROOT / f"{script}.py", "--eval-only", "--quiet", "--no-figures", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"evaluating the committed reference checkpoint {ROOT / 'reference' / (script + suffix)}" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_committed_reference_checkpoints_work_right_after_a_clone(script, tmp_path, mnist_dir):
    """reference/ ships seed 0 of the committed reproduction: small (under 1.5 MB), and --eval-only without a
    checkpoints/ folder evaluates it and gets the committed figures' numbers back."""
    reference = ROOT / "reference" / (script + (".npz" if "numpy" in script else ".pt"))
    # the NumPy MLP's float64 weights (the original's arithmetic) and its 37,500 step losses: about 1.2 MB
    assert 0 < reference.stat().st_size < 1_500_000
    result = run_script(ROOT / f"{script}.py", "--eval-only", "--out-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"evaluating the committed reference checkpoint {reference}" in result.stdout
    again = json.loads((tmp_path / script / "metrics.json").read_text(), parse_constant=refuse)
    committed = json.loads((ROOT / "figures" / script / "metrics.json").read_text())
    assert again["final"] == pytest.approx(committed["final"], rel=1e-6)
    assert again["config"]["seed"] == 0 and again["history"] == committed["history"]
