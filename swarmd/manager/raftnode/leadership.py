"""Leadership: what a manager knows about the raft leader, with an awaitable change signal.

Manager layer, raft node. `RaftNode` publishes a new `LeaderState` whenever the known leader or
this member's role changes; the manager's wiring waits on `changed()` to start its leader-only
components when `is_leader` turns true and cancel them when it turns false, and the leader
proxy reads `leader_addr` to forward calls. `is_leader` turns true only once the new leader has
applied every entry committed before its term (swarmkit publishes IsLeader at the same point),
so leader-only components start from the complete state.

The manager's own view (`swarmd.manager.leadership.LeadershipCell`, which names the leader by
node id and drives `run_while_leader` and call forwarding) is fed through `LeadershipSink`:
`RaftNode` publishes every state into it as well.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from swarmd.raft import NONE, RaftID


@dataclass(frozen=True, slots=True)
class LeaderState:
    """One snapshot of the leadership as this member sees it.

    Attributes:
        is_leader: this member leads and has caught up: it may accept writes.
        leader_id: the leader's raft id (NONE when no leader is known).
        leader_addr: the leader's cluster address ("" when unknown).
        term: the raft term this state was seen in.
    """

    is_leader: bool = False
    leader_id: RaftID = NONE
    leader_addr: str = ""
    term: int = 0


class LeadershipSink(Protocol):
    """Where else a RaftNode publishes leadership, by node id (`LeadershipCell.publish`).

    Called after every Ready with the current state; publishing an unchanged state must be a
    no-op. Loop-confined; must not raise.
    """

    def publish(
        self, *, is_leader: bool, leader_id: str | None, leader_addr: str | None, term: int
    ) -> object:
        """Record the latest leadership as this manager sees it."""
        ...


class Leadership:
    """The current LeaderState and a way to wait for the next one. Loop-confined."""

    def __init__(self) -> None:
        self._state = LeaderState()
        self._changed = asyncio.Event()

    @property
    def state(self) -> LeaderState:
        """The latest state."""
        return self._state

    def publish(self, state: LeaderState) -> None:
        """Record a new state and wake every waiter (no-op when nothing changed)."""
        if state == self._state:
            return
        self._state = state
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, since: LeaderState) -> LeaderState:
        """Wait until the state differs from `since`, then return the new state.

        Pass the state last seen; states published in between may be skipped, the latest is
        never missed.
        """
        while self._state == since:
            await self._changed.wait()
        return self._state

    async def wait_leader(self) -> LeaderState:
        """Wait until some member (maybe this one) is known as the leader."""
        state = self._state
        while state.leader_id == NONE:
            state = await self.changed(state)
        return state


__all__ = ["LeaderState", "Leadership", "LeadershipSink"]
