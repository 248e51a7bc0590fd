"""Time as a seam: components take a Clock so tests can drive time with swarmd.testing.FakeClock."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Source of time for a component.

    `now()` is wall-clock seconds since the epoch (for timestamps shown to users);
    `monotonic()` is for measuring intervals; `sleep()` suspends the calling task.
    All three are loop-confined: call them from the event loop's thread only.
    """

    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


__all__ = ["Clock", "SystemClock"]
