"""This manager's replica of the cluster state: its raft member, store and leadership view.

Manager layer, opened by `swarmd.node.Node` before the manager serves. Three ways in:
- a new cluster: the first manager founds a one-member raft cluster (`found`);
- a manager joining an existing cluster: it asks a manager for a raft id (`RaftMembership.Join`,
  forwarded to the leader), learns the members' addresses and catches up from the leader's log or
  snapshot (`join`);
- a restart: the raft identity and log are in the state dir (`reopen`). A state dir written by
  the earlier single-voter log (LocalProposer) is adopted as a one-member raft cluster, keeping
  all its data.
Closing: cancel `run()`, then `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from grpc import aio

from swarmd import errors, gctuning
from swarmd.api import raft_pb2, raft_pb2_grpc, types_pb2
from swarmd.ca.security import SecurityConfig
from swarmd.manager.leadership import LeadershipCell
from swarmd.manager.raftnode import GrpcTransport, RaftNode, RaftServicer, RaftSettings
from swarmd.manager.raftnode.members import MEMBER_FILE
from swarmd.manager.raftnode.membership import Membership, RaftMembershipServicer
from swarmd.manager.store import MemoryStore
from swarmd.rpc.channel import manager_channel
from swarmd.rpc.status import from_rpc_error

_log = structlog.get_logger(component="manager")

JOIN_TIMEOUT = 20.0


def new_raft_id() -> int:
    """A random non-zero 63-bit raft id (SwarmKit picks them at random too)."""
    return secrets.randbits(63) or 1


@dataclass
class Replica:
    """A raft member with its store; `leadership` drives leader components and forwarding."""

    node: RaftNode
    store: MemoryStore
    leadership: LeadershipCell
    membership: Membership = field(init=False)

    def __post_init__(self) -> None:
        self.membership = Membership(self.node)

    def register(self, server: aio.Server) -> None:
        """Serve the Raft and RaftMembership services on the cluster port."""
        raft_pb2_grpc.add_RaftServicer_to_server(
            RaftServicer(self.node, self.node.address_book.get), server
        )
        raft_pb2_grpc.add_RaftMembershipServicer_to_server(
            RaftMembershipServicer(self.membership), server
        )

    async def run(self) -> None:
        """Drive the raft member until cancelled, following the cluster's raft settings."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.node.run(), name="raft-node")
            tg.create_task(self._follow_settings(), name="raft-settings")

    async def _follow_settings(self) -> None:
        """Apply the cluster spec's raft config (`swarmctl cluster update --snapshot-interval`)."""
        while True:
            # A closed or overflowing watch (a snapshot install) only means: read again.
            with contextlib.suppress(errors.Unavailable, StopAsyncIteration):
                async with self.store.watch(kinds={"cluster"}) as sub:
                    while True:
                        self._adjust_from_store()
                        await anext(sub)

    def _adjust_from_store(self) -> None:
        for cluster in self.store.view(lambda tx: tx.clusters.list())[:1]:
            try:
                self.node.adjust(RaftSettings.from_spec(cluster.spec.raft))
            except ValueError as err:
                _log.warning("raft settings of the cluster spec ignored", error=str(err))

    async def wait_leader(self) -> None:
        """Wait until this member leads and has applied everything before its term."""
        state = self.node.leadership.state
        while not state.is_leader:
            state = await self.node.leadership.changed(state)

    async def close(self) -> None:
        await self.node.close()


def has_identity(raft_dir: Path) -> bool:
    """Whether this state dir already holds a raft member identity."""
    return (raft_dir / MEMBER_FILE).exists()


def has_log(raft_dir: Path) -> bool:
    """Whether this state dir holds a raft log (maybe one of the earlier single-voter kind)."""
    return raft_dir.exists()


