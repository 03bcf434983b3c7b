"""fast_cnn/halves.py: a batch computed as two halves (and in pieces) has the whole batch's gradient, and one
process or two give the same numbers bit for bit."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fast_cnn
from common import harness_numpy
import nn_numpy
from common.run import EpochProgress
from conftest import ROOT
from fast_cnn import halves
from fast_cnn.halves import PIECE, Halves, WorkerFailed
from fast_cnn.layers import cnn

two_processes = pytest.mark.skipif(not halves.can_fork(), reason="the worker process needs fork (Linux)")


def data(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)).astype(dtype), rng.integers(0, 10, n)


def train(processes, images, labels, batch_size, optimizer="sgd", steps=None, eval_images=None):
    """A few optimizer steps through fast_cnn.train_epoch; returns (state, per-step losses, logits)."""
    model = cnn(np.random.default_rng(0), images.dtype)
    opt = nn_numpy.Adam(model, 1e-3) if optimizer == "adam" else nn_numpy.SGD(model, 0.05, momentum=0.9)
    eval_images = images if eval_images is None else eval_images
    with Halves(model, images, labels, (images, eval_images), processes) as shared:
        progress = EpochProgress(1, 1, 1, quiet=True, lr=0.05)
        fast_cnn.train_epoch(shared, opt, batch_size, np.random.default_rng(1).permutation(len(images)), progress)
        logits = shared.predict(eval_images)
    return model.state_dict(), progress.losses, logits


@two_processes
@pytest.mark.parametrize("batch_size, optimizer", [(16, "sgd"), (15, "adam"), (37, "sgd"), (1, "sgd")])
def test_one_process_and_two_give_the_same_numbers_bit_for_bit(batch_size, optimizer):
    images, labels = data(5 * batch_size + 3, np.float32)  # the last batch is short
    test_images, _ = data(501, np.float32, seed=1)  # odd: the halves differ in size
    one = train(1, images, labels, batch_size, optimizer, eval_images=test_images)
    two = train(2, images, labels, batch_size, optimizer, eval_images=test_images)
    for key in one[0]:
        assert np.array_equal(one[0][key], two[0][key]), key
    assert one[1] == two[1]
    assert np.array_equal(one[2], two[2])


@two_processes
@pytest.mark.parametrize("doorbell", [True, False])
def test_steps_through_the_doorbell_or_the_pipe_give_the_same_numbers(doorbell, monkeypatch):
    # The doorbell (shared memory) carries the steps on x86; the pipe elsewhere. Both must be the one-process run.
    monkeypatch.setattr(halves, "DOORBELL", doorbell)
    images, labels = data(3 * 32 + 5, np.float32)
    one = train(1, images, labels, 32, "adam")
    two = train(2, images, labels, 32, "adam")
    for key in one[0]:
        assert np.array_equal(one[0][key], two[0][key]), key
    assert one[1] == two[1]


@two_processes
@pytest.mark.skipif(not halves.DOORBELL, reason="the doorbell is used on x86 only")
def test_on_x86_each_step_rings_the_doorbell_and_is_answered_there():
    images, labels = data(32, np.float32)
    model = cnn(np.random.default_rng(0))
    with Halves(model, images, labels, [images], 2) as h:
        for step in range(1, 4):
            h.step(np.arange(32))
            assert h._bell[0] == h._bell[1] == step  # asked and answered through shared memory
        h.predict(images)  # predictions go through the pipe, and the doorbell still works after
        h.step(np.arange(16))
        assert h._bell[1] == 4


@pytest.mark.parametrize("n", [1, 2, 7, 16, 2 * PIECE + 1, 40])
def test_the_halves_add_up_to_the_whole_batchs_gradient(n):
    """float64, one process: the split changes only the rounding."""
    images, labels = data(n, np.float64)
    whole = cnn(np.random.default_rng(0), np.float64)
    loss_fn = nn_numpy.SoftmaxCrossEntropy()
    logits = whole.forward(images)
    loss = loss_fn.forward(logits, labels)
    whole.backward(loss_fn.backward())
    model = cnn(np.random.default_rng(0), np.float64)
    with Halves(model, images, labels, [images], 1) as h:
        split_loss, correct = h.step(np.arange(n))
        np.testing.assert_allclose(h.predict(images), harness_numpy.predict(whole, images), rtol=1e-13, atol=1e-13)
    assert split_loss == pytest.approx(float(loss), rel=1e-13)
    assert correct == np.count_nonzero(logits.argmax(axis=1) == labels)
    for (layer, name), (ref, _) in zip(model.parameters(), whole.parameters()):
        np.testing.assert_allclose(getattr(layer, "d" + name), getattr(ref, "d" + name), rtol=1e-11, atol=1e-14)


@two_processes
def test_the_worker_sees_every_optimizer_step_and_replaced_parameters():
    images, labels = data(32, np.float64)
    model = cnn(np.random.default_rng(0), np.float64)
    with Halves(model, images, labels, [images], 2) as h:
        before = h.predict(images)
        model.layers[7].W += 0.5  # in place, as the optimizers update
        moved = h.predict(images)
        np.testing.assert_allclose(moved, harness_numpy.predict(model, images), rtol=1e-13)
        assert not np.allclose(before[16:], moved[16:])  # the worker's half changed too
        state = model.state_dict()
        state["3.W"] = state["3.W"] * 0  # load_state_dict puts in new arrays
        model.load_state_dict(state)
        h.step(np.arange(32))  # copies them into the shared block first
        np.testing.assert_allclose(h.predict(images), harness_numpy.predict(model, images), rtol=1e-13)


@two_processes
def test_a_worker_that_dies_is_one_clear_error_not_a_hang():
    images, labels = data(32, np.float32)
    model = cnn(np.random.default_rng(0))
    with Halves(model, images, labels, [images], 2) as h:
        h.step(np.arange(16))
        os.kill(h.worker.pid, signal.SIGKILL)
        h.worker.join()
        with pytest.raises(WorkerFailed, match=r"ended unexpectedly \(exit code -9\); run with --processes 1"):
            h.step(np.arange(16))


@two_processes
def test_an_error_in_the_worker_comes_back_as_one_line():
    images, labels = data(8, np.float32)
    model = cnn(np.random.default_rng(0))
    with Halves(model, images, labels, [images], 2) as h:
        with pytest.raises(WorkerFailed, match="failed: IndexError"):
            h.step(np.array([0, 1, 2, 99]))  # the worker's half indexes past the images
        h.step(np.arange(8))  # and it keeps serving


@two_processes
def test_the_worker_ends_with_the_context_and_blas_threads_are_restored():
    from threadpoolctl import threadpool_info
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    images, labels = data(8, np.float32)
    model = cnn(np.random.default_rng(0))
    with Halves(model, images, labels, [images], 2) as h:
        worker = h.worker
        assert worker.is_alive()
    assert not worker.is_alive() and worker.exitcode == 0
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


def test_processes_must_be_one_or_two():
    images, labels = data(2, np.float32)
    with pytest.raises(ValueError, match="1 or 2"):
        Halves(cnn(np.random.default_rng(0)), images, labels, [], 3)


@two_processes
def test_cnn_numpy_gives_the_same_run_with_one_process_or_two(tmp_path, mnist_dir):
    import json

    from test_scripts import quick_run

    runs = {}
    for processes in ("1", "2"):
        folder = tmp_path / processes
        record, result = quick_run("cnn_numpy", folder, "--epochs", "1", "--limit-train", "600", "--batch-size",
                                   "20", "--processes", processes)
        assert record["config"]["split_batches"].startswith("two halves")
        runs[processes] = record, np.load(folder / "checkpoints" / "cnn_numpy")
    (one, one_weights), (two, two_weights) = runs["1"], runs["2"]
    strip = lambda h: [{k: v for k, v in e.items() if not k.startswith("seconds")} for e in h]  # noqa: E731
    assert strip(one["history"]) == strip(two["history"]) and one["final"] == two["final"]
    assert json.dumps(one["confusion_matrix"]) == json.dumps(two["confusion_matrix"])
    for key in [k for k in one_weights.files if k.startswith("state/")] + ["iteration_losses"]:
        assert np.array_equal(one_weights[key], two_weights[key]), key


def gone(pid):
    """True once ``pid`` has exited (a zombie waiting for init to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def read_to_eof(stream, seconds):
    """Whether ``stream`` reaches EOF within ``seconds`` (it does once no process holds its write end)."""
    reader = threading.Thread(target=stream.read, daemon=True)
    reader.start()
    reader.join(seconds)
    return not reader.is_alive()


def cleanup(*pids):
    """Kill what a failed test left behind, so that its pipe closes and nothing hangs."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@two_processes
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_worker_dies_with_its_parent_however_the_parent_dies(how):
    """SIGTERM (timeout, docker stop, a job scheduler) or SIGKILL (the OOM killer) to the main process mid-training:
    the worker must not live on, and a reader of the parent's stdout must get EOF (the worker shares that pipe)."""
    code = textwrap.dedent("""
        import numpy as np
        from fast_cnn.halves import Halves
        from fast_cnn.layers import cnn
        images = np.random.default_rng(0).random((64, 1, 28, 28)).astype(np.float32)
        with Halves(cnn(np.random.default_rng(0)), images, np.zeros(64, np.intp), [images], 2) as h:
            h.step(np.arange(32))
            print(h.worker.pid, flush=True)
            while True:
                h.step(np.arange(32))
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    worker = int(parent.stdout.readline())
    try:
        os.kill(parent.pid, how)
        parent.wait(timeout=10)
        assert read_to_eof(parent.stdout, 2), "the parent's stdout stayed open: something still holds it"
        deadline = time.monotonic() + 2
        while not gone(worker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gone(worker), "the worker outlived its parent"
    finally:
        parent.kill()
        cleanup(worker)
        parent.stdout.close()


@two_processes
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_cnn_numpy_stopped_by_sigterm_leaves_no_process_and_its_pipe_closes(mnist_dir, tmp_path):
    """The issue's case: `python cnn_numpy.py` run by another program (capture_output) and stopped with SIGTERM."""
    run = subprocess.Popen([sys.executable, "cnn_numpy.py", "--epochs", "50", "--limit-train", "2000", "--quiet",
                            "--out-dir", tmp_path / "figures", "--checkpoint", tmp_path / "ck.npz"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env={**os.environ, "MNIST_DIR": str(mnist_dir)})
    workers = []
    try:
        assert b"fast layers of fast_cnn/, two processes" in run.stdout.readline()  # says which code trains
        assert b"epoch  1/50" in run.stdout.readline()  # training, worker running
        workers = children(run.pid)
        assert workers, "no worker process under cnn_numpy.py"
        run.terminate()
        run.wait(timeout=10)
        assert read_to_eof(run.stdout, 2)
        deadline = time.monotonic() + 2
        while not all(map(gone, workers)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(map(gone, workers))
    finally:
        run.kill()
        cleanup(*workers)
        run.stdout.close()
