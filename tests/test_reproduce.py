"""reproduce.py: the quick run end to end, the results table round trip, a failing model reported."""

import json

import pytest

import reproduce
from conftest import run_script


def fake_record(model, test_acc, seconds=10.0):
    final = {"train_loss": 0.01, "train_acc": 0.999, "test_loss": 0.07, "test_acc": test_acc}
    return {"model": model, "config": {"epochs": 5}, "final": final, "seconds_total": seconds,
            "history": [{"epoch": 1, "test_loss": 0.1}, {"epoch": 2, "test_loss": 0.07}]}


def test_results_table_round_trips():
    records = {"nn_numpy": [fake_record("nn_numpy", 0.9810), fake_record("nn_numpy", 0.9820)],
               "cnn_torch": [fake_record("cnn_torch", 0.9880), fake_record("cnn_torch", 0.9890)]}
    rows = reproduce.summary_rows(records)
    text = "# Results\n\nsome words\n\n" + reproduce.results_table(rows) + "\nmore words | not a table\n"
    assert reproduce.parse_results_table(text) == rows
    assert rows[0]["Test Acc (%)"] == "98.15 ± 0.07"
    assert rows[0]["Δ Test Acc (pp)"] == "+0.21"   # 98.15 - 97.94
    assert rows[1]["Report Test Acc (%)"] == "98.77"


def test_seed_noise_verdicts():
    records = {"cnn_numpy": [fake_record("cnn_numpy", a) for a in (0.985, 0.986, 0.987)],
               "nn_numpy": [fake_record("nn_numpy", a) for a in (0.979, 0.980, 0.981)],
               "nn_torch": [fake_record("nn_torch", a) for a in (0.975, 0.985, 0.980)]}
    text = reproduce.noise_section(records)
    assert "| CNN vs MLP, NumPy | +0.60 |" in text and "holds beyond seed noise" in text
    assert "| PyTorch vs NumPy, MLP | +0.00 |" in text and "not distinguishable from seed noise" in text


def test_no_noise_section_with_one_seed():
    assert reproduce.noise_section({"nn_numpy": [fake_record("nn_numpy", 0.98)]}) == ""


@pytest.fixture(scope="module")
def quick(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("quick")
    result = run_script("reproduce.py", "--quick", "--out-dir", out, timeout=900)
    return out, result


def test_quick_run_writes_every_file_consistently(quick):
    out, result = quick
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    rows = reproduce.parse_results_table((out / "results.md").read_text())
    assert [r["Model"].split()[0] for r in rows] == reproduce.MODELS
    for row in rows:
        model = row["Model"].split()[0]
        folder = out / model
        record = json.loads((folder / "metrics.json").read_text())
        assert row["Test Acc (%)"] == f"{100 * record['final']['test_acc']:.2f}"
        assert row["Train Loss"] == f"{record['final']['train_loss']:.4f}"
        assert row["epochs"] == "1" and record["config"]["limit_train"] == 2000
        for name in ("loss.png", "confusion_matrix.png", "top3.png", "mistakes.png", "train.log"):
            assert (folder / name).stat().st_size > 0, (model, name)
        assert "exit code 0" in (folder / "train.log").read_text()
    assert (out / "comparison.png").stat().st_size > 10000
    assert (out / "checkpoints" / "cnn_numpy.npz").exists()
    assert "[cnn_torch seed 0] epoch  1/1" in result.stdout and "total" in result.stdout


def test_quick_run_then_eval_only_redraws_from_checkpoints(quick):
    out, _ = quick
    (out / "comparison.png").unlink()
    result = run_script("reproduce.py", "--quick", "--eval-only", "--models", "nn_numpy,cnn_numpy",
                        "--out-dir", out)
    assert result.returncode == 0, result.stderr
    assert (out / "comparison.png").exists()
    assert len(reproduce.parse_results_table((out / "results.md").read_text())) == 2


def test_a_failing_model_is_reported_and_the_others_still_finish(quick, tmp_path):
    out, _ = quick
    # nn_torch has no checkpoint in this fresh checkpoint folder, so its --eval-only run fails.
    (tmp_path / "checkpoints").mkdir()
    for name in ("nn_numpy.npz", "cnn_numpy.npz"):
        (tmp_path / "checkpoints" / name).write_bytes((out / "checkpoints" / name).read_bytes())
    result = run_script("reproduce.py", "--quick", "--eval-only", "--models", "nn_numpy,nn_torch,cnn_numpy",
                        "--out-dir", tmp_path / "figs", "--checkpoint-dir", tmp_path / "checkpoints")
    assert result.returncode == 1
    assert "nn_torch seed 0 failed (exit code 2)" in result.stderr
    text = (tmp_path / "figs" / "results.md").read_text()
    assert [r["Model"].split()[0] for r in reproduce.parse_results_table(text)] == ["nn_numpy", "cnn_numpy"]
    assert "## Failed runs" in text and "no checkpoint at" in text


def test_unknown_model_is_a_usage_error():
    result = run_script("reproduce.py", "--models", "nn_numpy,resnet")
    assert result.returncode == 2 and "unknown model(s) resnet" in result.stderr
