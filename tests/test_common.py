"""common/: metrics against scikit-learn, top-3 and mistakes selection, figures, parser, atomic writes."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss

from common import metrics, plots
from common.cli import REFERENCE_DIR, make_parser, parse_args
from common.errors import UsageError, UserError
from common.io import atomic_path, check_writable, strict_json, write_json


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


def refuse(token):
    raise ValueError(f"not strict JSON: {token}")


def test_json_is_strict_non_finite_numbers_become_null_and_the_record_says_so(tmp_path):
    """Issue 22: a NaN test loss reached metrics.json as a bare NaN, which strict JSON parsers reject."""
    target = tmp_path / "metrics.json"
    write_json(target, {"final": {"test_loss": float("nan"), "test_acc": 0.098}, "history": [float("inf"), 1.5]})
    record = json.loads(target.read_text(), parse_constant=refuse)
    assert record["final"] == {"test_loss": None, "test_acc": 0.098} and record["history"] == [None, 1.5]
    assert record["non_finite_as_null"].startswith("2 NaN or infinite")
    assert json.loads(strict_json({"a": 1.0}), parse_constant=refuse) == {"a": 1.0}  # nothing added when finite


def test_a_folder_that_exists_but_takes_no_files_is_named_as_such(tmp_path):
    """Issue 22: `--checkpoint /proc/ck.npz` said "No such file or directory" about /proc, which exists."""
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(UsageError, match=r"^cannot write to --checkpoint /proc/ck.npz: the folder /proc exists but "
                                         r"does not accept new files or folders$"):
        check_writable("/proc", "--checkpoint", shown="/proc/ck.npz")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"file is a file, not a folder"):
        check_writable(tmp_path / "file" / "sub", "--out-dir")


# --- the report's configuration, and runs that are not ------------------------------------------------------

def demo_args(*flags, model="demo"):
    p = make_parser(model, "demo", epochs=5, lr=0.01, batch_size=16, checkpoint_suffix=".npz", optimizer="sgd",
                    init="pytorch")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None)
    return parse_args(p, list(flags))


@pytest.mark.parametrize("flags", [[], ["--dtype", "float32"], ["--limit-train", "60000"], ["--quiet"],
                                   ["--eval-train", "every"], ["--no-figures"]],
                         ids=["defaults", "dtype-float32", "all-images", "quiet", "eval-train", "no-figures"])
def test_the_reports_configuration_writes_figures_and_checkpoints(flags, capsys):
    args = demo_args(*flags)
    assert (args.out_dir, args.checkpoint) == ("figures", "checkpoints/demo.npz") and not args.scratch_note


@pytest.mark.parametrize("flags", [["--epochs", "1"], ["--limit-train", "2000"], ["--lr", "0.05"],
                                   ["--batch-size", "8"], ["--seed", "1"], ["--optimizer", "adam"],
                                   ["--momentum", "0.5"], ["--init", "xavier"], ["--permute-pixels", "0"],
                                   ["--dtype", "float64"]])
def test_any_other_data_or_training_flag_writes_under_runs(flags, capsys):
    """Issue 22: the quick run that --help recommends overwrote figures/<model>/ and checkpoints/."""
    args = demo_args(*flags)
    assert (args.out_dir, args.checkpoint) == ("runs", "runs/checkpoints/demo.npz")
    note = args.scratch_note  # said by Run, after any checkpoint was read
    assert f"not the report's configuration ({flags[0]} {flags[1]})" in note and "outputs go under runs/" in note


def test_explicit_out_dir_and_checkpoint_always_win(capsys):
    args = demo_args("--epochs", "1", "--out-dir", "mine", "--checkpoint", "ck/x.npz")
    assert (args.out_dir, args.checkpoint) == ("mine", "ck/x.npz") and not args.scratch_note
    args = demo_args("--out-dir", "mine")
    assert (args.out_dir, args.checkpoint) == ("mine", "checkpoints/demo.npz")


def test_the_default_momentum_of_the_model_is_its_reports():
    for momentum, out_dir in (("0.9", "figures"), ("0", "runs")):
        assert demo_args("--momentum", momentum, model="nn_torch").out_dir == out_dir


def test_eval_only_says_which_checkpoint_and_why(tmp_path, monkeypatch, capsys):
    """Issue 22: --eval-only quietly picked whatever checkpoints/ held; now it says which file and why."""
    monkeypatch.chdir(tmp_path)
    reference = REFERENCE_DIR / "nn_numpy.npz"
    args = demo_args("--eval-only", model="nn_numpy")
    assert args.checkpoint == str(reference) and args.out_dir == "figures"
    assert f"no checkpoints/nn_numpy.npz; evaluating the committed reference checkpoint {reference}" in \
        capsys.readouterr().out
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "nn_numpy.npz").write_bytes(b"x")
    args = demo_args("--eval-only", model="nn_numpy")
    assert args.checkpoint == "checkpoints/nn_numpy.npz" and args.out_dir == "figures"
    assert "evaluating checkpoints/nn_numpy.npz (the default" in capsys.readouterr().out
    (tmp_path / "mine.npz").write_bytes(b"x")
    args = demo_args("--eval-only", "--checkpoint", "mine.npz", model="nn_numpy")
    assert args.checkpoint == "mine.npz" and args.out_dir == "runs"  # not the report's weights: not figures/
    assert "evaluating mine.npz (given by --checkpoint)" in capsys.readouterr().out
    args = demo_args("--eval-only", "--checkpoint", str(reference), model="nn_numpy")
    assert args.out_dir == "figures"
    assert demo_args("--eval-only", "--limit-train", "100", model="nn_numpy").out_dir == "runs"
    assert demo_args("--eval-only", "--epochs", "3", model="nn_numpy").out_dir == "figures"  # no training


def test_eval_only_given_a_folder_or_nothing_says_what_to_give(tmp_path, monkeypatch):
    """Issue 22: `--eval-only --checkpoint DIR` said "no checkpoint at DIR; ... or pass --checkpoint"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck").mkdir()
    with pytest.raises(UsageError, match=r"^--checkpoint ck is a folder; give the path of a checkpoint file$"):
        demo_args("--eval-only", "--checkpoint", "ck", model="nn_numpy")
    (tmp_path / "ck" / "nn_numpy.npz").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"is a folder; .*\(here: --checkpoint ck/nn_numpy.npz\)$"):
        demo_args("--eval-only", "--checkpoint", "ck", model="nn_numpy")
    with pytest.raises(UsageError, match=r"^no checkpoint at gone.npz \(given by --checkpoint\); check the path"):
        demo_args("--eval-only", "--checkpoint", "gone.npz", model="nn_numpy")
    with pytest.raises(UsageError, match=r"^no checkpoint at checkpoints/demo.npz and no committed .*; train first "
                                         r"\(python demo.py\)"):
        demo_args("--eval-only")


