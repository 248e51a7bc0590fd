"""The node's stop order: the raft member outlives its manager's drain, within a bound."""

from __future__ import annotations

import asyncio

import pytest

import swarmd.node
from swarmd.node import _run_replica


class FakeReplica:
    """Records when its raft member stopped and when it was closed."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def run(self) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            self.events.append("raft stopped")

    async def close(self) -> None:
        self.events.append("closed")


async def _stop_after_start(runner: asyncio.Task[None]) -> None:
    await asyncio.sleep(0.01)
    runner.cancel()


async def test_the_raft_member_stops_only_after_the_manager_has_stopped():
    replica = FakeReplica()
    manager_stopped = asyncio.Event()
    runner = asyncio.create_task(_run_replica(replica, manager_stopped))  # type: ignore[arg-type]
    await _stop_after_start(runner)
    await asyncio.sleep(0.05)
    assert replica.events == []  # the manager is still draining
    replica.events.append("manager stopped")
    manager_stopped.set()
    await asyncio.wait({runner})
    assert runner.cancelled()
    assert replica.events == ["manager stopped", "raft stopped", "closed"]


async def test_without_a_running_manager_the_raft_member_stops_at_once():
    replica = FakeReplica()
    manager_stopped = asyncio.Event()
    manager_stopped.set()
    runner = asyncio.create_task(_run_replica(replica, manager_stopped))  # type: ignore[arg-type]
    await _stop_after_start(runner)
    async with asyncio.timeout(2.0):  # MANAGER_DRAIN (4 s) is not waited for
        await asyncio.wait({runner})
    assert replica.events == ["raft stopped", "closed"]


async def test_a_manager_that_does_not_stop_holds_the_raft_member_only_for_the_bound(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(swarmd.node, "MANAGER_DRAIN", 0.3)
    replica = FakeReplica()
    runner = asyncio.create_task(_run_replica(replica, asyncio.Event()))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    runner.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert replica.events == []
    async with asyncio.timeout(3.0):
        await asyncio.wait({runner})
    assert loop.time() - cancelled_at >= 0.3
    assert runner.cancelled()
    assert replica.events == ["raft stopped", "closed"]


async def test_a_raft_member_that_fails_is_closed_and_its_error_raised():
    class Failing(FakeReplica):
        async def run(self) -> None:
            raise RuntimeError("disk gone")

    replica = Failing()
    with pytest.raises(RuntimeError, match="disk gone"):
        await _run_replica(replica, asyncio.Event())  # type: ignore[arg-type]
    assert replica.events == ["closed"]
