"""One training run's bookkeeping, shared by the four scripts: progress, history, divergence and Ctrl-C
handling, and at the end metrics.json, the figures and the checkpoint.

    run = Run("nn_numpy", "numpy", config, args, save_checkpoint)
    with run:
        for epoch in run.epochs():
            with run.progress(epoch, steps) as progress:
                train_epoch(..., progress)          # calls progress.step(loss, correct, n) per batch
            run.end_epoch(state, train_logits, y_train, test_logits, y_test)
    run.finish(x_test)

Nothing is written until the run ends well. A diverging loss raises :class:`Diverged` and writes nothing.
Ctrl-C keeps the last complete epoch beside, never over, the outputs of an earlier finished run.

One run at a time writes a given output folder and checkpoint: a Run locks both as it is created (before any
training), and a second run that finds them in use refuses in one line naming the other (common/lock.py). The
locks go when the run ends, however it ends: finish(), an error or a signal out of ``with run``, or the
process's end.
"""

import datetime
import importlib.metadata
import json
import math
import platform
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from common import metrics, plots
from common.checkpoint import FORMAT, interrupted_path
from common.errors import SigTerm, UsageError, UserError
from common.io import OutputSet, check_writable, write_json
from common.lock import take
from common.provenance import ROOT, code_digest, machine_id

TITLES = {"nn_numpy": "MLP, NumPy", "nn_torch": "MLP, PyTorch", "cnn_numpy": "CNN, NumPy",
          "cnn_torch": "CNN, PyTorch"}


class Diverged(UserError):
    pass


class Interrupted(UserError):
    exit_code = 130


class Terminated(Interrupted):
    """What a run stopped by SIGTERM ends with: its last complete epoch kept, as after Ctrl-C."""
    exit_code = 143


class CtrlC:
    """Ctrl-C (SIGINT) or SIGTERM during training, made impossible to lose.

    Both keep the last complete epoch (Run.keep_interrupted) and exit 130 (SIGINT) or 143 (SIGTERM). Python
    runs a signal handler between two bytecodes of whatever runs at that moment: a KeyboardInterrupt raised
    inside a finalizer (say tqdm's ``__del__``, run when an epoch's bar is collected) is dropped, and training
    would go on. While a :class:`Run` is entered, the handler also notes the signal, and :meth:`check`
    (called at every step and epoch end) raises it again; and Python's report of the dropped one ("Exception
    ignored in ...", a traceback) is not printed, since the signal is not lost (:meth:`unraisable`).
    """

    SIGNALS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: SigTerm}

    def __init__(self):
        self.came = None  # the exception class of the signal that came, if one did
        self.previous = {}

    def handler(self, signum, frame):
        self.came = self.SIGNALS[signum]
        raise self.came

    def install(self):
        # Only over Python's own handlers: a signal ignored (SIG_IGN, e.g. SIGINT in a background job) stays so.
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(signum) is default:
                self.previous[signum] = signal.signal(signum, self.handler)
        if self.previous:
            self.previous_unraisable = sys.unraisablehook
            sys.unraisablehook = self.unraisable

    def unraisable(self, unraisable):
        """sys.unraisablehook while installed: the signal this handler raised inside a finalizer is kept in
        ``came`` and raised again by :meth:`check`, so Python's "Exception ignored" report of it is left out;
        anything else goes to the hook that was there before."""
        if not (self.came and unraisable.exc_type is self.came):
            self.previous_unraisable(unraisable)

    def restore(self):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        if self.previous:
            sys.unraisablehook = self.previous_unraisable
        self.previous = {}

    def check(self):
        if self.came:
            raise self.came


class EpochProgress:
    """Per-batch bookkeeping of one epoch: running loss/accuracy, a tqdm bar, and the divergence check."""

    def __init__(self, epoch, epochs, steps, quiet, lr, ctrl_c=None):
        from tqdm import tqdm

        self.epoch, self.lr = epoch, lr
        self.ctrl_c = ctrl_c or CtrlC()
        self.order_digest = None  # set by train_epoch: the fingerprint of this epoch's shuffle
        self.losses = []
        self.loss_sum = self.correct = self.seen = 0
        # disable=None: no bar when stderr is not a terminal (logs, reproduce.py's subprocesses).
        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", leave=False, unit="batch",
                        disable=True if quiet else None, mininterval=0.5)

    def step(self, loss, correct, n):
        self.ctrl_c.check()
        loss = float(loss)
        if not math.isfinite(loss):
            raise Diverged(f"the training loss became {loss} at epoch {self.epoch}, step {len(self.losses) + 1}; "
                           f"the learning rate (--lr {self.lr:g}) is too high — lower it. Nothing was written")
        self.losses.append(loss)
        self.loss_sum += loss * n
        self.correct += int(correct)
        self.seen += n
        self.bar.update(1)
        if len(self.losses) % 100 == 0 and not self.bar.disable:
            self.bar.set_postfix_str(f"loss {self.running_loss:.4f} acc {self.running_acc:.2%}", refresh=False)

    @property
    def running_loss(self):
        return self.loss_sum / max(self.seen, 1)

    @property
    def running_acc(self):
        return self.correct / max(self.seen, 1)

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
        self.bar.close()
        return False


