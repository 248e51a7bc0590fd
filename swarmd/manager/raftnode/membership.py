"""Raft membership of the managers: joins, leaves, learner promotion and quorum-safe removal.

Manager layer, raft node. Three parts share one `Membership` (one per manager, around its
`RaftNode`), which serialises membership changes (the core accepts one pending change at a
time) and applies the quorum arithmetic (configuration.py's `quorum_after_removal`, which
the node's own last check uses too). This is the policy; the mechanics (the voters and
learners, proposing and applying each change) are the node's `Configuration` (configuration.py),
reached through `RaftNode`'s membership methods:

- `RaftMembershipServicer` serves `RaftMembership.Join`/`Leave` on the cluster port. Both are
  leader-only (`rpc.routing` forwards them from followers), manager certificates only
  (`rpc.auth`). A joining manager is added as a LEARNER: it receives the log without
  counting for quorum, so a slow or dead joiner can never block commits (swarmkit adds a
  voter at once; etcd's learners avoid that window).
- `Promoter` is a leader component: it makes a learner a voter once its log is within
  `max_lag` entries of the leader's.
- The role manager and the control API ask `check_removal` / `remove_node` before a manager
  is demoted or removed, so neither can take away the quorum (swarmkit `CanRemoveMember`).

A manager joins in this order (the node side, swarmkit node.go + raft.go JoinAndStart):

1. hold a certificate with the manager role (join with the manager token, or renew after a
   promotion);
2. call `Join(addr)` on any manager (followers forward to the leader) and get its raft id, the
   members and the removed ids;
3. `RaftNode.open(dir, ..., member=RaftMember(raft_id, node_id, addr))` on an empty raft dir,
   `learn_members(resp.members)`, `recover(store)`, `run()`: the leader catches it up, the
   promoter then makes it a voter.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random

import structlog
from grpc import aio

from swarmd import errors, log
from swarmd.api import raft_pb2, raft_pb2_grpc, types_pb2
from swarmd.ca.peer import current_peer
from swarmd.ca.rootca import Role
from swarmd.manager.raftnode.configuration import QuorumCheck, quorum_after_removal
from swarmd.manager.raftnode.node import RaftNode
from swarmd.raft import NONE, RaftID
from swarmd.rpc.identity import current_forwarded

_log = structlog.get_logger(component="raftnode")

MAX_PROMOTION_LAG = 16  # entries a learner may trail the leader's last index and be promoted
PROMOTE_INTERVAL = 0.5  # seconds between two looks at the learners
_RAFT_ID_LIMIT = 1 << 63  # swarmkit: random 63-bit ids


class Membership:
    """One manager's view and control of the raft membership, around its RaftNode.

    Loop-confined. Changes run one at a time (an `asyncio.Lock`), so a join, a promotion and
    a demotion never race for the core's single pending change.

    Args:
        node: this manager's raft member.
        rng: where fresh raft ids come from (seed it in tests).
    """

    def __init__(self, node: RaftNode, *, rng: random.Random | None = None) -> None:
        self._node = node
        self._rng = rng or random.SystemRandom()
        self._lock = asyncio.Lock()

    @property
    def raft_id(self) -> RaftID:
        """This manager's raft id."""
        return self._node.id

    def is_member(self, node_id: str) -> bool:
        """Is the manager `node_id` a raft member (voter or learner)?"""
        return self._node.member_of_node(node_id) is not None

    def members(self) -> list[types_pb2.RaftMember]:
        """The current raft members (voters and learners), by raft id."""
        conf = self._node.conf_state
        current = conf.voters | conf.learners
        return [m for m in self._node.address_book.members() if RaftID(m.raft_id) in current]

    def member(self, raft_id: RaftID) -> types_pb2.RaftMember | None:
        """The record of a known raft member, None if unknown."""
        return self._node.address_book.get(raft_id)

    def member_of_node(self, node_id: str) -> types_pb2.RaftMember | None:
        """The raft member of the manager `node_id`, None if it is not one."""
        return self._node.member_of_node(node_id)

    def quorum_without(self, node_id: str) -> QuorumCheck:
        """The quorum arithmetic of removing the manager `node_id` now."""
        conf = self._node.conf_state
        member = self._node.member_of_node(node_id)
        removing = RaftID(member.raft_id) if member is not None else NONE
        reachable = frozenset(v for v in conf.voters if self._node.is_reachable(v))
        return quorum_after_removal(conf.voters, removing, reachable)

    def check_removal(self, node_id: str, verb: str = "removing") -> None:
        """Refuse a demotion or removal of the manager `node_id` that would lose quorum.

        Args:
            node_id: the manager's node id.
            verb: how the message names the operation ("demoting", "removing").

        Raises:
            errors.FailedPrecondition: the voters left would not reach a quorum.
        """
        check = self.quorum_without(node_id)
        if not check.keeps_quorum:
            raise errors.FailedPrecondition(
                f"{verb} node {node_id} would leave {check.reachable} of {check.remaining} "
                f"managers reachable: quorum needs {check.needed}"
            )

    async def join(self, node_id: str, addr: str) -> raft_pb2.JoinResponse:
        """Add the manager `node_id` as a learner (leader only); idempotent per node id.

        A manager that is still a member gets its raft id back and nothing changes (a change
        of address is not replicated: the core has no update-member change).

        Raises:
            errors.InvalidArgument: no address.
            errors.NotLeader: this manager does not lead.
            errors.FailedPrecondition: the core refused the change.
        """
        if not addr:
            raise errors.InvalidArgument("addr is required to join the raft cluster")
        state = self._node.leadership.state
        if not state.is_leader:
            # Only the leader knows the committed membership (followers forward Join to it).
            raise errors.NotLeader(state.leader_addr)
        async with self._lock:
            existing = self._node.member_of_node(node_id)
            if existing is not None:
                _log.info(
                    "raft member rejoined", **{log.NODE_ID: node_id}, member=f"{existing.raft_id:x}"
                )
                return self._response(RaftID(existing.raft_id))
            raft_id = self._fresh_id()
            member = types_pb2.RaftMember(raft_id=raft_id, node_id=node_id, addr=addr)
            await self._node.add_learner(member)
        _log.info("raft learner added", **{log.NODE_ID: node_id}, member=f"{raft_id:x}", addr=addr)
        return self._response(raft_id)

    async def remove_node(self, node_id: str, verb: str = "removing") -> bool:
        """Remove the manager `node_id` from the raft cluster; False if it is not a member.

        Raises:
            errors.FailedPrecondition: it would lose quorum, or the core refused the change.
            errors.NotLeader: this manager does not lead.
        """
        async with self._lock:
            member = self._node.member_of_node(node_id)
            if member is None:
                return False
            self.check_removal(node_id, verb)
            await self._node.remove_member(RaftID(member.raft_id))
        _log.info("raft member removed", **{log.NODE_ID: node_id}, member=f"{member.raft_id:x}")
        return True

    async def transfer_leadership(self) -> RaftID:
        """Hand leadership to a reachable voter (before this leader is demoted)."""
        async with self._lock:
            return await self._node.transfer_leadership()

    async def promote_caught_up(self, max_lag: int = MAX_PROMOTION_LAG) -> list[RaftID]:
        """Leader only: promote every learner whose log trails ours by at most `max_lag`.

        Returns the promoted raft ids (none when this manager does not lead).
        """
        promoted: list[RaftID] = []
        async with self._lock:
            for learner in sorted(self._node.conf_state.learners):
                match = self._node.match_indexes().get(learner)
                # A match of 0 is a learner that has acknowledged nothing yet: on a young log
                # it is "within the lag" of the leader but may not even be reachable.
                if not match or self._node.last_index() - match > max_lag:
                    continue
                await self._node.promote(learner)
                promoted.append(learner)
                _log.info("raft learner promoted", member=f"{learner:x}", match=match)
        return promoted

    def _fresh_id(self) -> RaftID:
        book = self._node.address_book
        while True:
            candidate = RaftID(self._rng.randrange(1, _RAFT_ID_LIMIT))
            if book.get(candidate) is None and not book.is_removed(candidate):
                return candidate

    def _response(self, raft_id: RaftID) -> raft_pb2.JoinResponse:
        snap = self._node.address_book.to_snapshot()
        return raft_pb2.JoinResponse(
            raft_id=raft_id, members=snap.members, removed_members=snap.removed
        )


