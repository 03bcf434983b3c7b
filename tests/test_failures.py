"""Everything a user can get wrong, driven through the real scripts: one clear line on stderr, the right exit
code (2 for the command line, 1 otherwise, 130 for Ctrl-C), no traceback, and no good output lost."""

import argparse
import gzip
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, Server, run_script, write_idx, write_tiny_split
from test_original import CreatesFile, fake_arrays

QUICK = ["--epochs", "1", "--limit-train", "500", "--quiet"]
NO_DATA_ENV = {"MNIST_DIR": None, "MNIST_MIRROR": "http://127.0.0.1:9/mnist/", "MNIST_TIMEOUT": "5"}


def interruptible():
    """Popen's preexec_fn: a shell that starts us in the background makes its children ignore SIGINT, and
    Python then never raises KeyboardInterrupt; the child must get SIGINT's default back, as in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def expect_error(result, code, pattern):
    """Exit ``code``, exactly one line on stderr matching ``pattern``, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def run_in(folder, script, *args, env=None):
    """Run a script from ``folder`` (so ./data is that folder's), with no MNIST_DIR unless given."""
    return run_script(ROOT / f"{script}.py", *args, cwd=folder, env={**NO_DATA_ENV, **(env or {})})


def real_train_tiny_test(folder, mnist_dir):
    """The real training files beside a tiny, well-formed test split (whose checksums cannot match)."""
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).symlink_to(mnist_dir / name)
    write_tiny_split(folder, "test")
    return folder


# --- data ------------------------------------------------------------------------------------------------------

def test_missing_files_offline(tmp_path):
    expect_error(run_in(tmp_path, "nn_numpy", *QUICK), 1,
                 r"^nn_numpy.py: error: could not download .*train-images-idx3-ubyte.gz .*offline, put the four "
                 r"MNIST files in data or set MNIST_DIR")
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("corrupt, pattern", [
    (lambda d: write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28)), magic=2049), "wrong IDX magic"),
    (lambda d: (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(
        gzip.decompress((d / "t10k-images-idx3-ubyte.gz").read_bytes())[:-7])), "payload has .* bytes"),
    (lambda d: (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"plain text"), "is not a gzip file"),
    (lambda d: write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(3)), "holds 5 images but .* holds 3 labels"),
    (lambda d: write_idx(d / "t10k-labels-idx1-ubyte.gz", [0, 1, 2, 3, 11]), "label 11 out of range"),
    (lambda d: None, "checksum mismatch .*delete it and run again"),
], ids=["wrong-magic", "truncated", "not-gzip", "count-mismatch", "label-range", "checksum"])
def test_bad_data_files(tmp_path, mnist_dir, corrupt, pattern):
    data = real_train_tiny_test(tmp_path / "mnist", mnist_dir)
    corrupt(data)
    expect_error(run_in(tmp_path, "nn_numpy", *QUICK, "--data-dir", data), 1, pattern)


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    expect_error(run_in(tmp_path, "cnn_numpy", *QUICK, "--data-dir", tmp_path / "file"), 1,
                 r"--data-dir .*file is not a folder")


def test_mnist_dir_pointing_to_nothing(tmp_path):
    expect_error(run_in(tmp_path, "nn_numpy", *QUICK, env={"MNIST_DIR": str(tmp_path / "gone")}), 1,
                 r"MNIST_DIR=.*gone is not a folder")


# --- downloads -------------------------------------------------------------------------------------------------

@pytest.fixture
def mirror(mnist_dir):
    server = Server({p.name: p.read_bytes() for p in mnist_dir.glob("*-ubyte.gz")})
    yield server
    server.close()


@pytest.mark.parametrize("behaviour, pattern", [("404", r"HTTP 404"), ("drop", r"could not download|broke off"),
                                                ("stall", r"no data for 1 s")])
def test_download_failures_leave_nothing_behind(tmp_path, mirror, behaviour, pattern):
    mirror.behaviour["train-images-idx3-ubyte.gz"] = behaviour
    result = run_in(tmp_path, "nn_numpy", *QUICK, env={"MNIST_MIRROR": mirror.url, "MNIST_TIMEOUT": "1"})
    expect_error(result, 1, pattern)
    assert list((tmp_path / "data").iterdir()) == []


