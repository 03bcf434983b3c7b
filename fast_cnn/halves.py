"""Each training batch of the NumPy CNN as two halves, computed at once by this process and a forked worker.

    python cnn_numpy.py                  # --layers fast: two processes where the machine has 2+ cores (Linux)
    python cnn_numpy.py --processes 1    # the same two halves one after the other: the same numbers, bit for bit
    python cnn_numpy.py --layers textbook    # none of this: whole batches, in one process
    python benchmarks/bench.py           # what it buys: the NumPy CNN's epoch against PyTorch's

The gradient of a batch is the gradient of its first half plus that of its second (the loss is a mean, so
each half's loss is divided by the whole batch's size). Computing the two halves in two processes is
data parallelism on one machine; computing them one after the other gives the same numbers bit for bit,
because the split, and with it every rounding, stays the same. So the number of processes is not a
hyperparameter, and a run is reproducible on a machine with one core. Each half runs in pieces of at most
PIECE (8) images, whose activations stay in the L2 cache; their gradients are summed in order.

Why processes, not threads: NumPy lets go of the GIL inside each operation, but a training step is about
sixty short operations, and two threads handing the GIL back and forth after each one made ~45 context
switches per step: 1.3x faster, where two processes give ~1.7x (benchmarks/README.md). A worker process costs one message
each way per step: on x86 through a "doorbell" in shared memory (see DOORBELL), elsewhere through the pipe.

What is shared, and how: the parameters move into a block of shared memory (an anonymous mmap) before the
fork, so the worker sees every in-place optimizer step without a copy; the worker writes its half's
gradients into a second block and its half of the logits (evaluation) into a third. The training and
test arrays reach the worker through fork, without a copy.

The worker dies with the process that forked it, however that one ends (Ctrl-C, SIGTERM, SIGKILL): on
Linux the kernel sends it SIGKILL when its parent dies, and its wait loop also returns when the pipe to the
parent closes.

Only the NumPy CNN's fast path uses this (cnn_numpy.py --layers fast). For the MLP a step is ~0.3 ms and moving its 109,000 gradients costs more
than the second process saves (measured: 0.48 against 0.30 ms per step).
"""

import contextlib
import ctypes
import mmap
import multiprocessing
import os
import platform
import signal
import sys
import time

import numpy as np

from common.errors import UserError
from fast_cnn.layers import blas_threads
from common.harness_numpy import predict
from nn_numpy import SoftmaxCrossEntropy


def default_processes():
    """2 where this can fork a worker and has two cores to run it on, else 1."""
    return 2 if can_fork() and available_cores() >= 2 else 1


def can_fork():
    # Linux only: macOS can fork, but its system libraries (Accelerate among them) are not safe after fork.
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


PIECE = 8  # images per forward/backward pass: their activations then stay in the CPU's L2 cache


def split(n):
    """Where a batch of ``n`` splits: the first half has ceil(n / 2) items."""
    return (n + 1) // 2


