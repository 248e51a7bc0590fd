"""FakeClock: a Clock whose time moves only when a test says so.

`now()`/`monotonic()` read the fake time; `sleep(d)` suspends the caller until `advance()` moves
time to or past its wake-up point. `advance(d)` wakes sleepers in deadline order and yields to the
loop after each, so the woken tasks run before it returns. Prior art: trio's MockClock
(autojump), SwarmKit's fake clock in its raft tests. Loop-confined like every Clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """A manually advanced clock for deterministic tests of Clock-driven components."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall_offset = start
        self._t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._wall_offset + self._t

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many tasks are suspended in sleep() right now."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking every sleeper whose deadline is reached."""
        target = self._t + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._t = max(self._t, deadline)
            if not fut.done():
                fut.set_result(None)
            # Let the woken task (and what it schedules) run before time moves on.
            for _ in range(5):
                await asyncio.sleep(0)
        self._t = target
        for _ in range(5):
            await asyncio.sleep(0)


__all__ = ["FakeClock"]