def test_interrupt_during_download_leaves_no_partial_file(tmp_path, mirror):
    mirror.behaviour["train-images-idx3-ubyte.gz"] = "stall"
    env = {**os.environ, **{k: v for k, v in NO_DATA_ENV.items() if v}, "MNIST_MIRROR": mirror.url,
           "MNIST_TIMEOUT": "30"}
    env.pop("MNIST_DIR", None)
    child = subprocess.Popen([sys.executable, ROOT / "nn_numpy.py", *QUICK], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.time() + 30
    while not list((tmp_path / "data").glob(".train-images*.part")) and time.time() < deadline:
        time.sleep(0.05)
    assert list((tmp_path / "data").glob(".train-images*.part")), "the download never started"
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=10)
    assert child.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert list((tmp_path / "data").iterdir()) == []


# --- command line -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"])
@pytest.mark.parametrize("flags, pattern", [
    (["--epochs", "0"], r"argument --epochs: must be greater than 0"),
    (["--batch-size", "-4"], r"argument --batch-size: must be greater than 0"),
    (["--lr", "0"], r"argument --lr: must be a finite number greater than 0"),
    (["--lr", "abc"], r"argument --lr: expected a number, got 'abc'"),
    (["--limit-train", "70000"], r"argument --limit-train: the training set has 60000 images"),
    (["--seed", "-1"], r"argument --seed: must be a whole number from 0 to 2\*\*64 - 1, got -1"),
    (["--seed", str(2**64)], r"argument --seed: must be a whole number from 0 to 2\*\*64 - 1, got 18446744073709551616"),
    (["--permute-pixels", "-3"], r"argument --permute-pixels: must be a whole number from 0"),
    (["--momentum", "1.5"], r"argument --momentum: must be below 1, got 1.5"),
    (["--optimizer", "adam", "--momentum", "0.9"], r"--momentum applies to --optimizer sgd only"),
    (["--init", "he"], r"argument --init: invalid choice: 'he'"),
], ids=["epochs", "batch-size", "lr", "not-a-number", "limit-train", "negative-seed", "huge-seed",
        "negative-permutation-seed", "momentum-1.5", "momentum-with-adam", "unknown-init"])
def test_bad_flags(script, flags, pattern):
    expect_error(run_script(f"{script}.py", *flags), 2, rf"^{script}.py: error: {pattern}")


@pytest.mark.parametrize("script", ["nn_torch", "cnn_torch"])
@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_absent_device(script, device):
    torch = pytest.importorskip("torch")
    if (device == "cuda" and torch.cuda.is_available()) or (device == "mps" and torch.backends.mps.is_available()):
        pytest.skip(f"this machine has {device}")
    expect_error(run_script(f"{script}.py", "--device", device), 2,
                 rf"--device {device}: no {device.upper()} device is available")


@pytest.mark.parametrize("script", ["nn_numpy", "cnn_torch"])
def test_out_dir_that_is_a_file(tmp_path, mnist_dir, script):
    (tmp_path / "taken").write_text("x")
    expect_error(run_script(f"{script}.py", *QUICK, "--out-dir", tmp_path / "taken"), 2,
                 r"--out-dir .*taken is a file, not a folder")


def test_out_dir_not_writable(mnist_dir):
    expect_error(run_script("nn_numpy.py", *QUICK, "--out-dir", "/proc/kit-figures"), 2,
                 r"cannot write to --out-dir /proc/kit-figures")


@pytest.mark.parametrize("script", ["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"])
def test_eval_only_without_checkpoint(tmp_path, mnist_dir, script):
    expect_error(run_script(f"{script}.py", "--eval-only", "--out-dir", tmp_path,
                            "--checkpoint", tmp_path / "none"), 2,
                 r"no checkpoint at .*none \(given by --checkpoint\); check the path, or train first")


def test_eval_only_given_a_folder_says_to_give_a_file_in_it(tmp_path):
    """Issue 22: it said "no checkpoint at DIR; train first ... or pass --checkpoint" (the user had)."""
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "nn_numpy.npz").write_bytes((ROOT / "reference" / "nn_numpy.npz").read_bytes())
    expect_error(run_script("nn_numpy.py", "--eval-only", "--out-dir", tmp_path, "--checkpoint", tmp_path / "ck"),
                 2, r"--checkpoint .*ck is a folder; give the path of a checkpoint file \(here: --checkpoint "
                    r".*ck/nn_numpy.npz\)$")