def shared_arrays(like, zero=False):
    """Arrays shaped and typed as ``like``, in one block of shared memory (inherited by a fork), with
    ``like``'s values unless ``zero``. Returns (block, arrays)."""
    sizes = [(a.nbytes + 63) // 64 * 64 for a in like]  # 64-byte aligned, as NumPy's own allocations
    block = mmap.mmap(-1, max(sum(sizes), 1))
    arrays, offset = [], 0
    for a, size in zip(like, sizes):
        view = np.frombuffer(block, a.dtype, a.size, offset).reshape(a.shape)
        if not zero:
            view[...] = a
        arrays.append(view)
        offset += size
    return block, arrays


SPIN_SECONDS = 0.002
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid):
    """Have the kernel SIGKILL this process when its parent dies (Linux; elsewhere the pipe's EOF must do), and
    exit at once if the parent ``parent_pid`` is already gone: it may have died before the request was made."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)


# A training step's request and answer go through a "doorbell" in shared memory (a counter each side watches)
# instead of the pipe: a pipe round trip with pickling took ~21 us here, the doorbell ~0.5 us, and the whole
# step got ~4% faster at batch 32 (benchmarks/README.md). It relies on x86's memory order: another core sees a
# process's stores in the order it made them, so the counter never moves before the data it announces.
# Elsewhere the requests go through the pipe. Errors, predictions and the end always do.
DOORBELL = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def wait_for(ready, connection, seconds=SPIN_SECONDS):
    """Until ready() is true or ``connection`` has a message (or the other end closed): spins for up to
    ``seconds`` (a pipe poll, a system call, only every 64th turn), then checks both every millisecond asleep.
    Why spin first: waking a sleeping process took ~0.1 ms here, twice per step (worker and main), against
    ~1.2 ms of work per half at batch 16."""
    deadline = time.perf_counter() + seconds
    turns = 0
    while not ready():
        turns += 1
        if turns % 64 == 0:
            if connection.poll():
                return
            if time.perf_counter() > deadline:
                while not ready() and not connection.poll(0.001):
                    pass
                return


class PartOfBatchLoss(SoftmaxCrossEntropy):
    """nn_numpy's softmax cross-entropy for part of a batch: backward(total) = (softmax - onehot) / total, the
    gradient of these items' share of the mean loss over a whole batch of ``total`` items."""

    def backward(self, total=None):
        n = len(self.labels)
        dlogits = self.probs.copy()
        dlogits[np.arange(n), self.labels] -= 1
        return dlogits / dlogits.dtype.type(total or n)


class WorkerFailed(UserError):
    """The worker process died (e.g. killed for memory) or failed: one line, and --processes 1 as the way out."""


