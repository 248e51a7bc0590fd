"""Who leads the managers, and running the leader's components only while this manager leads.

Manager layer. The raft driver publishes leadership changes into a `LeadershipCell` (a
`Leadership`); a single-voter manager uses `StaticLeadership`, which always leads. The manager
runs `run_while_leader(leadership, make_components)` in its task group: it starts a fresh set of
leader components (`leader.run_leader`) when this manager becomes leader and cancels it, waiting
for its cleanup, when leadership is lost. The rpc layer reads the same object through its narrower
`rpc.forward.LeaderView` to forward leader-only calls, and `retarget_leader_channels` closes
the forwarding channel when the leader moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from swarmd.manager.leader import Component, run_leader
from swarmd.rpc.forward import LeaderChannels

_log = structlog.get_logger(component="leadership")


@dataclass(frozen=True, slots=True)
class LeaderState:
    """One observation of the cluster's leadership, as this manager sees it.

    Attributes:
        is_leader: this manager leads, and may run the leader's components.
        leader_id: the leader's node id, None while no leader is known.
        leader_addr: the leader's cluster-port address (`host:port`), None while unknown.
        term: the raft term of the observation (0 for a single voter).
        seq: a local counter, raised by one on every change; `wait_change(seq)` waits past it.
            Terms alone cannot order changes: a leader can step down without a new term, and a
            follower learns the leader's address some time after the term begins.
    """

    is_leader: bool
    leader_id: str | None
    leader_addr: str | None
    term: int
    seq: int = 0


class Leadership(Protocol):
    """Read-only view of leadership, loop-confined; implemented by the raft driver's cell.

    Contract: `is_leader()` becomes true only once this manager's store has applied every entry
    committed before its term began (raft's no-op of the new term is applied), so leader
    components start from a complete store. `is_leader()`, `leader_addr()`, `leader_id()` always
    agree with `state()`. `wait_change(seq)` returns the current state as soon as its `seq` is
    greater than the given one (at once if it already is); intermediate states may be skipped,
    callers must act on the state they get, not on the transitions they expect.
    """

    def state(self) -> LeaderState:
        """The current observation."""
        ...

    def is_leader(self) -> bool:
        """This manager leads."""
        ...

    def leader_addr(self) -> str | None:
        """The leader's cluster-port address, None while unknown."""
        ...

    def leader_id(self) -> str | None:
        """The leader's node id, None while unknown."""
        ...

    async def wait_change(self, seq: int) -> LeaderState:
        """Wait for a state whose seq is greater than `seq` and return it."""
        ...


class LeadershipCell:
    """The real `Leadership`: holds the latest state; the raft driver calls `publish()`.

    Loop-confined. Publishing a state equal to the current one (ignoring seq) changes nothing and
    wakes nobody, so the driver may publish after every Ready.
    """

    def __init__(self, initial: LeaderState | None = None) -> None:
        start = initial or LeaderState(False, None, None, 0)
        self._state = replace(start, seq=0)
        self._changed = asyncio.Event()

    def state(self) -> LeaderState:
        """The current observation."""
        return self._state

    def is_leader(self) -> bool:
        """This manager leads."""
        return self._state.is_leader

    def leader_addr(self) -> str | None:
        """The leader's cluster-port address, None while unknown."""
        return self._state.leader_addr

    def leader_id(self) -> str | None:
        """The leader's node id, None while unknown."""
        return self._state.leader_id

    def publish(
        self, *, is_leader: bool, leader_id: str | None, leader_addr: str | None, term: int
    ) -> LeaderState:
        """Record a new observation; wakes every waiter if anything differs. Returns the state."""
        new = LeaderState(is_leader, leader_id, leader_addr, term, self._state.seq)
        if new == self._state:
            return self._state
        self._state = replace(new, seq=self._state.seq + 1)
        _log.info(
            "leadership changed",
            is_leader=is_leader,
            leader_id=leader_id,
            leader_addr=leader_addr,
            term=term,
        )
        # Swap the event: waiters of the old one wake, later waiters block on the new one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return self._state

    async def wait_change(self, seq: int) -> LeaderState:
        """Wait for a state whose seq is greater than `seq` and return it."""
        while self._state.seq <= seq:
            await self._changed.wait()
        return self._state


class StaticLeadership(LeadershipCell):
    """Always the leader: a single voter (today's LocalProposer) needs no election."""

    def __init__(self, node_id: str | None = None, addr: str | None = None) -> None:
        super().__init__(LeaderState(True, node_id, addr, 0))


async def watch_leadership(leadership: Leadership) -> AsyncGenerator[LeaderState, None]:
    """The current state, then every later one (intermediate states may be skipped)."""
    state = leadership.state()
    yield state
    while True:
        state = await leadership.wait_change(state.seq)
        yield state


async def run_while_leader(
    leadership: Leadership, make_components: Callable[[], list[Component]]
) -> None:
    """Run a fresh set of leader components whenever, and only while, this manager leads.

    Never two sets at once: a set is cancelled and its cleanup awaited before another starts. A
    new term of leadership (lost and won again between two observations) restarts the set, as
    the components' in-memory state may predate another leader's writes. Runs until cancelled;
    cancellation stops the running set first.

    Args:
        leadership: where leadership changes come from.
        make_components: builds a new, unstarted set (orchestrators keep state per run).
    """
    running: asyncio.Task[None] | None = None
    running_term = -1
    state = leadership.state()
    try:
        while True:
            if running is not None and (not state.is_leader or state.term != running_term):
                _log.info("leadership lost; stopping leader components", term=running_term)
                await _stop(running)
                running = None
            if state.is_leader and running is None:
                _log.info("leadership acquired; starting leader components", term=state.term)
                running = asyncio.create_task(
                    run_leader(make_components()), name=f"leader-components-term-{state.term}"
                )
                running_term = state.term
            state = await leadership.wait_change(state.seq)
    finally:
        if running is not None:
            await _stop(running)


async def retarget_leader_channels(leadership: Leadership, channels: LeaderChannels) -> None:
    """Close the forwarding channel as soon as leadership moves away from its address.

    Runs until cancelled, beside the servers. Without it a stale channel would only be closed by
    the next forwarded call; with it, calls still running on a deposed leader (agent sessions)
    end at once and their callers reconnect.
    """
    state = leadership.state()
    while True:
        await channels.retarget(None if state.is_leader else state.leader_addr)
        state = await leadership.wait_change(state.seq)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the component set and wait until every component's cleanup has run."""
    task.cancel()
    # wait() neither raises the task's CancelledError nor swallows our own cancellation.
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        _log.error("leader components failed", exc_info=task.exception())


__all__ = [
    "LeaderState",
    "Leadership",
    "LeadershipCell",
    "StaticLeadership",
    "retarget_leader_channels",
    "run_while_leader",
    "watch_leadership",
]
