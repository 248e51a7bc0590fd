"""Subscription.next_within: the next watch item or a timeout, and cancellation that sticks.

The orchestrators and the role manager wait for "the next store change or my next timer" with
it. A cancellation that arrived while it unwound its timer used to be swallowed, so a leader's
orchestrator went on running after its manager stopped (CI, stop 9).
"""

from __future__ import annotations

import asyncio

import pytest
from storecheck import service

from swarmd import errors
from swarmd.manager.store import Commit, Event, MemoryStore
from swarmd.testing.fake_clock import FakeClock


class OnePassClock(FakeClock):
    """A clock whose every sleep ends after one pass of the event loop."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def test_next_within_returns_an_item_that_arrives_before_the_timeout():
    store = MemoryStore()
    clock = FakeClock()
    async with store.watch() as sub:
        waiting = asyncio.create_task(sub.next_within(clock, 5.0))
        await asyncio.sleep(0)
        await store.update(lambda tx: tx.services.create(service("s1", "web")))
        item = await asyncio.wait_for(waiting, 1)
        assert isinstance(item, Event)
        assert item.obj.id == "s1"
        assert isinstance(await sub.next_within(clock, 5.0), Commit)
    assert clock.sleepers == 0  # the timer was taken down


async def test_next_within_returns_none_once_the_time_passes():
    store = MemoryStore()
    clock = FakeClock()
    async with store.watch() as sub:
        waiting = asyncio.create_task(sub.next_within(clock, 5.0))
        await clock.advance(0)
        assert clock.sleepers == 1
        await clock.advance(4.9)
        assert not waiting.done()
        await clock.advance(0.2)
        assert await asyncio.wait_for(waiting, 1) is None
        assert await sub.next_within(clock, 0) is None
        # An item that arrived meanwhile is not lost to the timeout.
        await store.update(lambda tx: tx.services.create(service("s1", "web")))
        assert isinstance(await sub.next_within(clock, 0.0), Event)


async def test_next_within_without_a_limit_waits_for_the_item():
    store = MemoryStore()
    async with store.watch() as sub:
        waiting = asyncio.create_task(sub.next_within(FakeClock(), None))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await store.update(lambda tx: tx.services.create(service("s1", "web")))
        assert isinstance(await asyncio.wait_for(waiting, 1), Event)


async def test_next_within_ends_like_the_iterator_after_close_and_overflow():
    store = MemoryStore()
    sub = store.watch()
    waiting = asyncio.create_task(sub.next_within(FakeClock(), 5.0))
    await asyncio.sleep(0)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)

    small = store.watch(maxsize=1)
    await store.update(lambda tx: tx.services.create(service("s2", "web")))
    with pytest.raises(errors.Unavailable, match="overflow"):
        await small.next_within(FakeClock(), 5.0)


@pytest.mark.parametrize("passes", range(8))
async def test_a_cancelled_caller_is_cancelled_whenever_the_cancellation_comes(passes: int):
    # The timer ends after one loop pass; cancel the caller after 0..7 passes, so one of them
    # lands while it takes its timer down. It must end cancelled unless it had already returned.
    store = MemoryStore()
    async with store.watch() as sub:
        waiting = asyncio.create_task(sub.next_within(OnePassClock(), 5.0))
        for _ in range(passes):
            await asyncio.sleep(0)
        returned_already = waiting.done()
        waiting.cancel()
        await asyncio.wait({waiting})
        assert waiting.cancelled() != returned_already
        if returned_already:
            assert waiting.result() is None