class Promoter:
    """Leader component: promotes caught-up learners to voters (`run` until cancelled).

    Args:
        membership: the leader's Membership.
        interval: seconds between two looks.
        max_lag: how many entries a learner may trail and still be promoted.
    """

    def __init__(
        self,
        membership: Membership,
        *,
        interval: float = PROMOTE_INTERVAL,
        max_lag: int = MAX_PROMOTION_LAG,
    ) -> None:
        self._membership = membership
        self._interval = interval
        self._max_lag = max_lag

    async def run(self) -> None:
        """Promote learners as they catch up, until cancelled (or leadership moves)."""
        while True:
            try:
                await self._membership.promote_caught_up(self._max_lag)
            except errors.FailedPrecondition as err:
                _log.warning("raft learner promotion refused", reason=err.message)
            except errors.Unavailable as err:
                _log.info("raft learner promotion postponed", reason=err.message)
            await asyncio.sleep(self._interval)


class RaftMembershipServicer(raft_pb2_grpc.RaftMembershipServicer):
    """The RaftMembership gRPC service (cluster port; leader-only, managers only).

    Args:
        membership: this manager's Membership.
    """

    def __init__(self, membership: Membership) -> None:
        self._membership = membership

    async def Join(  # noqa: N802 (gRPC method name)
        self,
        request: raft_pb2.JoinRequest,
        context: aio.ServicerContext[raft_pb2.JoinRequest, raft_pb2.JoinResponse],
    ) -> raft_pb2.JoinResponse:
        """Add the calling manager as a learner; its raft id, the members, the removed ids."""
        peer = current_peer()
        if peer is None or peer.role is not Role.MANAGER:
            raise errors.PermissionDenied(
                "only a node with a manager certificate may join the raft cluster"
            )
        # A call a follower forwarded carries the joiner's address as the follower saw it.
        forwarded = current_forwarded()
        seen = forwarded.peer_addr if forwarded is not None else ""
        addr = substitute_host(request.addr, seen or context.peer())
        return await self._membership.join(peer.node_id, addr)

    async def Leave(  # noqa: N802 (gRPC method name)
        self,
        request: raft_pb2.LeaveRequest,
        context: aio.ServicerContext[raft_pb2.LeaveRequest, raft_pb2.LeaveResponse],
    ) -> raft_pb2.LeaveResponse:
        """Remove a manager from the raft cluster (itself, or any, for the local operator)."""
        peer = current_peer()
        node_id = request.node.node_id
        if not node_id and request.node.raft_id:
            member = self._membership.member(RaftID(request.node.raft_id))
            node_id = member.node_id if member is not None else ""
        if not node_id:
            raise errors.InvalidArgument("node.node_id or node.raft_id is required to leave")
        if peer is not None and peer.node_id != node_id:
            raise errors.PermissionDenied(
                f"node {peer.node_id} may not remove node {node_id} from the raft cluster"
            )
        if not await self._membership.remove_node(node_id):
            raise errors.NotFound("raft member", node_id)
        return raft_pb2.LeaveResponse()


def substitute_host(addr: str, grpc_peer: str) -> str:
    """The joiner's address, with an unspecified host (0.0.0.0, ::) replaced by the peer's IP.

    swarmkit does the same: a manager listening on all interfaces advertises what it can.

    Args:
        addr: the advertised "host:port".
        grpc_peer: `context.peer()`, like "ipv4:10.0.0.5:51234" or "ipv6:[::1]:5000".
    """
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr
    bare = host.strip("[]")
    try:
        unspecified = not bare or ipaddress.ip_address(bare).is_unspecified
    except ValueError:
        return addr  # a host name
    if not unspecified:
        return addr
    kind, _, rest = grpc_peer.partition(":")
    if kind == "ipv4":
        return f"{rest.rpartition(':')[0]}:{port}"
    if kind == "ipv6":
        return f"{rest.rpartition(':')[0]}:{port}"  # keeps the brackets
    return addr


__all__ = [
    "MAX_PROMOTION_LAG",
    "Membership",
    "Promoter",
    "RaftMembershipServicer",
    "substitute_host",
]
