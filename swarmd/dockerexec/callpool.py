"""CallPool: a fixed set of threads that run blocking engine calls, urgent ones first.

Used by DockerAdapter (adapter.py) only. A plain ThreadPoolExecutor serves calls in arrival
order, so when 50 tasks are created at once, the start of the first container queues behind
49 creates and nothing runs until almost everything is created (benchmarks.md, "Workload
path"). Here each call carries a class (callqueue.py, the policy): a queued start (or stop,
kill, inspect) is taken before anything else, and only a few creates are in flight at once,
so a thread is free for each start as soon as it is queued. Within one class, calls run in
arrival order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from swarmd.dockerexec.callqueue import CREATE, NORMAL, URGENT, CallQueue

T = TypeVar("T")

_Job = tuple[Future[Any], Callable[[], Any]]


class CallPool:
    """`workers` daemon threads (started on first use) draining one CallQueue.

    `limits` caps the calls of a class in flight at once (CallQueue).
    """

    def __init__(self, workers: int, name: str, limits: Mapping[int, int] | None = None) -> None:
        self._workers = workers
        self._name = name
        self._queue: CallQueue[_Job] = CallQueue(limits)
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, cls: int, fn: Callable[[], T]) -> Future[T]:
        """Queue `fn` in call class `cls`; its result or exception lands in the returned future.

        A future cancelled while still queued is dropped without running.
        """
        fut: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self._name} pool is shut down")
            if not self._threads:
                self._start_threads()
            self._queue.push(cls, (fut, fn))
            self._cond.notify()
        return fut

    def _start_threads(self) -> None:
        for i in range(self._workers):
            # Daemon: a thread stuck in an HTTP call must not keep the process alive.
            thread = threading.Thread(target=self._work, name=f"{self._name}_{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next(self) -> tuple[int, _Job] | None:
        """Wait for a call this thread may run; None once the pool is shut down."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                picked = self._queue.pop()
                if picked is not None:
                    return picked
                self._cond.wait()

    def _work(self) -> None:
        while (picked := self._next()) is not None:
            cls, (fut, fn) = picked
            try:
                if fut.set_running_or_notify_cancel():
                    try:
                        result = fn()
                    except BaseException as err:  # noqa: BLE001 - handed to the awaiting side
                        fut.set_exception(err)
                    else:
                        fut.set_result(result)
            finally:
                with self._cond:
                    self._queue.done(cls)
                    # A capped class may have a queued call that can run now.
                    self._cond.notify()

    def shutdown(self) -> None:
        """Cancel the queued calls and let the threads end; running calls finish on their own."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for fut, _ in self._queue.drain():
                fut.cancel()
            self._cond.notify_all()


__all__ = ["CREATE", "NORMAL", "URGENT", "CallPool"]
