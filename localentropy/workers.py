"""Worker processes that stop at once on Ctrl-C: spawned, deaf to SIGINT, terminated by their parent.

A terminal's Ctrl-C reaches every process of the foreground group. Workers that heard it would each
print a traceback (and a manager process, serving the progress queues, would die first and make the
others print more); a pool that waited for its running tasks would keep the user waiting for minutes.
Here only the parent hears it: ``WorkerPool`` starts its workers and its manager with SIGINT ignored,
and when the parent leaves the ``with`` block by an exception (KeyboardInterrupt included) it
terminates the workers and the manager before re-raising, so the command returns within a moment and
prints one line. Spawned, not forked: numba's, torch's and the BLAS's thread pools are not fork-safe.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from multiprocessing.managers import SyncManager


def ignore_interrupts() -> None:
    """A worker's initializer: SIGINT is its parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerPool:
    """``with WorkerPool(n) as pool``: ``pool.submit(fn, *args, **kw)`` → an ``AsyncResult``;
    ``pool.queue()`` → a queue workers can put progress on; ``pool.wait_any(pending, timeout)`` → the
    finished ones. Leaving the block normally closes and joins the pool; leaving it by an exception
    terminates every worker at once."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._ctx = mp.get_context("spawn")
        self._pool = None
        self._manager = None

    def __enter__(self) -> "WorkerPool":
        self._pool = self._ctx.Pool(self.workers, initializer=ignore_interrupts)
        return self

    def queue(self):
        """A queue shared with the workers (through a manager process started on first use)."""
        if self._manager is None:
            self._manager = SyncManager(ctx=self._ctx)
            self._manager.start(ignore_interrupts)
        return self._manager.Queue()

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

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._pool.close()
                self._pool.join()
            else:
                self._pool.terminate()
                self._pool.join()
        finally:
            if self._manager is not None:
                self._manager.shutdown()
