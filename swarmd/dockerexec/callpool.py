"""CallPool: a fixed set of threads that run blocking engine calls, urgent ones first.

Used by DockerAdapter (adapter.py) only. A plain ThreadPoolExecutor serves calls in arrival
order, so when 50 tasks are created at once, the start of the first container queues behind
49 creates and nothing runs until almost everything is created (benchmarks.md, "Workload
path"). Here each call carries a priority: a queued start (or stop, kill, inspect) is taken
before any queued create, while the number of calls in flight at the engine stays the same.
Within one priority, calls run in arrival order.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

#: Priorities: lower runs first.
URGENT = 0
NORMAL = 1

_Job = tuple[Future[Any], Callable[[], Any]]
_STOP = 1 << 30  # sorts after every real priority


class CallPool:
    """`workers` daemon threads (started on first use) draining one priority queue."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, priority: int, fn: Callable[[], T]) -> Future[T]:
        """Queue `fn`; its result or exception lands in the returned future.

        A future cancelled while still queued is dropped without running.
        """
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} pool is shut down")
            if not self._threads:
                self._start_threads()
            self._queue.put((priority, next(self._seq), (fut, fn)))
        return fut

    def _start_threads(self) -> None:
        for i in range(self._workers):
            # Daemon: a thread stuck in an HTTP call must not keep the process alive.
            thread = threading.Thread(target=self._work, name=f"{self._name}_{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            fut, fn = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as err:  # noqa: BLE001 - handed to the awaiting side
                fut.set_exception(err)
            else:
                fut.set_result(result)

    def shutdown(self) -> None:
        """Cancel the queued calls and let the threads end; running calls finish on their own."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    _, _, job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
            for _ in self._threads:
                self._queue.put((_STOP, next(self._seq), None))


__all__ = ["NORMAL", "URGENT", "CallPool"]
