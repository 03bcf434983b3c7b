"""One run at a time per output: an OS lock on a hidden file where the run writes.

Two runs into one output folder (or onto one checkpoint) would both exit 0, and the later one's files would
replace the other's without a word. So a run takes, before it trains, an exclusive ``fcntl.flock`` on
``<out-dir>/<model>/.lock`` and, when it will write a checkpoint, on ``.<checkpoint's name>.lock`` beside it
(common/run.py); a second run that finds either taken refuses at once with one line naming the other run
(:class:`InUse`, exit 2).

flock is the kernel's: it belongs to the open file, so a run that crashes or is SIGKILLed never leaves a lock
that blocks the next one. A run that ends (well, by an error, by Ctrl-C or SIGTERM) removes its lock file; one
that was killed leaves the file, unlocked, and the next run simply takes it. The file holds the holder's pid,
host, start time and command (JSON), only so that a refusal can name it.

Where there is no fcntl (Windows) runs are not locked, as before: :func:`take` returns None. Nor are they on a
file system that refuses flock (ENOLCK, EOPNOTSUPP: some network mounts), rather than refusing every run there.
"""

import datetime
import json
import os
import shlex
import socket
import sys
import time
import weakref
from pathlib import Path

from common.errors import UsageError, UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class InUse(UsageError):
    """Another run holds the output folder or the checkpoint this run would write."""


class Lock:
    """An exclusive flock on ``path``, held until :meth:`release`, the end of the process, or the garbage
    collection of this object, whichever comes first."""

    def __init__(self, path, fd):
        self.path = path
        self._release = weakref.finalize(self, release, path, fd, os.getpid())

    def release(self):
        self._release()  # once; later calls do nothing

    @property
    def held(self):
        return self._release.alive


def release(path, fd, owner):
    if os.getpid() != owner:  # a forked child (cnn_numpy.py's worker) shares the lock: only the run ends it
        return
    try:
        os.unlink(path)  # while still locked: a run that opened the file meanwhile finds it gone and retries
    except OSError:
        pass
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)  # not only close(): a forked child's copy of the descriptor would keep it
    finally:
        os.close(fd)


def take(path, refusal):
    """Lock ``path`` (created if missing) for this process: a :class:`Lock`, or None where nothing can be locked.

    If another process holds it, raises ``InUse(refusal(holder))``, ``holder`` naming that process (pid, start
    time, command). Never waits.
    """
    if fcntl is None:
        return None
    path = Path(path)
    while True:
        fd = open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe(read_holder(fd))
            os.close(fd)
            raise InUse(refusal(holder)) from None
        except OSError:  # a file system without flock: run unlocked, as where there is no fcntl
            os.close(fd)
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the run that held it removed it as it ended, after this opened it: lock the one there now
    write_holder(fd)
    return Lock(path, fd)


def open_lock_file(path):
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: flock needs no write access, only naming us is lost
        try:
            return os.open(path, os.O_RDONLY)
        except OSError as e:
            raise UserError(f"cannot open the lock file {path}: {e.strerror or e}") from None
    except OSError as e:
        raise UserError(f"cannot create the lock file {path}: {e.strerror or e}") from None


def command():
    return " ".join(["python", *map(shlex.quote, sys.argv)]).replace("\n", " ")


def write_holder(fd):
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    except OSError:  # a lock file opened read-only: the lock holds all the same
        pass


def read_holder(fd, patience=1.0):
    """The holder's record, or None if it cannot be read (the holder writes it just after taking the lock: a
    refusal that comes in between waits for it, up to ``patience`` seconds)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            info = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
            if isinstance(info, dict) and "pid" in info:
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def describe(info):
    if info is None:
        return "its lock file does not say which"
    where = f" on {info['host']}" if info.get("host") not in (None, socket.gethostname()) else ""
    return f"pid {info['pid']}{where}, started {info.get('started', '?')}: `{info.get('command', '?')}`"
