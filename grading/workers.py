"""A few long-lived worker processes, each doing one task at a time under a time and a memory limit.

    pool = WorkerPool(work, processes=2, timeout_s=120, memory_mb=2048, prepare=prepare)
    for task, result in pool.map(tasks):     # in completion order
        ...

The workers are forked from the caller, so what it loaded before (the MNIST test set) is shared, not copied
or reloaded. ``work(task)`` runs with the address space capped at what the worker already maps plus
``memory_mb`` (RLIMIT_AS) — ``prepare(task)`` runs before the cap, for imports such as torch's — and NumPy on
one BLAS thread. A task over ``timeout_s`` has its worker killed; a worker that dies (out of memory, a crash)
is replaced. Either way that task's result is :func:`lost` and the other tasks go on.
"""

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections import deque

from threadpoolctl import threadpool_limits


def lost(status, message):
    """The result of a task whose worker was stopped or died."""
    return {"status": status, "notes": [message]}


class Worker:
    def __init__(self, work, prepare, memory_bytes):
        context = multiprocessing.get_context("fork")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, work, prepare, memory_bytes), daemon=True)
        self.process.start()
        child.close()
        self.task = self.started = None

    def give(self, task):
        self.task, self.started = task, time.monotonic()
        try:
            self.conn.send(task)
        except OSError:
            pass  # the worker is gone: its pipe reads as closed, and collect() says so

    def stop(self):
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


class WorkerPool:
    def __init__(self, work, processes, timeout_s, memory_mb, prepare=None):
        self.work, self.prepare = work, prepare or (lambda task: None)
        self.processes, self.timeout_s = processes, timeout_s
        self.memory_bytes = memory_mb * 2**20

    def map(self, tasks):
        """Yield (task, result) for every task, as they finish."""
        pending = deque(tasks)
        workers = [Worker(self.work, self.prepare, self.memory_bytes)
                   for _ in range(min(self.processes, len(pending)))]
        try:
            while pending or any(w.task is not None for w in workers):
                for worker in workers:
                    if worker.task is None and pending:
                        worker.give(pending.popleft())
                busy = [w for w in workers if w.task is not None]
                deadline = min(w.started for w in busy) + self.timeout_s
                ready = multiprocessing.connection.wait([w.conn for w in busy],
                                                        timeout=max(0.0, deadline - time.monotonic()))
                for worker in busy:
                    result = self.collect(worker, ready)
                    if result is not None:
                        yield worker.task, result
                        if worker.process.is_alive():
                            worker.task = None
                        else:
                            workers[workers.index(worker)] = Worker(self.work, self.prepare, self.memory_bytes)
        finally:
            for worker in workers:
                worker.stop()

    def collect(self, worker, ready):
        """The worker's result if it has one, a lost result if it died or ran over time, else None."""
        if worker.conn in ready:
            try:
                return worker.conn.recv()
            except (EOFError, OSError):
                worker.process.join()
                code = worker.process.exitcode
                cause = (f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}")
                return lost("unreadable", f"the worker reading it died ({cause}: out of memory or a crash in a "
                                          f"library); nothing else was affected")
        if time.monotonic() - worker.started >= self.timeout_s:
            worker.process.kill()
            worker.process.join()
            return lost("unreadable", f"reading and evaluating it took over {self.timeout_s:g} s (--timeout); "
                                      f"stopped")
        return None


def serve(conn, work, prepare, memory_bytes):
    """A worker's life: take a task, run it under the memory cap, send the result; until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    with threadpool_limits(1, user_api="blas"):  # one BLAS thread a worker: the workers fill the cores
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            prepare(task)
            with memory_cap(memory_bytes):
                try:
                    result = work(task)
                except MemoryError:
                    result = lost("refused", "it needs more memory than a file is allowed (--memory-mb)")
            conn.send(result)


@contextlib.contextmanager
def memory_cap(extra_bytes):
    """RLIMIT_AS at the address space mapped now plus ``extra_bytes``, for the block (where the OS allows)."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        previous = resource.getrlimit(resource.RLIMIT_AS)
        cap = mapped + extra_bytes
        if previous[1] != resource.RLIM_INFINITY:
            cap = min(cap, previous[1])
        resource.setrlimit(resource.RLIMIT_AS, (cap, previous[1]))
    except (ImportError, OSError, ValueError):  # no /proc (macOS) or no rlimits (Windows): time limit only
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, previous)
