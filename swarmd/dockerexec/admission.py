"""Admission: how many new tasks may be between their container's create and start at once.

Used by DockerController (controller.py) through the executor's one AdmissionGate; the pure
`Admission` decides, `AdmissionGate` is its asyncio shell. Why (benchmarks.md, "Workload
path"): when 50 tasks arrive at once, letting all 50 queue their creates made the engine
create far ahead of what it could start, so at the end a backlog of created containers waited
for their starts, and the first one ran late. The raw floor (8 threads, create then start back
to back) never has more than 8 containers between create and start. Admission gives the agent
the same shape: a task takes a slot before its create and gives it back once its start
returned (or it failed, was shut down or removed), and the tasks beyond the window wait in
arrival order. Creates and starts thus alternate per task, as on the floor.

A task created but not started (desired state READY: prepared, then paused) must not hold a
slot for ever: a slot held longer than `hold_limit` seconds is taken back.
"""

from __future__ import annotations

import asyncio
import collections

from swarmd.clock import Clock, SystemClock

#: Tasks between create and start at once: the engine pool's thread count (adapter.py).
DEFAULT_WINDOW = 8
#: A slot held longer than this is taken back (a prepared task that is not started).
DEFAULT_HOLD_LIMIT = 10.0


class Admission:
    """Slots held by task id, with the time each was taken, and the waiters in order. Pure."""

    def __init__(self, window: int, hold_limit: float, clock: Clock) -> None:
        if window < 1:
            raise ValueError(f"admission window must be at least 1, not {window}")
        self._window = window
        self._hold_limit = hold_limit
        self._clock = clock
        self._holders: dict[str, float] = {}
        self._waiting: collections.deque[str] = collections.deque()

    def request(self, task_id: str) -> bool:
        """True when `task_id` holds a slot now (it may already hold one); else it waits."""
        if task_id in self._holders:
            return True
        if len(self._holders) < self._window and not self._waiting:
            self._holders[task_id] = self._clock.monotonic()
            return True
        if task_id not in self._waiting:
            self._waiting.append(task_id)
        return False

    def release(self, task_id: str) -> list[str]:
        """`task_id` gives its slot back, or stops waiting; returns the tasks admitted now."""
        if task_id in self._waiting:
            self._waiting.remove(task_id)
        self._holders.pop(task_id, None)
        return self._admit()

    def expire(self) -> list[str]:
        """Take back the slots held past the hold limit; returns the tasks admitted now."""
        now = self._clock.monotonic()
        for task_id, since in list(self._holders.items()):
            if now - since >= self._hold_limit:
                del self._holders[task_id]
        return self._admit()

    def next_expiry(self) -> float | None:
        """Seconds until the oldest slot is taken back; None when no slot is held."""
        if not self._holders:
            return None
        oldest = min(self._holders.values())
        return max(0.0, oldest + self._hold_limit - self._clock.monotonic())

    def holds(self, task_id: str) -> bool:
        return task_id in self._holders

    def waiting(self) -> list[str]:
        """The waiting tasks, first in line first."""
        return list(self._waiting)

    def _admit(self) -> list[str]:
        admitted: list[str] = []
        now = self._clock.monotonic()
        while self._waiting and len(self._holders) < self._window:
            task_id = self._waiting.popleft()
            self._holders[task_id] = now
            admitted.append(task_id)
        return admitted


class AdmissionGate:
    """`await acquire(task_id)` until the task holds a slot; `release(task_id)` gives it back.

    Loop-confined. Releasing a task that holds nothing (or was taken back) does nothing, so
    every exit path of a controller may release.
    """

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        hold_limit: float = DEFAULT_HOLD_LIMIT,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._core = Admission(window, hold_limit, self._clock)
        self._waiters: dict[str, asyncio.Future[None]] = {}

    async def acquire(self, task_id: str) -> None:
        """Wait for a slot; a cancelled wait leaves the line."""
        if self._core.request(task_id):
            return
        fut = self._waiters.get(task_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._waiters[task_id] = fut
        try:
            while not fut.done():
                # Slots of paused tasks are taken back on time even if nobody releases.
                await self._until_admitted_or(fut, self._core.next_expiry())
                if not fut.done():
                    self._wake(self._core.expire())
        except BaseException:
            self._waiters.pop(task_id, None)
            self._wake(self._core.release(task_id))
            raise

    async def _until_admitted_or(self, fut: asyncio.Future[None], seconds: float | None) -> None:
        if seconds is None:
            await asyncio.wait({fut})
            return
        sleeper = asyncio.get_running_loop().create_task(self._clock.sleep(seconds))
        try:
            await asyncio.wait({fut, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()

    def release(self, task_id: str) -> None:
        """Give the slot back.

        A task still waiting for one stays in line: its acquire ends only by admission or by
        its own cancellation.
        """
        if task_id in self._waiters:
            return
        self._wake(self._core.release(task_id))

    def holds(self, task_id: str) -> bool:
        return self._core.holds(task_id)

    def _wake(self, admitted: list[str]) -> None:
        for task_id in admitted:
            fut = self._waiters.pop(task_id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)


__all__ = ["DEFAULT_HOLD_LIMIT", "DEFAULT_WINDOW", "Admission", "AdmissionGate"]
