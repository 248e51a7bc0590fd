"""What the workload scenarios record: samples, scenarios, a timeline of first sightings, polling.

Used by bench/workload.py and bench/nodefailure.py; bench/report.py renders the results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.systems import ContainerTimes

#: Poll interval of every wait that is timed (the issue's 50 ms).
POLL = 0.05


@dataclass
class Sample:
    system: str
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    samples: list[Sample] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Timeline:
    """Seconds since t0 at which things were first seen; becomes a sample's detail."""

    def __init__(self, wall0: float, t0: float) -> None:
        self.wall0 = wall0
        self.t0 = t0
        self.marks: dict[str, float] = {}

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def mark(self, what: str) -> None:
        self.marks.setdefault(what, round(self.now(), 3))

    def containers(self, times: ContainerTimes) -> None:
        """dockerd's own timestamps of the containers made during this sample.

        first_started is not in bench/report.py's breakdown table; it is in the JSON results.
        """
        created = [c - self.wall0 for c in times.created if c >= self.wall0 - 0.01]
        started = [s - self.wall0 for s in times.started if s >= self.wall0 - 0.01]
        if created:
            self.marks["first_created"] = round(min(created), 3)
            self.marks["last_created"] = round(max(created), 3)
        if started:
            self.marks["first_started"] = round(min(started), 3)
            self.marks["last_started"] = round(max(started), 3)


async def poll(
    check: Callable[[], Awaitable[bool]], wait_s: float, what: str, interval: float = POLL
) -> None:
    deadline = time.monotonic() + wait_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {wait_s}s waiting for {what}")
        await asyncio.sleep(interval)
