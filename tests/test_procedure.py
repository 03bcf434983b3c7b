"""reproduction/procedure.py: the report's numbers against the seeds' prediction intervals, and the ablation of the
training procedure, on synthetic run records (no training)."""

import pytest

from reproduction.procedure import ABLATION, CELLS, ablation_section, report_against_seeds
from reproduction.report import REPORT


def records(test_accs, test_losses=None, seconds=1.0):
    """One record per seed: final test accuracy (%) and loss, one epoch of ``seconds``."""
    test_losses = test_losses or [0.08] * len(test_accs)
    return [{"config": {"seed": i}, "final": {"test_acc": acc / 100, "test_loss": loss},
             "history": [{"epoch": 1, "seconds": seconds}]}
            for i, (acc, loss) in enumerate(zip(test_accs, test_losses))]


def row(text, model, number):
    return next(line for line in text.splitlines() if line.startswith(f"| {model} (") and f"| {number} |" in line)


def test_a_report_number_inside_and_one_outside_the_prediction_interval():
    near = [97.90, 98.00, 97.95, 97.85, 98.05]       # mean 97.95, std 0.079: the report's 97.94 is inside
    far = [98.40, 98.50, 98.45, 98.35, 98.55]        # the report's 97.97 is 6.1 std below
    text = report_against_seeds({"nn_numpy": records(near), "nn_torch": records(far, [0.1024] * 5)})
    numpy_acc = row(text, "nn_numpy", "test accuracy (%)")
    assert "| 97.94 | 97.95 ± 0.08 (5) | [97.71, 98.19] | inside | -0.1 |" in numpy_acc
    torch_acc = row(text, "nn_torch", "test accuracy (%)")
    assert "**outside**" in torch_acc and "| -6.1 |" in torch_acc
    # a constant group has no spread: the z-score is undefined, never infinite
    assert "nan" in row(text, "nn_torch", "test loss")
    assert "cnn_numpy" not in text   # models without records are left out
    assert report_against_seeds({}) == ""


def test_one_seed_gives_no_interval():
    text = report_against_seeds({"cnn_torch": records([98.8])})
    assert "98.80 (1 seed) | — | — | — |" in row(text, "cnn_torch", "test accuracy (%)")


def test_the_ablation_gives_each_change_with_its_interval_and_says_which_exclude_zero():
    spread = (-0.1, -0.05, 0.0, 0.05, 0.1)  # std 0.079 pp, as the MLPs' seeds
    noise = lambda: spread  # noqa: E731
    groups = {"nn_numpy": records([97.80 + e for e in noise()], [0.104] * 5),
              "nn_numpy+epoch": records([97.98 + e for e in noise()]),
              "nn_numpy+pytorch-init": records([97.92 + e for e in noise()]),
              "nn_numpy+epoch+pytorch-init": records([98.22 + e for e in noise()]),
              "nn_numpy+earlier": records([98.21 + e for e in noise()], seconds=60),
              "cnn_torch": records([98.80 + e for e in noise()]), "cnn_torch+earlier": records([98.86 + e for e in noise()])}
    text = ablation_section(groups, seconds=600)
    assert text.startswith("## Why an earlier default beat the report")
    assert "10.0 minutes" in text
    lines = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| nn_numpy | ")}
    assert "**+0.1" in lines["new order every epoch − one order (N(0, 0.1²) init)"]          # excludes 0
    assert "**+0.4" in lines["the earlier default − today's (all three)"]
    assert "**" not in lines["float32 − float64 (every epoch, PyTorch init)"].split(" | ")[3]   # includes 0
    cells = [line for line in text.splitlines() if line.startswith("| `nn_numpy")]
    assert len(cells) == 5 and "| one order | N(0, 0.1²) | float64 | 5 |" in cells[0]
    assert "97.94: inside" in cells[0] and "97.94: **outside**" in cells[-1]
    # groups that were not run are left out, rows and cells alike
    named = {line.split(" | ")[0].lstrip("| ") for line in text.splitlines() if line.startswith("| ")}
    assert {"nn_torch", "cnn_numpy", "`nn_torch`", "`cnn_numpy`"}.isdisjoint(named) and "cnn_torch" in named


def test_no_ablation_groups_no_section():
    assert ablation_section({"nn_numpy": records([97.9, 98.0])}) == ""


def test_every_ablation_row_names_groups_the_reproduction_runs():
    from common import models
    from reproduction import experiments

    for _, _, changed, base in ABLATION:
        for group in (changed, base):
            assert group in experiments.FINDINGS_RUNS or group in models.MODELS
            assert group in CELLS
    for group, (order, init, arithmetic) in CELLS.items():
        flags = experiments.FINDINGS_RUNS[group][1] if "+" in group else []
        assert (order == "every epoch") == ("epoch" in flags)
        default = "float64" if group.split("+")[0] == "nn_numpy" else "float32"
        assert arithmetic == (flags[flags.index("--dtype") + 1] if "--dtype" in flags else default), group


@pytest.mark.parametrize("model", ["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"])
def test_the_reports_numbers_are_those_of_its_logs(model):
    assert set(REPORT[model]) >= {"test_acc", "test_loss"}