class Run:
    """The record of one run. ``save_checkpoint(path, state, record, iteration_losses)`` is the script's."""

    def __init__(self, model, framework, config, args, save_checkpoint):
        self.model, self.framework, self.config = model, framework, config
        self.epochs_total, self.quiet = args.epochs, args.quiet
        self.dir = Path(args.out_dir) / model
        self.checkpoint = Path(args.checkpoint)
        self.save_checkpoint = save_checkpoint
        if getattr(args, "scratch_note", None):
            print(args.scratch_note, flush=True)
        check_writable(self.dir, "--out-dir")
        if not args.eval_only:
            if self.checkpoint.is_dir():
                raise UsageError(f"--checkpoint {self.checkpoint} is a folder; give the path of a file")
            check_writable(self.checkpoint.parent, "--checkpoint", shown=self.checkpoint)
        self.history, self.iteration_losses = [], []
        self.state = self.last = None
        self.eval_only = args.eval_only
        self.figures = not getattr(args, "no_figures", False)
        self.eval_train = getattr(args, "eval_train", "every")
        self.trained_seconds = None
        self.ended_at = self.ended_seconds = None  # set once, when the first record is written (finished)
        # what trained the weights (common/reuse.py); --eval-only takes the checkpoint's instead
        self.code = script_digest(model)
        self.machine = machine_id()
        self.started = time.perf_counter()
        self.ctrl_c = CtrlC()
        self.locks = []
        self.lock()

    def lock(self):
        """Refuse, before any training, an output folder or checkpoint that another run is writing.

        The lock lives where the files go: ``<out-dir>/<model>/.lock`` (every output but the checkpoint is in
        that folder, and each model has its own, so two models into one --out-dir never collide) and, when this
        run will write a checkpoint, ``.<name>.lock`` beside it (runs into two folders onto one checkpoint
        would replace each other's). --eval-only writes into the folder but only reads the checkpoint, which
        a training run replaces by a rename, so it locks the folder alone.
        """
        try:
            self.locks.append(take(self.dir / ".lock", lambda holder: (
                f"--out-dir {self.dir.parent}: {self.dir} is in use by another run ({holder}); wait for it to end, "
                f"or give another --out-dir")))
            if not self.eval_only:
                self.locks.append(take(self.checkpoint.with_name(f".{self.checkpoint.name}.lock"), lambda holder: (
                    f"--checkpoint {self.checkpoint} is in use by another run ({holder}); wait for it to end, or "
                    f"give another --checkpoint")))
        except BaseException:
            self.release()
            raise

    def release(self):
        """Let the next run have this run's output folder and checkpoint (done once; later calls do nothing)."""
        for lock in self.locks:
            if lock is not None:
                lock.release()

    # --- training -------------------------------------------------------------------------------------
    def epochs(self):
        return range(1, self.epochs_total + 1)

    def progress(self, epoch, steps):
        self.ctrl_c.check()
        self.current = EpochProgress(epoch, self.epochs_total, steps, self.quiet, self.config.get("lr", 0),
                                     self.ctrl_c)
        return self.current

    def evaluates_train(self, epoch):
        """Whether end_epoch wants the whole training set's logits this epoch (--eval-train)."""
        return self.eval_train == "every" or epoch == self.epochs_total

    def end_epoch(self, state, train_logits, train_labels, test_logits, test_labels):
        """Record an epoch from the model's logits on the test set and, if evaluates_train(epoch), on the whole
        training set (else train_logits is None, and the epoch's batch means stand for the training set)."""
        progress = self.current
        self.ctrl_c.check()
        entry = {"epoch": progress.epoch}
        if train_logits is not None:
            entry.update(self.evaluate(train_logits, train_labels, test_logits, test_labels))
        else:
            entry.update(self.evaluate_test(test_logits, test_labels))
        entry.update({"train_loss_running": progress.running_loss, "train_acc_running": progress.running_acc,
                      "seconds": progress.seconds, "seconds_with_eval": time.perf_counter() - progress.started,
                      "order_digest": progress.order_digest})
        if not all(math.isfinite(entry.get(k, 0.0)) for k in ("train_loss", "test_loss")):
            raise Diverged(f"the model's outputs became infinite at epoch {progress.epoch}; the learning rate "
                           f"(--lr {self.config.get('lr', 0):g}) is too high — lower it. Nothing was written")
        self.history.append(entry)
        self.iteration_losses.extend(progress.losses)
        self.state = state
        train = (f"train loss {entry['train_loss']:.4f} acc {entry['train_acc']:.2%}" if "train_loss" in entry else
                 f"train loss {entry['train_loss_running']:.4f} acc {entry['train_acc_running']:.2%} (batch means)")
        print(f"epoch {progress.epoch:>2}/{self.epochs_total}  {train}  test loss {entry['test_loss']:.4f} "
              f"acc {entry['test_acc']:.2%}  {entry['seconds']:.2f} s", flush=True)

    def evaluate(self, train_logits, train_labels, test_logits, test_labels):
        return {"train_loss": metrics.cross_entropy(train_logits, train_labels),
                "train_acc": metrics.accuracy(train_logits, train_labels),
                **self.evaluate_test(test_logits, test_labels)}

    def evaluate_test(self, test_logits, test_labels):
        self.last = (test_logits, test_labels)
        return {"test_loss": metrics.cross_entropy(test_logits, test_labels),
                "test_acc": metrics.accuracy(test_logits, test_labels)}

    def __enter__(self):
        self.ctrl_c.install()
        return self

    def __exit__(self, kind, value, traceback):
        self.ctrl_c.restore()
        try:
            if (kind is not None and issubclass(kind, KeyboardInterrupt)) or (kind is None and self.ctrl_c.came):
                # the latter: a signal dropped at the very end
                terminated = kind is SigTerm or (kind is None and self.ctrl_c.came is SigTerm)
                raise self.keep_interrupted(terminated) from None
        finally:
            if kind is not None or self.ctrl_c.came:  # the run ends here; else finish() follows, still locked
                self.release()
        return False

    def keep_interrupted(self, terminated=False):
        error = Terminated if terminated else Interrupted
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        if not self.history:
            return error(f"{what} before the first epoch ended; nothing was written")
        done = self.history[-1]["epoch"]
        checkpoint = interrupted_path(self.checkpoint)
        record_path = self.dir / "metrics.interrupted.json"
        self.save_checkpoint(checkpoint, self.state, self.checkpoint_record(), self.iteration_losses)
        write_json(record_path, self.record(self.history[-1], interrupted=True))
        when = f"during epoch {done + 1}" if done < self.epochs_total else "after the last epoch"
        return error(f"{what} {when}; epoch {done}'s results are in {record_path} "
                     f"and {checkpoint} (earlier outputs untouched)")

    # --- evaluation only --------------------------------------------------------------------------------
    def restore(self, record, iteration_losses):
        """Take config, history and training time from a checkpoint's record, for --eval-only.

        ``config`` stays the training's (what made the weights); ``config["evaluated_with"]`` holds the data
        settings of this evaluation, which ``final`` was measured with.
        """
        evaluated = {k: self.config.get(k) for k in ("limit_train", "dtype", "device", "permute_pixels")
                     if k in self.config}
        trained = record["config"]
        differs = {k: v for k, v in evaluated.items() if k in trained and trained[k] != v}
        if differs:
            print(f"{self.model}: note: evaluating with " + ", ".join(f"{k} {v}" for k, v in differs.items())
                  + "; the checkpoint was trained with " + ", ".join(f"{k} {trained[k]}" for k in differs),
                  flush=True)
        self.config = {**trained, "eval_only": True, "evaluated_with": evaluated}
        self.history = record["history"]
        self.trained_seconds = record.get("seconds_total")
        self.code = record.get("code")  # None for a checkpoint saved before code digests
        self.machine = record.get("machine")
        self.trained_at = record.get("finished_at")  # None for a checkpoint saved before this was recorded
        self.iteration_losses = list(np.asarray(iteration_losses, dtype=np.float64))

    # --- outputs ----------------------------------------------------------------------------------------
    def checkpoint_record(self):
        return {"format": FORMAT, "model": self.model, "framework": self.framework, "config": self.config,
                "history": self.history, "seconds_total": self.finished()[1], "code": self.code,
                "machine": self.machine, "finished_at": self.finished()[0]}

    def finished(self):
        """(when the run ended, its seconds): taken once, so the checkpoint's record and metrics.json agree
        exactly, and --eval-only carries both over unchanged."""
        if self.ended_at is None:
            self.ended_at, self.ended_seconds = now(), self.elapsed()
        return self.ended_at, self.ended_seconds

    def elapsed(self):
        return time.perf_counter() - self.started

    def record(self, final, interrupted=False, confusion=None):
        out = {"model": self.model, "framework": self.framework, "config": self.config,
               "history": self.history,
               # an interrupted run's last epoch may not have evaluated the training set: null then
               "final": {k: final.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
               "confusion_matrix": confusion, "seconds_total": self.finished()[1], "versions": versions(),
               "code": self.code, "machine": self.machine, "finished_at": self.finished()[0]}
        if self.eval_only:  # the run's time, code and date are the training's; this evaluation's are beside them
            out["seconds_total"], out["eval_seconds"] = self.trained_seconds, self.elapsed()
            out["finished_at"], out["evaluated_at"] = self.trained_at, now()
            out.update(self.verified_before())
        if interrupted:
            out["interrupted"] = True
        return out

    def verified_before(self):
        """--eval-only over the record of the same training run (same history): what that record knows of the
        training and the checkpoint may not carry: its code_verified (the code digests whose first epoch matched
        that run, common/reuse.py), and its code, machine and finishing time where the checkpoint has none."""
        try:
            earlier = json.loads((self.dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if earlier.get("history") != self.history:
            return {}
        kept = {"code_verified": earlier["code_verified"]} if "code_verified" in earlier else {}
        for key, own in (("code", self.code), ("machine", self.machine), ("finished_at", self.trained_at)):
            if own is None and earlier.get(key) is not None:
                kept[key] = earlier[key]
        return kept

    def finish(self, test_images, final=None):
        """Write metrics.json, the four figures and (after training) the checkpoint; returns the record.

        The files switch over as one set (common.io.OutputSet): a failure or Ctrl-C while they are written
        leaves every earlier output as it was. The run's locks go as it returns or raises.
        """
        try:
            return self.write_outputs(test_images, final)
        finally:
            self.release()

    def write_outputs(self, test_images, final):
        final = final or self.history[-1]
        warning = None if self.eval_only else above_chance(final, self.history[-1], self.config.get("lr"))
        if warning:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        logits, labels = self.last
        predictions = np.asarray(logits).argmax(axis=1)
        confusion = metrics.confusion_counts(labels, predictions)
        name = TITLES.get(self.model, self.model)
        title = f"{name}: test accuracy {final['test_acc']:.2%}"
        with OutputSet() as outputs:
            if self.figures:
                plots.plot_loss(outputs.path(self.dir / "loss.png"), f"{name}: loss", self.history,
                                self.iteration_losses)
                plots.plot_confusion_matrix(outputs.path(self.dir / "confusion_matrix.png"), title, confusion)
                plots.plot_top3(outputs.path(self.dir / "top3.png"), title, logits, labels, test_images)
                plots.plot_mistakes(outputs.path(self.dir / "mistakes.png"), title, logits, labels, test_images)
            if not self.eval_only:
                self.save_checkpoint(outputs.path(self.checkpoint), self.state, self.checkpoint_record(),
                                     self.iteration_losses)
            record = self.record(final, confusion=confusion.tolist())
            write_json(outputs.path(self.dir / "metrics.json"), record)
        where = f"{self.dir}/" + ("" if self.eval_only else f" and {self.checkpoint}")
        if outputs.interrupted:
            raise Interrupted(f"interrupted while the outputs were being switched over; they were complete and "
                              f"are all in {where}")
        print(f"{self.model}: test accuracy {final['test_acc']:.2%}, test loss {final['test_loss']:.4f}; "
              f"{self.elapsed():.1f} s; outputs in {where}", flush=True)
        return record


CHANCE_LOSS = math.log(10)  # nats: the cross-entropy of guessing 1/10 for every digit


def above_chance(final, last_epoch, lr):
    """The warning for a run that ended with a finite loss no better than guessing (the learning rate blew the
    weights up without reaching inf: a student's most common first failure), else None."""
    loss = final.get("train_loss")
    loss = last_epoch.get("train_loss_running") if loss is None else loss
    if loss is None or not math.isfinite(loss) or loss <= CHANCE_LOSS:
        return None
    return (f"the training loss ended at {loss:.3f} nats, no better than chance (ln 10 = {CHANCE_LOSS:.2f}): "
            f"the learning rate (--lr {lr:g}) is probably too high; try a tenth of it")


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions():
    """Versions of what produced the numbers; torch only if the script imported it."""
    out = {"python": platform.python_version()}
    for name in ("numpy", "matplotlib", "scikit-learn", "torch"):
        if name == "torch" and "torch" not in sys.modules:
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def script_digest(model):
    """The code digest of ``model``'s script (common/reuse.py), or None when the kit has no such script."""
    script = ROOT / f"{model}.py"
    return code_digest(script) if script.is_file() else None


def dump_config(args, **extra):
    """The run's hyperparameters as a JSON-able dict: every flag that changes the result, plus ``extra``."""
    keys = ("epochs", "lr", "batch_size", "seed", "limit_train", "dtype", "device", "optimizer", "momentum",
            "init", "shuffle", "permute_pixels", "eval_train")
    config = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    config.update(extra)
    json.dumps(config)
    return config
