"""common/: metrics against scikit-learn, top-3 and mistakes selection, figures, parser, atomic writes."""

import argparse
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss

from common import metrics, plots
from common.cli import make_parser
from common.io import atomic_path, write_json


# --- metrics -----------------------------------------------------------------------------------------------

def test_loss_accuracy_and_confusion_counts_match_scikit_learn():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((500, 10)) * 4
    labels = rng.integers(0, 10, 500)
    predictions = logits.argmax(axis=1)
    assert metrics.accuracy(logits, labels) == pytest.approx(accuracy_score(labels, predictions))
    assert metrics.cross_entropy(logits, labels) == pytest.approx(
        log_loss(labels, metrics.softmax(logits), labels=np.arange(10)), rel=1e-9)
    np.testing.assert_array_equal(metrics.confusion_counts(labels, predictions),
                                  confusion_matrix(labels, predictions, labels=np.arange(10)))


def test_confusion_counts_are_10x10_even_when_classes_are_missing():
    counts = metrics.confusion_counts(np.array([1, 1, 2]), np.array([1, 2, 2]))
    assert counts.shape == (10, 10) and counts.sum() == 3 and counts[1, 2] == 1


def test_complement_is_exact_where_one_minus_p_rounds_to_zero():
    logits = np.array([[40.0, 0.0, 0.0], [60.0, 1.0, 0.0]])
    complement, margin = metrics.complement_and_margin(logits, np.array([0, 0]))
    assert 1 - metrics.softmax(logits)[0, 0] == 0.0  # what a naive 1 - p gives
    assert complement[0] == pytest.approx(2 * np.exp(-40.0), rel=1e-12)
    assert margin.tolist() == [40.0, 59.0]


def test_top3_picks_the_most_confident_images_of_each_class_and_breaks_ties_deterministically():
    logits = np.zeros((8, 10))
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 3])
    logits[0, 0], logits[1, 0], logits[2, 0], logits[3, 0] = 5, 9, 100, 100  # 2 and 3 tie at p = 1.0
    logits[3, 4] = 1  # ... but 3 has the smaller margin (99 vs 100)
    logits[4, 1], logits[5, 1], logits[6, 1] = 7, 7, 7  # exact tie: lower index first
    top = metrics.top_k_per_class(logits, labels, k=3)
    assert top[0].tolist() == [2, 3, 1]
    assert top[1].tolist() == [4, 5, 6]
    assert top[3].tolist() == [7, -1, -1]  # fewer than three images of that class
    assert top[2].tolist() == [-1, -1, -1]


def test_most_confident_mistakes_are_wrong_and_ordered_by_confidence():
    labels = np.array([0, 1, 2, 3, 4])
    logits = np.zeros((5, 10))
    logits[0, 0] = 10          # right
    logits[1, 7] = 3           # wrong, p moderate
    logits[2, 5] = 12          # wrong, most confident
    logits[3, 3] = 4           # right
    logits[4, 9] = 6           # wrong
    assert metrics.most_confident_mistakes(logits, labels, n=2).tolist() == [2, 4]
    assert metrics.most_confident_mistakes(logits, labels).tolist() == [2, 4, 1]


@pytest.mark.parametrize("complement, text", [(0.0123, "98.77%"), (3.71e-6, "99.999629%"),
                                              (3.7e-6, "99.999630%"), (1e-4, "99.9900%"),
                                              (3.7e-14, "100% − 3.7e-12%"), (0.5, "50.00%")])
def test_probabilities_are_shown_with_enough_digits_to_tell_them_apart(complement, text):
    assert metrics.format_probability(complement) == text


# --- figures -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_outputs():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 8)
    logits = rng.standard_normal((80, 10)) * 3
    logits[np.arange(80), labels] += 6
    images = rng.random((80, 28, 28)).astype(np.float32)
    history = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e} for e in (1, 2, 3)]
    return logits, labels, images, history, list(np.linspace(2, 0.1, 60))


def draw_all(folder, outputs):
    logits, labels, images, history, iteration_losses = outputs
    plots.plot_loss(folder / "loss.png", "test", history, iteration_losses)
    plots.plot_confusion_matrix(folder / "confusion_matrix.png", "test",
                                metrics.confusion_counts(labels, logits.argmax(1)))
    plots.plot_top3(folder / "top3.png", "test", logits, labels, images)
    plots.plot_mistakes(folder / "mistakes.png", "test", logits, labels, images)


def test_each_figure_is_a_png_and_the_same_inputs_give_the_same_bytes(tmp_path, fake_outputs):
    draw_all(tmp_path / "a", fake_outputs)
    draw_all(tmp_path / "b", fake_outputs)
    for name in ("loss.png", "confusion_matrix.png", "top3.png", "mistakes.png"):
        first = (tmp_path / "a" / name).read_bytes()
        assert first.startswith(b"\x89PNG\r\n\x1a\n") and len(first) > 5000, name
        assert first == (tmp_path / "b" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["loss.png", "confusion_matrix.png", "top3.png", "mistakes.png"])  # no temp files left


