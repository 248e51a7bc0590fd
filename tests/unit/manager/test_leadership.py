"""Leadership cell and run_while_leader: leader components run only while this manager leads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from swarmd.manager.leader import Component
from swarmd.manager.leadership import (
    LeadershipCell,
    LeaderState,
    StaticLeadership,
    run_while_leader,
    watch_leadership,
)


class Components:
    """Factory of component sets that records starts, stops and overlap between sets."""

    def __init__(self) -> None:
        self.sets_made = 0
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.active = 0
        self.max_active = 0

    def make(self) -> list[Component]:
        self.sets_made += 1
        n = self.sets_made
        return [Component(f"a{n}", self._loop(f"a{n}")), Component(f"b{n}", self._loop(f"b{n}"))]

    def _loop(self, name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            self.started.append(name)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                await asyncio.Event().wait()
            finally:
                # Cleanup that takes a few loop turns: a second set must not start meanwhile.
                for _ in range(5):
                    await asyncio.sleep(0)
                self.active -= 1
                self.stopped.append(name)

        return run


async def until(cond: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(10):
            while not cond():  # noqa: ASYNC110 - polls plain attributes of the recorder
                await asyncio.sleep(0.001)
    except TimeoutError:
        pytest.fail(f"timed out waiting: {what}")


def lead(cell: LeadershipCell, term: int, *, addr: str = "10.0.0.1:4242") -> None:
    cell.publish(is_leader=True, leader_id="me", leader_addr=addr, term=term)


def follow(cell: LeadershipCell, term: int, leader: str | None = "10.0.0.2:4242") -> None:
    cell.publish(
        is_leader=False, leader_id="other" if leader else None, leader_addr=leader, term=term
    )


@pytest.fixture
def components() -> Components:
    return Components()


async def test_cell_publish_bumps_seq_only_on_change() -> None:
    cell = LeadershipCell()
    assert cell.state() == LeaderState(False, None, None, 0, 0)
    follow(cell, 1)
    assert cell.state().seq == 1
    follow(cell, 1)  # identical: no change, no wake-up
    assert cell.state().seq == 1
    lead(cell, 2)
    assert (cell.is_leader(), cell.leader_id(), cell.leader_addr(), cell.state().seq) == (
        True,
        "me",
        "10.0.0.1:4242",
        2,
    )


async def test_cell_wait_change_returns_at_once_when_behind_and_blocks_when_current() -> None:
    cell = LeadershipCell()
    follow(cell, 1)
    assert (await cell.wait_change(0)).seq == 1
    waiter = asyncio.create_task(cell.wait_change(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    lead(cell, 2)
    state = await asyncio.wait_for(waiter, 5)
    assert state.is_leader
    assert state.term == 2


async def test_watch_leadership_yields_current_then_changes() -> None:
    cell = LeadershipCell()
    gen = watch_leadership(cell)
    first = await anext(gen)
    assert not first.is_leader
    lead(cell, 3)
    second = await asyncio.wait_for(anext(gen), 5)
    assert (second.is_leader, second.term) == (True, 3)
    await gen.aclose()


async def test_static_leadership_runs_components_until_cancelled(components: Components) -> None:
    runner = asyncio.create_task(run_while_leader(StaticLeadership("me"), components.make))
    await until(lambda: components.started == ["a1", "b1"], "components started")
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    # Cancelling the runner waited for every component's cleanup.
    assert sorted(components.stopped) == ["a1", "b1"]
    assert components.active == 0


async def test_follower_runs_nothing_until_elected(components: Components) -> None:
    cell = LeadershipCell()
    follow(cell, 1)
    runner = asyncio.create_task(run_while_leader(cell, components.make))
    await asyncio.sleep(0.02)
    assert components.started == []
    lead(cell, 2)
    await until(lambda: len(components.started) == 2, "components started on election")
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_losing_leadership_stops_set_before_the_next_one_starts(
    components: Components,
) -> None:
    cell = LeadershipCell()
    runner = asyncio.create_task(run_while_leader(cell, components.make))
    lead(cell, 1)
    await until(lambda: components.started == ["a1", "b1"], "first set started")
    follow(cell, 2)
    await until(lambda: sorted(components.stopped) == ["a1", "b1"], "first set stopped")
    assert components.sets_made == 1
    lead(cell, 3)
    await until(lambda: components.started[2:] == ["a2", "b2"], "second set started")
    assert components.max_active == 2  # one set of two, never two sets at once
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert components.active == 0


async def test_new_term_while_still_leader_restarts_the_set(components: Components) -> None:
    cell = LeadershipCell()
    runner = asyncio.create_task(run_while_leader(cell, components.make))
    lead(cell, 1)
    await until(lambda: len(components.started) == 2, "first set started")
    # Lost and won again between two observations: only the term tells.
    lead(cell, 4)
    await until(lambda: components.started[2:] == ["a2", "b2"], "restarted for the new term")
    assert sorted(components.stopped) == ["a1", "b1"]
    assert components.max_active == 2
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_leader_address_change_in_same_term_keeps_the_set(components: Components) -> None:
    cell = LeadershipCell()
    runner = asyncio.create_task(run_while_leader(cell, components.make))
    lead(cell, 1)
    await until(lambda: len(components.started) == 2, "set started")
    lead(cell, 1, addr="10.0.0.9:4242")
    await asyncio.sleep(0.02)
    assert components.sets_made == 1
    assert components.stopped == []
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
