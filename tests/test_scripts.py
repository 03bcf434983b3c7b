"""The four scripts driven through their command lines, as a user runs them (quick runs on 2,000 images)."""

import json

import pytest

import reproduce
from conftest import run_script

SCRIPTS = ["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"]
REPORT_DEFAULTS = {"nn_numpy": (20, 0.1, 32), "nn_torch": (20, 0.01, 32), "cnn_numpy": (5, 0.01, 16),
                   "cnn_torch": (10, 0.001, 32)}
FIGURES = ["loss.png", "confusion_matrix.png", "top3.png", "mistakes.png"]
QUICK = [*reproduce.QUICK_BASE, "--quiet"]
# Smoke settings shared with `reproduce.py --quick` (see there why they differ from the report's). The MLPs
# top out near 80-85% after one epoch on 2,000 images under every SGD setting we tried, hence their bar.
SMOKE = {script: (reproduce.QUICK_FLAGS[script], 0.75 if script.startswith("nn") else 0.85) for script in SCRIPTS}
TIMING_KEYS = {"seconds", "seconds_with_eval", "seconds_total"}


def quick_run(script, folder, *extra):
    result = run_script(f"{script}.py", *QUICK, "--out-dir", folder / "figures",
                        "--checkpoint", folder / "checkpoints" / script, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "figures" / script / "metrics.json").read_text()), result


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
    for entry in record["history"]:
        assert set(entry) >= {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                              "train_loss_running", "train_acc_running"}
        assert 0 <= entry["train_acc"] <= 1 and 0 <= entry["test_acc"] <= 1 and entry["test_loss"] > 0
    counts = record["confusion_matrix"]
    assert len(counts) == 10 and all(len(row) == 10 for row in counts)
    assert sum(map(sum, counts)) == 10000
    assert sum(counts[i][i] for i in range(10)) / 10000 == pytest.approx(record["final"]["test_acc"])


def test_one_epoch_on_2000_images_learns_and_writes_every_output(trained):
    script, folder, record, result = trained
    check_schema(record, script)
    assert record["final"]["test_acc"] > SMOKE[script][1]
    assert record["final"] == {k: record["history"][-1][k] for k in record["final"]}
    for name in FIGURES:
        assert (folder / "figures" / script / name).stat().st_size > 5000
    suffix = ".npz" if "numpy" in script else ".pt"
    assert (folder / "checkpoints" / script).exists() or (folder / "checkpoints" / (script + suffix)).exists()
    assert "epoch  1/1" in result.stdout and "test accuracy" in result.stdout


def test_same_seed_gives_identical_results(trained, tmp_path):
    script, _, record, _ = trained
    again, _ = quick_run(script, tmp_path, *SMOKE[script][0])

    def without_timings(r):
        r = json.loads(json.dumps(r))
        r.pop("seconds_total")
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
    assert again["seconds_total"] <= record["seconds_total"] and again["eval_seconds"] > 0


@pytest.mark.parametrize("script", SCRIPTS)
def test_defaults_are_the_reports_and_help_shows_them(script):
    result = run_script(f"{script}.py", "--help")
    epochs, lr, batch_size = REPORT_DEFAULTS[script]
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag, value in (("--epochs", epochs), ("--lr", lr), ("--batch-size", batch_size)):
        assert f"(default: {value})" in text, flag
