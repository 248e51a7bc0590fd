"""The dispatcher's heartbeat deadlines end in a node marked DOWN, even when a write fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from swarmd import errors
from swarmd.api import objects_pb2, store_pb2
from swarmd.manager.dispatcher.dispatcher import (
    DEFAULT_HEARTBEAT_PERIOD,
    DOWN_RETRY,
    GRACE_MULTIPLIER,
    DispatcherServicer,
)
from swarmd.manager.store import MemoryStore
from swarmd.testing.fake_clock import FakeClock

READY = objects_pb2.NodeStatus.STATE_READY
DOWN = objects_pb2.NodeStatus.STATE_DOWN


class QuorumBlip:
    """Commits everything, except while `failing` is above zero (each failure counts down)."""

    def __init__(self) -> None:
        self.index = 0
        self.failing = 0

    async def propose(self, actions: Sequence[store_pb2.StoreAction]) -> int:
        if self.failing:
            self.failing -= 1
            raise errors.Unavailable("no quorum")
        self.index += 1
        return self.index


async def _store_with_ready_node(proposer: QuorumBlip) -> MemoryStore:
    store = MemoryStore(proposer)
    node = objects_pb2.Node(id="n1")
    node.status.state = READY
    await store.update(lambda tx: tx.nodes.create(node))
    return store


def _state(store: MemoryStore) -> int:
    node = store.view(lambda tx: tx.nodes.get("n1"))
    assert node is not None
    return int(node.status.state)


async def _run_for(clock: FakeClock, seconds: float) -> None:
    for _ in range(int(seconds * 4)):
        await clock.advance(0.25)


@contextlib.asynccontextmanager
async def _dispatcher(proposer: QuorumBlip) -> AsyncIterator[tuple[MemoryStore, FakeClock]]:
    """A store holding one READY node, and the dispatcher's deadline loop running over it."""
    store = await _store_with_ready_node(proposer)
    clock = FakeClock()
    runner = asyncio.create_task(DispatcherServicer(store, b"", clock).run())
    await asyncio.sleep(0)  # it takes its deadlines at time 0
    try:
        yield store, clock
    finally:
        runner.cancel()
        await asyncio.wait({runner})


GRACE = DEFAULT_HEARTBEAT_PERIOD * GRACE_MULTIPLIER


async def test_a_node_that_never_reports_is_marked_down_after_twice_the_grace():
    async with _dispatcher(QuorumBlip()) as (store, clock):
        await _run_for(clock, 2 * GRACE - 0.5)
        assert _state(store) == READY
        await _run_for(clock, 1.5)  # the deadlines are checked every half period at most
        assert _state(store) == DOWN


async def test_a_failed_down_write_is_retried_until_it_lands():
    proposer = QuorumBlip()
    async with _dispatcher(proposer) as (store, clock):
        proposer.failing = 2  # the first two attempts to mark it DOWN find no quorum
        await _run_for(clock, 2 * GRACE + 0.75)
        assert proposer.failing == 1
        assert _state(store) == READY
        await _run_for(clock, 2 * DOWN_RETRY + 2)
        assert proposer.failing == 0
        assert _state(store) == DOWN