def test_a_checkpoint_in_a_folder_that_takes_no_files_is_named_before_training(mnist_dir):
    """Issue 22: `--checkpoint /proc/ck.npz` said "No such file or directory" about /proc, which exists. (The
    outputs are checked once the data is loaded: without MNIST the data's error comes first.)"""
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    line = expect_error(run_script("nn_numpy.py", *QUICK, "--checkpoint", "/proc/ck.npz", "--out-dir", "/tmp"), 2,
                        r"cannot write to --checkpoint /proc/ck.npz: the folder /proc exists but does not accept "
                        r"new files")
    assert "No such file" not in line


# --- training ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_runs(tmp_path_factory, mnist_dir):
    """A finished quick run of each script: its outputs must survive every later failure."""
    folder = tmp_path_factory.mktemp("good")
    for script in ("nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"):
        result = run_script(f"{script}.py", *QUICK, "--out-dir", folder / "figures",
                            "--checkpoint", folder / "checkpoints" / script)
        assert result.returncode == 0, result.stderr
    return folder


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("script, lr", [("nn_numpy", "1e30"), ("nn_torch", "1e4"), ("cnn_numpy", "1e10"),
                                        ("cnn_torch", "1e30")])  # nn_numpy: float64 stays finite at 1e4
def test_diverging_loss_stops_at_once_and_keeps_earlier_outputs(good_runs, script, lr):
    before = snapshot(good_runs)
    result = run_script(f"{script}.py", *QUICK, "--lr", lr, "--out-dir", good_runs / "figures",
                        "--checkpoint", good_runs / "checkpoints" / script)
    expect_error(result, 1, rf"training loss became (nan|inf) at epoch 1, step \d+; the learning rate "
                            rf"\(--lr {re.escape(f'{float(lr):g}')}\) is too high")
    assert snapshot(good_runs) == before


@pytest.mark.parametrize("script, lr", [("nn_numpy", "5"), ("cnn_torch", "1")])
def test_a_run_that_ends_no_better_than_chance_says_so_naming_the_learning_rate(tmp_path, mnist_dir, script, lr):
    """A finite loss above ln 10 (the weights blown up without reaching inf) finishes, with one warning line."""
    result = run_script(f"{script}.py", *QUICK, "--lr", lr, "--out-dir", tmp_path / "figures",
                        "--checkpoint", tmp_path / "checkpoints" / script)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the training loss ended at "), result.stderr
    assert f"no better than chance (ln 10 = 2.30): the learning rate (--lr {lr}) is probably too high" in lines[0]
    good = run_script(f"{script}.py", *QUICK, "--out-dir", tmp_path / "good", "--checkpoint", tmp_path / "ck")
    assert good.returncode == 0 and "warning" not in good.stderr


@pytest.mark.parametrize("script, how", [("nn_numpy", signal.SIGINT), ("cnn_numpy", signal.SIGINT),
                                         ("cnn_torch", signal.SIGINT), ("nn_numpy", signal.SIGTERM),
                                         ("cnn_numpy", signal.SIGTERM)])  # cnn_numpy: with its worker process
def test_ctrl_c_or_sigterm_keeps_the_last_complete_epoch_beside_the_good_outputs(good_runs, script, how, tmp_path):
    """SIGTERM (timeout, kill, a batch scheduler) is handled as Ctrl-C, exit 143 instead of 130 (issue 27)."""
    before = snapshot(good_runs)
    child = subprocess.Popen([sys.executable, ROOT / f"{script}.py", "--epochs", "100", "--limit-train", "1000",
                              "--quiet", "--out-dir", good_runs / "figures",
                              "--checkpoint", good_runs / "checkpoints" / script],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=interruptible)
    line = child.stdout.readline()
    assert line.startswith(f"{script}: training with "), line + child.stderr.read()   # which code trains
    line = child.stdout.readline()
    assert line.startswith("epoch  1/100"), line + child.stderr.read()
    child.send_signal(how)
    sent = time.time()
    _, stderr = child.communicate(timeout=30)
    assert time.time() - sent < 5
    assert child.returncode == (130 if how == signal.SIGINT else 143), stderr
    what = "interrupted" if how == signal.SIGINT else r"terminated \(SIGTERM\)"
    assert "Traceback" not in stderr and re.search(rf"{what} during epoch \d+; epoch \d+'s results are in", stderr)
    record_path = good_runs / "figures" / script / "metrics.interrupted.json"
    record = json.loads(record_path.read_text())
    assert record["interrupted"] is True and record["history"][-1]["epoch"] >= 1
    suffix = ".npz" if "numpy" in script else ".pt"
    kept = good_runs / "checkpoints" / f"{script}.interrupted"
    assert kept.exists() or kept.with_suffix(".interrupted" + suffix).exists()
    after = snapshot(good_runs)
    assert {k: v for k, v in after.items() if k in before} == before  # every earlier file untouched
    record_path.unlink()
    for interrupted in (good_runs / "checkpoints").glob(f"{script}.interrupted*"):  # the next signal's to write
        interrupted.unlink()


