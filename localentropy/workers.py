"""Worker processes that stop at once on Ctrl-C: spawned, deaf to SIGINT, terminated by their parent.

A terminal's Ctrl-C reaches every process of the foreground group. Workers that heard it would each
print a traceback; a pool that waited for its running tasks would keep the user waiting for minutes.
Here only the parent hears it: ``WorkerPool`` creates its workers with SIGINT ignored from their first
instruction, and when the parent leaves the ``with`` block by an exception (KeyboardInterrupt
included) it terminates them before re-raising, so the command returns within a moment and prints one
line. Progress travels on one queue the workers inherit at start (no manager process, which would
itself be one more process to start, hear Ctrl-C and fail noisily when its parent leaves early).
Spawned, not forked: numba's, torch's and the BLAS's thread pools are not fork-safe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import defaultdict, deque
from contextlib import contextmanager

_INBOX = None  # in a worker: the pool's progress queue, inherited when the worker started


def _start_worker(inbox, parent: int) -> None:
    """A worker's initializer: SIGINT is its parent's to handle; the worker ends with its parent, however the
    parent ends (a SIGKILL or SIGTERM included, where no parent code runs to stop it); progress goes to
    ``inbox``."""
    global _INBOX
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    _INBOX = inbox


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel sends this process SIGTERM when its parent exits (prctl PR_SET_PDEATHSIG); if the
    parent is gone already, exit now. Elsewhere nothing (the parent's own exit path stops the workers)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


class Channel:
    """A progress channel between workers and the parent (``WorkerPool.queue``): pass ``channel.put`` to a
    task as its callback; the parent reads with ``channel.get_nowait()`` (``queue.Empty`` when none)."""

    def __init__(self, tag: int, pool: "WorkerPool | None" = None):
        self.tag = tag
        self._pool = pool

    def __getstate__(self):
        return {"tag": self.tag}  # a worker needs the tag only

    def __setstate__(self, state):
        self.tag, self._pool = state["tag"], None

    def put(self, item) -> None:
        if _INBOX is None:
            raise RuntimeError("Channel.put is for a WorkerPool's workers")
        _INBOX.put((self.tag, item))

    def get_nowait(self):
        return self._pool._next(self.tag)


class WorkerPool:
    """``with WorkerPool(n) as pool``: ``pool.submit(fn, *args, **kw)`` → an ``AsyncResult``;
    ``pool.queue()`` → a `Channel` workers can put progress on; ``pool.wait_any(pending, timeout)`` → the
    finished ones. Leaving the block normally closes and joins the pool; leaving it by an exception
    terminates every worker at once."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._ctx = _DeafContext()
        self._pool = None
        self._inbox = None
        self._held: dict = defaultdict(deque)
        self._tags = 0

    def __enter__(self) -> "WorkerPool":
        try:
            self._inbox = self._ctx.Queue()
            self._pool = self._ctx.Pool(self.workers, initializer=_start_worker, initargs=(self._inbox, os.getpid()))
        except BaseException:  # Ctrl-C as the workers start: none of them outlives this
            self._stop()
            raise
        return self

    def queue(self) -> Channel:
        """A new progress channel (module docstring)."""
        self._tags += 1
        return Channel(self._tags, self)

    def _next(self, tag: int):
        """The oldest item put on channel ``tag``; items of other channels read meanwhile are held for them."""
        while not self._held[tag]:
            other, item = self._inbox.get_nowait()  # queue.Empty when nothing is waiting
            self._held[other].append(item)
        return self._held[tag].popleft()

    def submit(self, fn, *args, **kwargs):
        return self._pool.apply_async(fn, args, kwargs)

    @staticmethod
    def wait_any(pending, timeout: float = 0.2):
        """The results of ``pending`` that are ready, after waiting up to ``timeout`` seconds for one."""
        end = time.monotonic() + timeout
        while True:
            done = [p for p in pending if p.ready()]
            if done or time.monotonic() >= end:
                return done
            time.sleep(0.02)

    def _stop(self) -> None:
        """Every worker terminated (after an exception)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._stop()
            return
        self._pool.close()
        self._pool.join()


@contextmanager
def _interrupts_ignored():
    """SIGINT ignored in this process for the moment a child is created, so that the child ignores it
    from its first instruction (an ignored signal stays ignored across exec, and Python then installs no
    KeyboardInterrupt handler), not only once its initializer runs. A Ctrl-C that comes meanwhile is held
    back (blocked) and raised as the block ends, unless the child's creation cleared the mask (CPython's
    spawn does): then only the few microseconds after the exec lose it. Off the main thread (where handlers
    cannot be set) the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class _DeafProcess(mp.context.SpawnProcess):
    """A spawned process deaf to SIGINT from its start (``_interrupts_ignored``)."""

    @staticmethod
    def _Popen(process_obj):
        with _interrupts_ignored():
            return mp.context.SpawnProcess._Popen(process_obj)


class _DeafContext(mp.context.SpawnContext):
    """The spawn context, with processes deaf to SIGINT from their start."""

    Process = _DeafProcess
