"""Keeps each manager node's `manager_status` (leader, reachability, raft id, address) true.

Manager layer; a leader component (`swarmd.manager.leader`), run by the leader only, so exactly
one writer says who leads. Every `INTERVAL` it compares what the store says about each manager
node with what this raft member knows (its members' raft ids and addresses, which peers the
transport reaches) and writes only the nodes whose status changed. `swarmctl node ls` shows the
result in its MANAGER STATUS column (Leader / Reachable / Unreachable).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from swarmd import errors
from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.store import Batch, MemoryStore, Tx
from swarmd.raft import RaftID

_log = structlog.get_logger(component="manager")

INTERVAL = 1.0
_REACHABLE = types_pb2.ManagerStatus.REACHABILITY_REACHABLE
_UNREACHABLE = types_pb2.ManagerStatus.REACHABILITY_UNREACHABLE


class RaftView(Protocol):
    """What this component reads from the raft member (RaftNode has all of it)."""

    @property
    def id(self) -> RaftID: ...

    def member_of_node(self, node_id: str) -> types_pb2.RaftMember | None: ...

    def is_reachable(self, raft_id: RaftID) -> bool: ...


@dataclass(frozen=True, slots=True)
class StatusChange:
    node_id: str
    status: types_pb2.ManagerStatus


def plan(nodes: Sequence[objects_pb2.Node], raft: RaftView) -> list[StatusChange]:
    """The manager nodes whose recorded status differs from what raft knows. Pure."""
    out: list[StatusChange] = []
    for node in nodes:
        if node.role != types_pb2.NODE_ROLE_MANAGER:
            continue
        member = raft.member_of_node(node.id)
        want = types_pb2.ManagerStatus()
        want.CopyFrom(node.manager_status)
        if member is None:
            want.leader = False
            want.reachability = _UNREACHABLE
        else:
            want.raft_id = member.raft_id
            if member.addr:
                want.addr = member.addr
            want.leader = member.raft_id == raft.id
            reachable = raft.is_reachable(RaftID(member.raft_id))
            want.reachability = _REACHABLE if reachable else _UNREACHABLE
        if want != node.manager_status:
            out.append(StatusChange(node.id, want))
    return out


def _write(tx: Tx, *, change: StatusChange) -> None:
    node = tx.nodes.get(change.node_id)
    if node is None:
        return
    node.manager_status.CopyFrom(change.status)
    tx.nodes.update(node)


def _write_all(batch: Batch, *, changes: Sequence[StatusChange]) -> None:
    for change in changes:
        batch.update(functools.partial(_write, change=change))


class ManagerStatusReporter:
    """The shell: plans against the store every INTERVAL and writes the changes."""

    def __init__(self, store: MemoryStore, raft: RaftView, interval: float = INTERVAL) -> None:
        self._store = store
        self._raft = raft
        self._interval = interval

    async def run(self) -> None:
        while True:
            changes = plan(self._store.view(lambda tx: tx.nodes.list()), self._raft)
            if changes:
                try:
                    await self._store.batch(functools.partial(_write_all, changes=changes))
                except errors.SwarmError as err:
                    _log.info("manager status not written", error=str(err))
                    changes = []
                for c in changes:
                    _log.info(
                        "manager status changed",
                        node_id=c.node_id,
                        leader=c.status.leader,
                        reachable=c.status.reachability == _REACHABLE,
                    )
            await asyncio.sleep(self._interval)


__all__ = ["ManagerStatusReporter", "RaftView", "StatusChange", "plan"]