def test_figure_sizes_are_legible(tmp_path, fake_outputs):
    import matplotlib.image

    draw_all(tmp_path, fake_outputs)
    height, width = matplotlib.image.imread(tmp_path / "top3.png").shape[:2]
    assert height > 2.5 * width and width >= 400  # 10 rows x 3 columns
    height, width = matplotlib.image.imread(tmp_path / "confusion_matrix.png").shape[:2]
    assert min(height, width) >= 600


def test_smoothing_keeps_length_and_averages():
    np.testing.assert_allclose(plots.smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])


# --- command line ------------------------------------------------------------------------------------------

def parser():
    return make_parser("demo", "demo", epochs=5, lr=0.01, batch_size=16, checkpoint_suffix=".npz",
                       optimizer="sgd", init="pytorch")


def test_parser_defaults_are_the_given_report_defaults():
    from common.cli import parse_args
    args = parse_args(parser(), [])
    assert (args.epochs, args.lr, args.batch_size, args.seed) == (5, 0.01, 16, 0)
    assert args.out_dir == "figures" and args.checkpoint == "checkpoints/demo.npz"
    assert args.limit_train is None and not args.eval_only and not args.quiet


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "(default: 5)" in text and "(default: 0.01)" in text and "(default: 16)" in text


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "must be greater than 0"), (["--epochs", "-3"], "must be greater than 0"),
    (["--epochs", "two"], "expected a whole number"), (["--lr", "0"], "must be a finite number greater than 0"),
    (["--lr", "nan"], "finite number"), (["--lr", "fast"], "expected a number"),
    (["--batch-size", "0"], "greater than 0"), (["--limit-train", "60001"], "has 60000 images"),
    (["--limit-train", "0"], "greater than 0"), (["--bogus"], "unrecognized arguments")])
def test_invalid_values_are_one_line_argparse_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# --- atomic writes -----------------------------------------------------------------------------------------

def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"good": True})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"good": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_argparse_type_errors_are_argparse_errors():
    from common.cli import positive_float
    with pytest.raises(argparse.ArgumentTypeError):
        positive_float("inf")


def finished_run(tmp_path, **overrides):
    """A Run that has trained one (fake) epoch, ready for finish(); its outputs go under tmp_path."""
    from common.run import Run

    args = argparse.Namespace(epochs=1, quiet=True, out_dir=str(tmp_path / "figures"),
                              checkpoint=str(tmp_path / "ck" / "m.npz"), eval_only=False)
    saved = []
    run = Run("nn_numpy", "numpy", {"lr": 0.1}, args,
              lambda path, state, record, losses: (saved.append(path), path.write_bytes(b"weights")))
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 10)), np.arange(50) % 10
    run.history = [{"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.6, "test_acc": 0.7}]
    run.iteration_losses, run.state, run.last = [0.9, 0.7], {}, (logits, labels)
    return run, rng.random((50, 28, 28)), saved


def test_outputs_switch_over_as_one_set_even_when_interrupted_while_written(tmp_path, monkeypatch):
    """Ctrl-C while the figures are drawn leaves every earlier output as it was, and no temp file."""
    run, images, _ = finished_run(tmp_path)
    run.finish(images)
    folder = tmp_path / "figures" / "nn_numpy"
    before = {p: p.read_bytes() for p in [*folder.iterdir(), tmp_path / "ck" / "m.npz"]}
    assert {p.name for p in before} == {"loss.png", "confusion_matrix.png", "top3.png", "mistakes.png",
                                        "metrics.json", "m.npz"}

    run, images, _ = finished_run(tmp_path)
    run.history[0]["test_acc"] = 0.1   # a different run: every file would change
    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(plots, "plot_mistakes", interrupted)   # the fourth of five files
    with pytest.raises(KeyboardInterrupt):
        run.finish(images)
    after = {p: p.read_bytes() for p in [*folder.iterdir(), tmp_path / "ck" / "m.npz"]}
    assert after == before
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_ctrl_c_during_the_switch_itself_completes_the_set(tmp_path, monkeypatch):
    import os
    import signal

    from common import io

    replace = os.replace
    def replace_after_ctrl_c(*args):
        os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C between two renames: held back until both are done
        replace(*args)
    monkeypatch.setattr(io.os, "replace", replace_after_ctrl_c)
    with io.OutputSet() as outputs:
        for name in ("a.txt", "b.txt"):
            outputs.path(tmp_path / name).write_text("new")
    assert outputs.interrupted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