# --- checkpoints: what a file is, and what reads it ----------------------------------------------------------

def test_a_file_is_identified_without_being_loaded(tmp_path):
    from common.checkpoint import identify

    assert identify(REFERENCE_DIR / "cnn_numpy.npz") == ("npz", "cnn_numpy")
    assert identify(REFERENCE_DIR / "nn_torch.pt") == ("torch", "nn_torch")
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04N.")
    (tmp_path / "cut.npz").write_bytes((REFERENCE_DIR / "nn_numpy.npz").read_bytes()[:1000])
    assert identify(tmp_path / "x.pkl") == ("pickle", None)
    assert identify(tmp_path / "cut.npz") == (None, None) and identify(tmp_path / "none") == (None, None)


def test_non_finite_weights_are_refused_naming_the_array(tmp_path):
    from common.checkpoint import check_finite, load_npz, save_npz

    state, record, losses = load_npz(REFERENCE_DIR / "nn_numpy.npz", "nn_numpy")
    state["5.b"] = state["5.b"].copy()
    state["5.b"][[2, 7]] = [np.nan, -np.inf]
    save_npz(tmp_path / "bad.npz", state, record, losses)
    with pytest.raises(UserError, match=r"bad.npz: 5.b holds 2 non-finite value\(s\) \(NaN or infinity\) among "
                                        r"its 10; these weights cannot be evaluated"):
        load_npz(tmp_path / "bad.npz", "nn_numpy")
    check_finite({"counts": np.array([1, 2])}, "x")  # integers are always finite


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


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_dropped_inside_a_finalizer_still_stops_the_run(tmp_path, capfd, signum):
    """Python drops a KeyboardInterrupt raised in a __del__ ("Exception ignored"): CI once lost a Ctrl-C that came
    while tqdm's finalizer ran between two epochs, and the run went on. The next step must raise it again; and
    Python's report of the dropped one (a traceback, which another CI run printed before the one-line error)
    must not reach the terminal. Another finalizer's error still does."""
    import gc
    import signal

    from common.run import Interrupted

    number = getattr(signal, signum)
    default = signal.default_int_handler if signum == "SIGINT" else signal.SIG_DFL

    class Finalized:
        def __del__(self):
            signal.raise_signal(number)   # the handler runs here, inside the finalizer

    class Broken:
        def __del__(self):
            raise ValueError("a finalizer's own error")

    run, _, saved = finished_run(tmp_path)
    run.epochs_total = 100
    previous = signal.signal(number, default)
    hook = sys.unraisablehook
    reported = []
    sys.unraisablehook = reported.append
    try:
        what = "interrupted" if signum == "SIGINT" else r"terminated \(SIGTERM\)"
        with pytest.raises(Interrupted, match=rf"{what} during epoch 2; epoch 1's results are in"):
            with run:
                with run.progress(2, steps=10) as progress:
                    progress.step(0.5, 3, 4)
                    Finalized()
                    gc.collect()
                    Broken()
                    gc.collect()
                    progress.step(0.5, 3, 4)   # the dropped signal is raised here
                    pytest.fail("the run went on after the signal")
        assert signal.getsignal(number) is default   # the run's handler is gone
        assert sys.unraisablehook == reported.append   # and its hook
    finally:
        signal.signal(number, previous)
        sys.unraisablehook = hook
    assert [r.exc_type for r in reported] == [ValueError]   # the signal's report left out, the other kept
    assert "Traceback" not in capfd.readouterr().err
    assert [path.name for path in saved] == ["m.interrupted.npz"]


