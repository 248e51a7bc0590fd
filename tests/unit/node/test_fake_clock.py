"""FakeClock wakes sleepers in deadline order only when advanced."""

from __future__ import annotations

import asyncio

from swarmd.testing.fake_clock import FakeClock


async def test_sleepers_wake_in_order_when_time_is_advanced() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, d: float) -> None:
        await clock.sleep(d)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("b", 2)), asyncio.create_task(sleeper("a", 1))]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    await clock.advance(0.5)
    assert woke == []
    await clock.advance(1.0)
    assert woke == ["a"]
    await clock.advance(1.0)
    assert woke == ["a", "b"]
    assert clock.monotonic() == 2.5
    await asyncio.gather(*tasks)