# --- two runs into one output folder or onto one checkpoint ---------------------------------------------------------

def start_training(out, checkpoint, *flags):
    """nn_numpy.py training in the background into ``out`` and ``checkpoint``, returned once its first epoch is
    done (it holds both then)."""
    child = subprocess.Popen([sys.executable, ROOT / "nn_numpy.py", *flags, "--quiet", "--out-dir", out,
                              "--checkpoint", checkpoint], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=interruptible)
    line = child.stdout.readline()
    assert line.startswith("nn_numpy: training with "), line + child.stderr.read()
    line = child.stdout.readline()
    assert line.startswith("epoch  1/"), line + child.stderr.read()
    return child


def locks(out, checkpoint):
    """Where the kit locks a run's output folder and its checkpoint (common/run.py, Run.lock)."""
    return out / "nn_numpy" / ".lock", checkpoint.with_name(f".{checkpoint.name}.lock")


def held(path):
    """Whether some process holds the flock on ``path``, tried the way the kit takes it (common/lock.py)."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases it if this took it
    return False


no_flock = pytest.mark.skipif(sys.platform == "win32", reason="no flock: runs are not locked on Windows")


@no_flock
def test_a_run_into_a_folder_or_checkpoint_in_use_refuses_naming_the_other_and_the_other_finishes(tmp_path, mnist_dir):
    """Two runs into one --out-dir (two scripts at once, or reproduce.py beside a hand-run script) both exited 0,
    and the later one's metrics.json, figures and checkpoint silently replaced the other's; so did two runs into
    two folders onto one --checkpoint. The first run is stopped (SIGSTOP) while the others start, so it holds its
    outputs throughout, and a run that waited for it instead of refusing would never return. (--eval-only and
    the shared checkpoint are tried in this process, as the script's Run would be made: a script's start costs
    seconds.)"""
    from common.checkpoint import load_npz
    from common.lock import InUse
    from common.run import Run

    out, checkpoint = tmp_path / "out", tmp_path / "ck" / "nn_numpy.npz"
    first = start_training(out, checkpoint, "--epochs", "3", "--limit-train", "2000", "--batch-size", "8")
    try:
        first.send_signal(signal.SIGSTOP)
        before = snapshot(tmp_path)
        started = time.time()
        second = run_script("nn_numpy.py", *QUICK, "--out-dir", out, "--checkpoint", tmp_path / "other.npz",
                            timeout=60)
        assert time.time() - started < 15
        holder = (rf"is in use by another run \(pid {first.pid}, started \S+: `python \S*nn_numpy.py --epochs 3 "
                  rf"--limit-train 2000 --batch-size 8 --quiet --out-dir {re.escape(str(out))} .*`\); wait for it "
                  rf"to end, or give another")
        folder = rf"--out-dir {re.escape(str(out))}: {re.escape(str(out / 'nn_numpy'))} {holder} --out-dir$"
        expect_error(second, 2, rf"^nn_numpy.py: error: {folder}")
        assert "epoch" not in second.stdout   # refused before training
        for eval_only, out_dir, path, pattern in (
                (True, out, ROOT / "reference" / "nn_numpy.npz", folder),
                (False, tmp_path / "elsewhere", checkpoint,
                 rf"^--checkpoint {re.escape(str(checkpoint))} {holder} --checkpoint$")):
            args = argparse.Namespace(epochs=1, quiet=True, out_dir=str(out_dir), checkpoint=str(path),
                                      eval_only=eval_only)
            with pytest.raises(InUse, match=pattern) as refused:
                Run("nn_numpy", "numpy", {}, args, save_checkpoint=None)
            assert refused.value.exit_code == 2
        assert snapshot(tmp_path) == before   # nothing written, the first run's lock files untouched
    finally:
        first.send_signal(signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert f"outputs in {out / 'nn_numpy'}/ and {checkpoint}" in stdout
    record = json.loads((out / "nn_numpy" / "metrics.json").read_text())
    assert record["config"]["batch_size"] == 8 and [e["epoch"] for e in record["history"]] == [1, 2, 3]
    assert sorted(p.name for p in (out / "nn_numpy").iterdir()) == ["confusion_matrix.png", "loss.png",
                                                                    "metrics.json", "mistakes.png", "top3.png"]
    assert load_npz(checkpoint, "nn_numpy")[1]["history"] == record["history"]
    assert not list(tmp_path.rglob("*.lock"))   # each run removed its lock files as it ended


@no_flock
def test_a_killed_run_does_not_block_the_next(tmp_path, mnist_dir):
    """SIGKILL (or a crash, or the kernel out of memory) gives a run no chance to clean up: its lock file stays,
    but the lock was the process's, and the next run takes it."""
    out, checkpoint = tmp_path / "out", tmp_path / "ck" / "nn_numpy.npz"
    child = start_training(out, checkpoint, "--epochs", "100", "--limit-train", "1000")
    try:
        assert all(held(path) for path in locks(out, checkpoint))
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert all(path.exists() and not held(path) for path in locks(out, checkpoint))
    result = run_script("nn_numpy.py", *QUICK, "--no-figures", "--out-dir", out, "--checkpoint", checkpoint)
    assert result.returncode == 0, result.stderr
    assert (out / "nn_numpy" / "metrics.json").is_file() and checkpoint.is_file()
    assert not any(path.exists() for path in locks(out, checkpoint))