async def _open(
    raft_dir: Path, security: SecurityConfig, member: types_pb2.RaftMember | None
) -> tuple[RaftNode, LeadershipCell]:
    cell = LeadershipCell()
    node = await RaftNode.open(
        raft_dir, GrpcTransport(security), RaftSettings(), member=member, publish_to=cell
    )
    return node, cell


async def _recover(node: RaftNode, cell: LeadershipCell) -> Replica:
    store = MemoryStore(proposer=node)
    await node.recover(store)
    gctuning.freeze()  # the recovered store is long-lived: out of the collector's way
    return Replica(node, store, cell)


async def found(raft_dir: Path, security: SecurityConfig, addr: str) -> Replica:
    """A new one-member cluster, or the adoption of a single-voter log without identity."""
    member = types_pb2.RaftMember(
        raft_id=new_raft_id(), node_id=security.credentials.node_id, addr=addr
    )
    node, cell = await _open(raft_dir, security, member)
    if not node.has_membership():
        await node.bootstrap([member])
    return await _recover(node, cell)


async def reopen(
    raft_dir: Path, security: SecurityConfig, addr: str, *, force_new_cluster: bool = False
) -> Replica:
    """A restart: the saved identity (with this start's address) and the stored log.

    With `force_new_cluster`, this member becomes the only one (after losing quorum): every
    other member is removed through committed entries of a new term; all data is kept.
    """
    node, cell = await _open(raft_dir, security, None)
    saved = node.address_book.get(node.id)
    if saved is None or saved.addr != addr:
        # Re-open with the current address so a manager that moved announces where it is now.
        await node.close()
        me = types_pb2.RaftMember(raft_id=node.id, node_id=security.credentials.node_id, addr=addr)
        node, cell = await _open(raft_dir, security, me)
    if not node.has_membership():
        raise errors.FailedPrecondition(
            f"raft state in {raft_dir} has no membership: this manager never finished joining; "
            "remove the state dir and join again"
        )
    if force_new_cluster:
        await node.force_new_cluster()
        _log.warning("forced a new cluster with this manager as its only member")
    return await _recover(node, cell)


async def join(
    raft_dir: Path, security: SecurityConfig, addr: str, managers: Sequence[str]
) -> Replica:
    """Join an existing cluster through any of `managers` (cluster-port addresses)."""
    last: errors.SwarmError = errors.Unavailable("no manager address to join through")
    for manager in managers:
        channel = manager_channel(manager, security)
        try:
            resp = await raft_pb2_grpc.RaftMembershipStub(channel).Join(
                raft_pb2.JoinRequest(addr=addr), timeout=JOIN_TIMEOUT
            )
        except aio.AioRpcError as err:
            last = from_rpc_error(err)
            _log.info("raft join failed", manager=manager, error=str(last))
            continue
        finally:
            await channel.close()
        member = types_pb2.RaftMember(
            raft_id=resp.raft_id, node_id=security.credentials.node_id, addr=addr
        )
        node, cell = await _open(raft_dir, security, member)
        node.learn_members(resp.members)
        _log.info("raft joined", raft_id=f"{resp.raft_id:x}", members=len(resp.members))
        return await _recover(node, cell)
    raise last


async def open_replica(
    raft_dir: Path,
    security: SecurityConfig,
    addr: str,
    *,
    new_cluster: bool,
    join_through: Sequence[str] = (),
    force_new_cluster: bool = False,
) -> Replica:
    """Found, join or reopen, as the state dir and the start's flags say."""
    if has_identity(raft_dir):
        return await reopen(raft_dir, security, addr, force_new_cluster=force_new_cluster)
    if force_new_cluster:
        raise errors.FailedPrecondition(
            f"--force-new-cluster needs an existing manager state in {raft_dir}"
        )
    if new_cluster or (has_log(raft_dir) and not join_through):
        return await found(raft_dir, security, addr)
    return await join(raft_dir, security, addr, join_through)


__all__ = ["Replica", "has_identity", "has_log", "new_raft_id", "open_replica"]