class Halves:
    """Training steps and predictions of ``model`` on two halves of each batch.

    model: has forward(x), backward(dout) and parameters() -> [(layer, name)]; the gradient of
    getattr(layer, name) is getattr(layer, "d" + name) after backward (nn_numpy.Sequential).
    images, labels: the training arrays that step() indexes.
    eval_arrays: arrays that predict() may be asked for; the worker shares in those only.
    processes: 1 (both halves here) or 2 (the second half in a forked worker).

    Use as a context manager: the worker starts on entry and ends on exit. While inside, the model's
    parameters are views into shared memory; an optimizer must update them in place (nn_numpy's do), and a
    parameter replaced by a new array is copied back in before the next step.
    """

    def __init__(self, model, images, labels, eval_arrays=(), processes=2):
        if processes not in (1, 2):
            raise ValueError(f"processes must be 1 or 2, got {processes}")
        self.model, self.loss_fn, self.images, self.labels = model, PartOfBatchLoss(), images, labels
        self.eval_arrays, self.predict_fn = list(eval_arrays), predict
        self.processes = processes if can_fork() else 1
        self.params = model.parameters()
        self.worker = self.connection = None
        self._blas = contextlib.ExitStack()
        self.doorbell = DOORBELL

    # --- life cycle -----------------------------------------------------------------------------------
    def __enter__(self):
        # One BLAS thread in both processes, set before the fork so the worker inherits it. With more,
        # OpenBLAS's idle threads spin between products and take the core the other process is using.
        self._blas.enter_context(blas_threads(1))
        values = [getattr(layer, name) for layer, name in self.params]
        self._param_block, self.param_views = shared_arrays(values)
        for (layer, name), view in zip(self.params, self.param_views):
            setattr(layer, name, view)
        self._grad_block, self.grad_views = shared_arrays(values, zero=True)
        if self.processes == 2:
            classes = self.model.forward(self.images[:1]).shape[1]
            dtype = values[0].dtype
            self._logit_block, self.logit_views = shared_arrays(
                [np.empty((len(a) - split(len(a)), classes), dtype) for a in self.eval_arrays], zero=True)
            # The doorbell: [request number, answer number, second half's size, batch size], the answer
            # (loss, correct) and the second half's indices (at most half of the training images).
            self._bell_block, (self._bell, self._answer_values, self._bell_batch) = shared_arrays(
                [np.zeros(4, np.int64), np.zeros(2, np.float64),
                 np.zeros(max(len(self.images) - split(len(self.images)), 1), np.intp)], zero=True)
            self._rung, self._parent_pid = 0, os.getpid()
            context = multiprocessing.get_context("fork")
            self.connection, child = context.Pipe()
            self.worker = context.Process(target=self._serve, args=(child,), name="cnn-half", daemon=True)
            self.worker.start()
            child.close()  # so that a dead worker reads as EOF here
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self._blas.close()
        if self.worker is None:
            return
        worker, self.worker = self.worker, None
        try:
            self.connection.send(None)
        except (OSError, ValueError):
            pass
        self.connection.close()
        worker.join(timeout=5)
        if worker.is_alive():
            worker.terminate()
            worker.join()

    # --- the two halves ---------------------------------------------------------------------------------
    def step(self, batch):
        """Forward and backward on images[batch]; leaves the whole batch's gradients in the model.

        Returns (mean loss over the batch, number of correct predictions).
        """
        self._check_params()
        n = len(batch)
        first, second = batch[:split(n)], batch[split(n):]
        rung = self.worker is not None and self.doorbell and len(second) <= len(self._bell_batch)
        if len(second) and rung:
            self._ring(second, n)
        elif len(second) and self.worker is not None:
            self._ask(("step", second.tolist(), n))  # a list pickles in ~2 us, an array in ~25
        elif len(second):  # one process: the second half first, into the same buffers the worker uses
            self._second_half(second, n)
        loss, correct = self._half(first, n)
        if len(second):
            if self.worker is None:
                loss2, correct2 = self._second_half_result
            else:
                loss2, correct2 = self._answered() if rung else self._answer()
            loss, correct = loss + loss2, correct + correct2
            for (layer, name), grad in zip(self.params, self.grad_views):
                setattr(layer, "d" + name, getattr(layer, "d" + name) + grad)
        return loss / n, correct

    def predict(self, images):
        """Logits of ``images``, as two halves (the same numbers with one process or two); the worker computes
        the second half if it shares in ``images``, else this process does."""
        h = split(len(images))
        if h == len(images):  # nothing to split
            return self.predict_fn(self.model, images)
        which = next((i for i, a in enumerate(self.eval_arrays) if a is images), None)
        if which is None or self.worker is None:
            return np.concatenate([self.predict_fn(self.model, images[:h]), self.predict_fn(self.model, images[h:])])
        self._check_params()
        self._ask(("predict", which))
        first = self.predict_fn(self.model, images[:h])
        self._answer()
        return np.concatenate([first, self.logit_views[which]])

    def _half(self, batch, n, total=None):
        """Forward and backward of one half here, PIECE images at a time; leaves the half's gradient in the
        model and returns (loss summed over the half, correct). total: arrays to sum the pieces' gradients in
        (overwritten), else new ones; a half of one piece leaves its gradient where backward put it."""
        loss, correct, started = 0.0, 0, False
        for lo in range(0, len(batch), PIECE):
            piece = batch[lo:lo + PIECE]
            x, y = self.images[piece], self.labels[piece]
            logits = self.model.forward(x)
            loss += float(self.loss_fn.forward(logits, y)) * len(piece)
            self.model.backward(self.loss_fn.backward(n))
            correct += int(np.count_nonzero(logits.argmax(axis=1) == y))
            if len(batch) <= PIECE:  # one piece: its gradient is the half's, already in the model
                break
            grads = [getattr(layer, "d" + name) for layer, name in self.params]
            if not started:  # a copy: the next piece's backward may reuse the array
                total = total if total is not None else [np.empty_like(g) for g in grads]
                for t, g in zip(total, grads):
                    t[...] = g
                started = True
            else:
                for t, g in zip(total, grads):
                    t += g
        if started:
            for (layer, name), t in zip(self.params, total):
                setattr(layer, "d" + name, t)
        return loss, correct

    def _second_half(self, batch, n):
        """The second half, its gradient summed in (or copied to) the shared block."""
        self._second_half_result = self._half(batch, n, total=self.grad_views)
        for (layer, name), grad in zip(self.params, self.grad_views):
            value = getattr(layer, "d" + name)
            if value is not grad:  # a half of one piece
                grad[...] = value

    def _check_params(self):
        for (layer, name), view in zip(self.params, self.param_views):
            value = getattr(layer, name)
            if value is not view:  # e.g. load_state_dict put a new array in: share its values
                view[...] = value
                setattr(layer, name, view)

    # --- the conversation with the worker -------------------------------------------------------------------
    def _ring(self, second, n):
        """A step's request through the doorbell: the indices and sizes first, the request number last."""
        self._bell_batch[:len(second)] = second
        self._bell[2], self._bell[3] = len(second), n
        self._rung += 1
        self._bell[0] = self._rung

    def _answered(self):
        """The worker's (loss, correct) for the request just rung; its errors and its end come by the pipe."""
        bell, rung = self._bell, self._rung
        wait_for(lambda: bell[1] == rung, self.connection)
        if bell[1] != rung:  # the pipe spoke first: an error report, or the worker is gone
            answer = self._answer()
            raise WorkerFailed(f"the worker process that computes the second half of each batch answered "
                               f"{answer!r} out of turn")
        return float(self._answer_values[0]), int(self._answer_values[1])

    def _ask(self, message):
        try:
            self.connection.send(message)
        except (OSError, ValueError) as e:
            raise self._failure(f"could not be reached ({e})") from None

    def _answer(self):
        try:
            wait_for(lambda: False, self.connection)
            answer = self.connection.recv()
        except (EOFError, OSError):
            raise self._failure("ended unexpectedly") from None
        if isinstance(answer, tuple) and answer and answer[0] == "error":
            raise WorkerFailed(f"the worker process that computes the second half of each batch failed: "
                               f"{answer[1]}")
        return answer

    def _failure(self, what):
        if self.worker is not None:
            self.worker.join(timeout=1)
            if self.worker.exitcode is not None:
                what = f"ended unexpectedly (exit code {self.worker.exitcode})"
        return WorkerFailed(f"the worker process that computes the second half of each batch {what}; run with "
                            f"--processes 1 to compute both halves in one process")

    def _serve(self, connection):
        """The worker: answer requests until told to stop (None) or the other end closes."""
        die_with_parent(self._parent_pid)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
        self.connection.close()  # the parent's end, inherited: held open here, it would never read as EOF
        bell = self._bell
        heard = self._rung  # as forked: the main process may have rung already, before this line ran
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while True:
                try:
                    wait_for(lambda: bell[0] != heard, connection)
                    rung = bell[0] != heard
                    if rung:
                        heard = int(bell[0])
                        message = ("step", self._bell_batch[:bell[2]].copy(), int(bell[3]))
                    elif os.getppid() != self._parent_pid:  # the parent is gone
                        return
                    else:
                        message = connection.recv()
                except (EOFError, OSError):
                    return
                if message is None:
                    return
                try:
                    if message[0] == "step":
                        _, batch, n = message
                        self._second_half(np.array(batch, dtype=np.intp), n)
                        answer = self._second_half_result
                    else:
                        images = self.eval_arrays[message[1]]
                        self.logit_views[message[1]][...] = self.predict_fn(self.model,
                                                                            images[split(len(images)):])
                        answer = "done"
                except Exception as e:  # noqa: BLE001 - reported to the main process, which raises
                    answer, rung = ("error", f"{type(e).__name__}: {e}"), False
                if rung:  # the answer first, its number last
                    self._answer_values[0], self._answer_values[1] = answer
                    bell[1] = heard
                else:
                    connection.send(answer)