@no_flock
def test_ctrl_c_releases_the_run_s_folder_and_checkpoint(tmp_path, mnist_dir):
    out, checkpoint = tmp_path / "out", tmp_path / "ck" / "nn_numpy.npz"
    child = start_training(out, checkpoint, "--epochs", "100", "--limit-train", "1000")
    try:
        assert all(held(path) for path in locks(out, checkpoint))
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130 and re.search(r"interrupted during epoch \d+; epoch \d+'s results are in", stderr)
    assert not any(path.exists() or held(path) for path in locks(out, checkpoint))
    result = run_script("nn_numpy.py", *QUICK, "--no-figures", "--out-dir", out, "--checkpoint", checkpoint)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "nn_numpy" / "metrics.json").read_text())["config"]["epochs"] == 1


# --- checkpoints ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script, other", [("nn_numpy", "cnn_numpy"), ("cnn_numpy", "nn_numpy"),
                                           ("nn_torch", "cnn_torch"), ("cnn_torch", "nn_torch")])
def test_checkpoint_of_the_other_model(good_runs, tmp_path, script, other):
    result = run_script(f"{script}.py", "--eval-only", "--out-dir", tmp_path,
                        "--checkpoint", good_runs / "checkpoints" / other)
    expect_error(result, 1, rf"is a checkpoint of {other}, not of {script}")


def test_numpy_checkpoint_with_other_shapes(good_runs, tmp_path):
    from common.checkpoint import load_npz, save_npz

    state, record, losses = load_npz(good_runs / "checkpoints" / "nn_numpy", "nn_numpy")
    state["3.W"] = state["3.W"][:, :32]
    save_npz(tmp_path / "bad.npz", state, record, losses)
    expect_error(run_script("nn_numpy.py", "--eval-only", "--out-dir", tmp_path, "--checkpoint",
                            tmp_path / "bad.npz"), 1, r"3.W has shape \(128, 32\), this model needs \(128, 64\)")


