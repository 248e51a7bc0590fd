"""PresentImages: which images this executor recently saw in the local engine, and checks of them.

One per DockerExecutor, shared by its DockerControllers (controller.py): when 50 tasks of one
service are prepared, the image is inspected once, not 50 times. An entry is only trusted for
a short time (`ttl`), since an image can be removed behind our back; a create that fails
because the image is gone after all forgets it (the next prepare looks again). Tasks that
arrive together also share one check in flight (`check_once`): before it, the 50 tasks of a
new service each queued an image inspect in front of their creates (benchmarks.md, "Workload
path"). Time comes from a Clock; loop-confined.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from swarmd.clock import Clock, SystemClock

DEFAULT_TTL = 10.0


class PresentImages:
    """Image references seen present, each until `ttl` seconds after it was last seen."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Clock | None = None) -> None:
        self._ttl = ttl
        self._clock = clock or SystemClock()
        self._until: dict[str, float] = {}
        # The check of an image in flight; this dict holds the reference until it ends.
        self._checks: dict[str, asyncio.Task[None]] = {}

    def seen(self, ref: str) -> None:
        """`ref` is present in the engine now."""
        self._until[ref] = self._clock.monotonic() + self._ttl

    def forget(self, ref: str) -> None:
        """`ref` turned out to be missing."""
        self._until.pop(ref, None)

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str):
            return False
        until = self._until.get(ref)
        if until is None:
            return False
        if self._clock.monotonic() >= until:
            del self._until[ref]
            return False
        return True

    async def check_once(self, ref: str, check: Callable[[], Awaitable[None]]) -> bool:
        """Run `check` (make sure `ref` is there) unless a check of `ref` is already running.

        Returns False when this call ran the check, True when it joined one already running.
        Every caller gets the check's error. A caller that is cancelled leaves the check
        running for the others.
        """
        running = self._checks.get(ref)
        joined = running is not None
        if running is None:
            running = asyncio.get_running_loop().create_task(_run(check), name=f"image-{ref}")
            self._checks[ref] = running
            running.add_done_callback(functools.partial(self._check_done, ref))
        await asyncio.shield(running)
        return joined

    def _check_done(self, ref: str, check: asyncio.Task[None]) -> None:
        if self._checks.get(ref) is check:
            del self._checks[ref]
        if not check.cancelled():
            check.exception()  # retrieved here too: every waiter may have been cancelled


async def _run(check: Callable[[], Awaitable[None]]) -> None:
    await check()


__all__ = ["DEFAULT_TTL", "PresentImages"]