def test_ignored_ctrl_c_stays_ignored_during_a_run(tmp_path):
    """A background job's SIGINT is SIG_IGN; a Run must not turn it back on."""
    import signal

    run, _, _ = finished_run(tmp_path)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with run:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


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


def test_one_blas_thread_sets_one_inside_and_restores_the_count_after():
    from threadpoolctl import threadpool_info, threadpool_limits

    from common.harness_numpy import one_blas_thread

    counts = lambda: {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}  # noqa: E731
    with threadpool_limits(2, user_api="blas"):
        with one_blas_thread():
            assert counts() == {1}
        assert counts() == {2}


# --- the procedure: data order (--shuffle), SIGTERM ---------------------------------------------------------

def test_shuffle_once_keeps_the_first_order_and_epoch_draws_a_new_one_each_time():
    """The original's loader shuffled once; --shuffle epoch is the usual practice. Both start from one order."""
    from common.cli import DataOrder

    once, every = DataOrder(np.random.default_rng(3), 50, "once"), DataOrder(np.random.default_rng(3), 50, "epoch")
    first_once, digest_once = once()
    first_every, digest_every = every()
    np.testing.assert_array_equal(first_once, first_every)
    assert digest_once == digest_every and sorted(first_once) == list(range(50))
    for _ in range(3):
        order, digest = once()
        np.testing.assert_array_equal(order, first_once)
        assert digest == digest_once
    later = [every() for _ in range(3)]
    assert len({digest_every, *(digest for _, digest in later)}) == 4
    with pytest.raises(ValueError, match="unknown shuffle"):
        DataOrder(np.random.default_rng(0), 5, "never")


def test_shuffle_is_a_training_flag_whose_default_is_the_originals(capsys):
    assert demo_args().shuffle == "once"
    args = demo_args("--shuffle", "epoch")
    assert args.out_dir == "runs" and "--shuffle epoch" in args.scratch_note


def test_sigterm_keeps_the_last_complete_epoch_like_ctrl_c_and_exits_143(tmp_path):
    """SIGTERM (timeout, kill, a batch scheduler) used to end a run silently with nothing kept."""
    import signal

    from common.run import Interrupted, Terminated

    run, _, saved = finished_run(tmp_path)
    run.epochs_total = 100
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated, match=r"terminated \(SIGTERM\) during epoch 2; epoch 1's results are in") as e:
        with run:
            with run.progress(2, steps=10) as progress:
                progress.step(0.5, 3, 4)
                signal.raise_signal(signal.SIGTERM)
                pytest.fail("the run went on after SIGTERM")
    assert isinstance(e.value, Interrupted) and e.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is previous   # the run's handler is gone
    assert [path.name for path in saved] == ["m.interrupted.npz"]
    assert (tmp_path / "figures" / "nn_numpy" / "metrics.interrupted.json").is_file()


def test_an_interrupted_record_in_figures_is_ignored_by_git():
    import subprocess

    root = Path(__file__).resolve().parent.parent
    ignored = subprocess.run(["git", "check-ignore", "-q", "figures/nn_numpy/metrics.interrupted.json"], cwd=root)
    assert ignored.returncode == 0
