"""Atomic file output: every PNG, JSON and checkpoint is written to a temp file and renamed into place.

A crash, Ctrl-C or full disk mid-write therefore never leaves a half-written file where a good one was.
"""

import contextlib
import errno
import json
import math
import os
import signal
import tempfile
import threading
from pathlib import Path

from common.errors import UsageError, UserError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``, else removed.

    The temp name keeps ``path``'s suffix, so writers that infer a format from it (savefig) still work.
    """
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def temp_beside(path):
    """A new empty temporary file in ``path``'s folder, named ``.<stem>.XXXX.tmp<suffix>``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs should look like any other file
    return Path(tmp)


class OutputSet:
    """Several output files that switch over as one set: all new, or (on any failure or Ctrl-C) all old.

        with OutputSet() as outputs:
            plot(outputs.path("figures/x/loss.png"))      # written to a temp file beside the final one
            write_json(outputs.path("figures/x/metrics.json"), record)
        # here every file has been renamed into place, with Ctrl-C held back during the renames

    ``interrupted`` is True afterwards if Ctrl-C came during the switch (the set is then complete).
    """

    def __init__(self):
        self.pending, self.interrupted = [], False

    def path(self, final):
        tmp = temp_beside(Path(final))
        self.pending.append((tmp, Path(final)))
        return tmp

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        try:
            if kind is None:
                with sigint_held() as came:
                    for tmp, final in self.pending:
                        os.replace(tmp, final)
                self.interrupted = bool(came)
        finally:
            for tmp, _ in self.pending:
                if tmp.exists():
                    tmp.unlink()
        return False


@contextlib.contextmanager
def sigint_held():
    """Hold Ctrl-C back while the block runs (main thread only); yields a list that is non-empty if one came."""
    came = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    previous = signal.signal(signal.SIGINT, lambda *_: came.append(True))
    try:
        yield came
    finally:
        signal.signal(signal.SIGINT, previous)


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def strict_json(obj, **kwargs):
    """``obj`` as strict JSON text: NaN and infinity, which JSON has no tokens for, are written as null.

    Where a dict had any, it gains "non_finite_as_null" saying how many, so a null is never mistaken for
    a value that was missing.
    """
    count = [0]

    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            count[0] += 1
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    clean = finite(obj)
    if count[0] and isinstance(clean, dict):
        clean["non_finite_as_null"] = f"{count[0]} NaN or infinite number(s) are written as null"
    return json.dumps(clean, allow_nan=False, **kwargs)


def write_json(path, obj):
    with atomic_path(path) as tmp:
        tmp.write_text(strict_json(obj, indent=2) + "\n")


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_writable(folder, what, shown=None):
    """Fail early, before any training, if ``folder`` cannot hold our outputs.

    The message names ``what`` and ``shown`` (default: ``folder``), e.g. "--checkpoint" and the file's path.
    """
    folder = Path(folder)
    shown = folder if shown is None else shown
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{what} {shown}: {parent} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        reason = e.strerror or str(e)
        if e.errno == errno.ENOENT:  # e.g. /proc: the folder is there but takes no new entries; not "no such file"
            existing = next(p for p in (folder, *folder.parents) if p.exists())
            reason = f"the folder {existing} exists but does not accept new files or folders"
        raise UsageError(f"cannot write to {what} {shown}: {reason}") from None