def test_torch_checkpoint_with_other_shapes(good_runs, tmp_path):
    torch = pytest.importorskip("torch")
    payload = torch.load(good_runs / "checkpoints" / "cnn_torch", weights_only=True)
    payload["state_dict"]["3.weight"] = payload["state_dict"]["3.weight"][:8]
    torch.save(payload, tmp_path / "bad.pt")
    expect_error(run_script("cnn_torch.py", "--eval-only", "--out-dir", tmp_path, "--checkpoint",
                            tmp_path / "bad.pt"), 1, r"3.weight has shape \(8, 16, 3, 3\), this model needs")


@pytest.mark.parametrize("script", ["cnn_numpy", "nn_torch"])
def test_corrupted_checkpoint(good_runs, tmp_path, script):
    data = (good_runs / "checkpoints" / script).read_bytes()
    (tmp_path / "broken").write_bytes(data[:len(data) // 2])
    line = expect_error(run_script(f"{script}.py", "--eval-only", "--out-dir", tmp_path, "--checkpoint",
                                   tmp_path / "broken"), 1, r"is not a readable checkpoint \(.*truncated or damaged\)")
    assert "delete" not in line and "Error" not in line


# --- a checkpoint of the other framework or model, or one with NaN weights (issue 22) ---------------------------

def original_pickle(tmp_path, kind="nn"):
    path = tmp_path / f"{kind}-model.pkl"
    path.write_bytes(pickle.dumps(fake_arrays(kind), protocol=4))
    return path


@pytest.mark.parametrize("script, file, owner, what", [
    ("nn_torch", "reference/nn_numpy.npz", "nn_numpy", "a NumPy .npz checkpoint of nn_numpy; nn_torch.py reads .pt"),
    ("cnn_torch", "reference/nn_numpy.npz", "nn_numpy", "a NumPy .npz checkpoint of nn_numpy; cnn_torch.py reads"),
    ("cnn_numpy", "reference/cnn_torch.pt", "cnn_torch", "a PyTorch .pt checkpoint of cnn_torch; cnn_numpy.py reads "
                                                         ".npz files \\(or the original's .pkl\\)"),
    ("nn_numpy", "reference/cnn_torch.pt", "cnn_torch", "a PyTorch .pt checkpoint of cnn_torch; nn_numpy.py reads"),
    ("nn_torch", "nn-model.pkl", "nn_numpy", "an original-format .pkl checkpoint of nn_numpy; nn_torch.py reads .pt"),
    ("cnn_torch", "cnn-model.pkl", "cnn_numpy", "an original-format .pkl checkpoint of cnn_numpy; cnn_torch.py"),
    ("nn_numpy", "cnn-model.pkl", "cnn_numpy", "an original-format .pkl checkpoint of cnn_numpy .*, not of nn_numpy"),
    ("nn_numpy", "reference/cnn_numpy.npz", "cnn_numpy", "a checkpoint of cnn_numpy, not of nn_numpy"),
], ids=["npz-to-nn_torch", "npz-to-cnn_torch", "pt-to-cnn_numpy", "pt-to-nn_numpy", "pkl-to-nn_torch",
        "pkl-to-cnn_torch", "cnn-pkl-to-nn_numpy", "other-model-npz"])
def test_a_checkpoint_of_the_other_framework_or_model_says_what_it_is_and_what_to_run(tmp_path, mnist_dir, script,
                                                                                       file, owner, what):
    """Issue 22: torch's RuntimeError ("please report an enhancement request to PyTorch"), a KeyError, a torch
    UserWarning and "delete it and train again" reached an instructor grading a student's file."""
    for kind in ("nn", "cnn"):
        original_pickle(tmp_path, kind)
    path = ROOT / file if file.startswith("reference/") else tmp_path / file
    result = run_script(f"{script}.py", "--eval-only", "--out-dir", tmp_path / "out", "--checkpoint", path)
    line = expect_error(result, 1, rf"^{script}.py: error: .*{re.escape(path.name)} is {what}.* — use: python "
                                   rf"{owner}.py --eval-only --checkpoint {re.escape(str(path))}$")
    for leak in ("delete", "Warning", "RuntimeError", "KeyError", "weights_only", "PyTorch."):
        assert leak not in result.stderr, line
    assert not (tmp_path / "out" / script / "metrics.json").exists()


def test_a_checkpoint_that_cannot_be_read_gets_its_error_alone(tmp_path, mnist_dir):
    """The runs/ note ("not the report's configuration ...") came before the error about a file of the other
    framework: the user was told where outputs would go of a run that was never going to happen."""
    result = run_script(ROOT / "nn_torch.py", "--eval-only", "--checkpoint", ROOT / "reference" / "nn_numpy.npz",
                        cwd=tmp_path)
    expect_error(result, 1, r"^nn_torch.py: error: .*nn_numpy.npz is a NumPy .npz checkpoint of nn_numpy")
    assert "not the report's configuration" not in result.stdout + result.stderr


@pytest.mark.parametrize("script, kind", [("nn_numpy", "npz"), ("cnn_torch", "pt"), ("nn_numpy", "pkl")])
def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_array(tmp_path, mnist_dir, script, kind):
    """Issue 22: a NaN weight was graded silently (exit 0, "test accuracy 9.80%, test loss nan") and its
    metrics.json held a bare NaN."""
    path = tmp_path / f"bad.{kind}"
    if kind == "npz":
        from common.checkpoint import load_npz, save_npz
        state, record, losses = load_npz(ROOT / "reference" / "nn_numpy.npz", "nn_numpy")
        state["3.W"] = state["3.W"].copy()
        state["3.W"][0, 0] = np.nan
        save_npz(path, state, record, losses)
        name = r"3.W"
    elif kind == "pt":
        torch = pytest.importorskip("torch")
        payload = torch.load(ROOT / "reference" / "cnn_torch.pt", weights_only=True)
        payload["state_dict"]["7.bias"][4] = float("inf")
        torch.save(payload, path)
        name = r"7.bias"
    else:
        arrays = fake_arrays("nn")
        arrays["layer2_W"][5, 5] = np.nan
        path.write_bytes(pickle.dumps(arrays, protocol=4))
        name = r"layer2_W \(3.W\)"
    result = run_script(f"{script}.py", "--eval-only", "--out-dir", tmp_path / "out", "--checkpoint", path)
    expect_error(result, 1, rf"bad.{kind}: {name} holds 1 non-finite value\(s\) \(NaN or infinity\)")
    assert not (tmp_path / "out" / script / "metrics.json").exists()


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/kit-pwned",))


def test_a_pickled_object_in_a_torch_checkpoint_is_never_run(tmp_path, mnist_dir):
    torch = pytest.importorskip("torch")
    torch.save({"state_dict": {}, "record": Exploit(), "iteration_losses": torch.zeros(1)}, tmp_path / "evil.pt")
    line = expect_error(run_script("nn_torch.py", "--eval-only", "--out-dir", tmp_path, "--checkpoint",
                                   tmp_path / "evil.pt"), 1,
                        r"is not a readable checkpoint \(it holds pickled Python objects, which are never loaded\)")
    assert "weights_only" not in line
    assert not os.path.exists("/tmp/kit-pwned")


def test_an_object_array_in_a_numpy_checkpoint_is_refused(tmp_path, mnist_dir):
    np.savez(tmp_path / "evil.npz", record=np.array([{"a": 1}], dtype=object))
    expect_error(run_script("nn_numpy.py", "--eval-only", "--out-dir", tmp_path, "--checkpoint",
                            tmp_path / "evil.npz"), 1, r"is not a readable checkpoint")


def test_reproduce_bad_flag_is_one_line():
    expect_error(run_script("reproduce.py", "--seeds", "0"), 2, r"argument --seeds: must be greater than 0")


def test_checkpoint_path_that_is_a_folder_fails_before_training(tmp_path, mnist_dir):
    (tmp_path / "ck").mkdir()
    expect_error(run_script("nn_numpy.py", *QUICK, "--out-dir", tmp_path, "--checkpoint", tmp_path / "ck"), 2,
                 r"--checkpoint .*ck is a folder; give the path of a file")


# --- checkpoints in the original's format (pickles), and the download's settings -----------------------------------

@pytest.mark.parametrize("make, pattern", [
    (lambda d: {"layer1_W": CreatesFile(d / "pwned")},
     r"refusing to load .*evil.pkl: it contains (posix|os|nt)\.system, not only arrays"),
    (lambda d: {"layer1_W": np.array([{"a": 1}], dtype=object)},
     r"refusing to load .*: it contains an array of Python"),
    (lambda d: [fake_arrays("nn")["layer1_W"]], r"evil.pkl holds a list, not a dict of named arrays"),
    (lambda d: {**fake_arrays("nn"), "layer2_W": np.zeros((128, 32))},
     r"layer2_W \(3.W\) has shape \(128, 32\), this model needs \(128, 64\)"),
    (lambda d: fake_arrays("cnn"), r"is an original-format .pkl checkpoint of cnn_numpy .*, not of nn_numpy — use: "
                                   r"python cnn_numpy.py --eval-only"),
    (lambda d: pickle.dumps(fake_arrays("nn"), protocol=4)[:5000],
     r"evil.pkl is not a readable checkpoint in the original's format"),
], ids=["global", "object-dtype", "list", "wrong-shapes", "other-model", "truncated"])
def test_hostile_or_broken_original_checkpoints(tmp_path, mnist_dir, make, pattern):
    obj = make(tmp_path)
    (tmp_path / "evil.pkl").write_bytes(obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=4))
    expect_error(run_script("nn_numpy.py", "--eval-only", "--out-dir", tmp_path / "out", "--checkpoint",
                            tmp_path / "evil.pkl"), 1, pattern)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out" / "nn_numpy" / "metrics.json").exists()


@pytest.mark.parametrize("env, pattern", [
    ({"MNIST_TIMEOUT": "-1"}, r"MNIST_TIMEOUT=-1 must be a finite number of seconds greater than 0"),
    ({"MNIST_TIMEOUT": "0"}, r"MNIST_TIMEOUT=0 must be a finite number of seconds greater than 0"),
    ({"MNIST_MIRROR": "example.org/mnist"}, r"MNIST_MIRROR=example.org/mnist is neither a URL nor a folder"),
], ids=["timeout-negative", "timeout-zero", "mirror-without-scheme"])
def test_download_settings_that_cannot_work(tmp_path, env, pattern):
    expect_error(run_in(tmp_path, "nn_numpy", *QUICK, env=env), 1, rf"^nn_numpy.py: error: {pattern}")


def test_reproduce_original_given_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    expect_error(run_script("reproduce.py", "--original", tmp_path / "file"), 1,
                 r"--original .*file is not a folder; give the folder that holds")


def children(pid):
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker process exists on Linux only")
def test_a_killed_worker_process_is_one_line_and_keeps_earlier_outputs(good_runs):
    """cnn_numpy.py computes each batch's second half in a worker process; if something kills it (the kernel,
    for memory), the run ends with one line that names the way out, not a hang or a traceback."""
    before = snapshot(good_runs)
    child = subprocess.Popen([sys.executable, ROOT / "cnn_numpy.py", "--epochs", "100", "--limit-train", "2000",
                              "--quiet", "--processes", "2", "--out-dir", good_runs / "figures",
                              "--checkpoint", good_runs / "checkpoints" / "cnn_numpy"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = child.stdout.readline()
    assert line.startswith("cnn_numpy: training with the fast layers of fast_cnn/, two processes"), line
    line = child.stdout.readline()
    assert line.startswith("epoch  1/100"), line + child.stderr.read()
    workers = children(child.pid)
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = child.communicate(timeout=30)
    expect_error(subprocess.CompletedProcess([], child.returncode, stdout, stderr), 1,
                 r"cnn_numpy.py: error: the worker process that computes the second half of each batch ended "
                 r"unexpectedly \(exit code -9\); run with --processes 1")
    assert snapshot(good_runs) == before


def test_a_bare_state_dict_given_to_nn_torch_points_at_grade_py(tmp_path):
    """Issue 28: a student's torch.save(model.state_dict()) got "lacks the weights or the record this kit writes"."""
    import torch

    import nn_torch
    torch.save(nn_torch.mlp().state_dict(), tmp_path / "student.pt")
    torch.save({"model_state_dict": nn_torch.mlp().state_dict(), "epoch": 20}, tmp_path / "training.pth")
    for name in ("student.pt", "training.pth"):
        result = run_script("nn_torch.py", "--eval-only", "--checkpoint", tmp_path / name, "--out-dir", tmp_path)
        expect_error(result, 1, rf"holds weights without the record this kit writes .*; grade it with "
                                rf"`python grade.py {re.escape(str(tmp_path))}`")
