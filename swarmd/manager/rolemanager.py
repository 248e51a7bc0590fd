"""The role manager: makes each node's observed role follow its desired role, raft first.

Manager layer; a leader component (`swarmd.manager.leader`), after swarmkit
manager/role_manager.go. `Node.spec.desired_role` is what the operator asked for (the control
API writes it); `Node.role` is the observed role, the one the node's certificate carries, and
the CA signs renewals with it. This component moves the second towards the first:

- **Demotion** (desired WORKER, observed MANAGER): the node's raft member is removed first, and
  only then does `role` become WORKER (so the next renewal gives it a worker certificate). A
  removal that would lose quorum is refused (`Membership.check_removal`) and retried every
  `RETRY_INTERVAL`, so it happens once enough managers are reachable again. The leader cannot
  remove itself safely while leading: it hands leadership to another voter first; the new
  leader's role manager then removes it.
- **Removal of a manager node** (its Node object deleted while it is still a raft member, which
  the control API allows only with `force`): the raft member is removed, with the same quorum
  rule; the leader's own node makes it transfer leadership first, as for a demotion.
- **Promotion** (desired MANAGER, observed WORKER): a manager must hold a manager certificate
  before it can join raft, so `role` stays WORKER until the node's recorded certificate says
  manager (the CA signs a renewal with the manager role once the desired role is manager);
  then `role` becomes MANAGER. The node itself then joins raft (`RaftMembership.Join`) and the
  promoter (`raftnode.membership.Promoter`) makes it a voter once it caught up.

`decide` is the pure rule; `RoleManager` is its shell over the store's node watch.
"""

from __future__ import annotations

import enum
from typing import Protocol

import structlog

from swarmd import errors, log
from swarmd.api import objects_pb2, types_pb2
from swarmd.clock import Clock
from swarmd.manager.store import Event, MemoryStore, Tx
from swarmd.raft import RaftID

_log = structlog.get_logger(component="rolemanager")

RETRY_INTERVAL = 5.0  # swarmkit roleReconcileInterval
_MANAGER = types_pb2.NODE_ROLE_MANAGER
_WORKER = types_pb2.NODE_ROLE_WORKER


class RaftMembers(Protocol):
    """What the role manager needs from the raft membership (`raftnode.Membership`)."""

    @property
    def raft_id(self) -> RaftID: ...

    def member_of_node(self, node_id: str) -> types_pb2.RaftMember | None: ...

    def members(self) -> list[types_pb2.RaftMember]: ...

    async def remove_node(self, node_id: str, verb: str = "removing") -> bool: ...

    async def transfer_leadership(self) -> RaftID: ...


class Action(enum.Enum):
    """What to do for one node."""

    NOTHING = "nothing"
    REMOVE_MEMBER = "remove raft member"  # then observe WORKER
    TRANSFER_LEADERSHIP = "transfer leadership"  # the leader itself is being demoted
    OBSERVE_WORKER = "observe worker"
    OBSERVE_MANAGER = "observe manager"
    WAIT_FOR_CERTIFICATE = "wait for a manager certificate"


def decide(
    node: objects_pb2.Node, member: types_pb2.RaftMember | None, leader_raft_id: RaftID
) -> Action:
    """The next step for `node`, given its raft member (None if not one) and ours. Pure.

    Args:
        node: the node as stored.
        member: the node's raft member, if it is one.
        leader_raft_id: the raft id of the manager deciding (the leader).
    """
    desired, observed = node.spec.desired_role, node.role
    if desired == _WORKER:
        if member is not None:
            # Still in raft (a manager being demoted, or a demotion interrupted between its
            # two steps): raft goes first. The leader hands leadership over before that.
            if member.raft_id == leader_raft_id:
                return Action.TRANSFER_LEADERSHIP
            return Action.REMOVE_MEMBER
        if observed == _MANAGER:
            return Action.OBSERVE_WORKER
        return Action.NOTHING
    if observed == _WORKER:
        if node.certificate.role == _MANAGER:
            return Action.OBSERVE_MANAGER
        return Action.WAIT_FOR_CERTIFICATE
    return Action.NOTHING


class RoleManager:
    """Leader component reconciling desired roles with raft membership (see the module doc).

    Args:
        store: the leader's store.
        membership: the leader's raft membership.
        clock: for the retry timer.
        retry_interval: seconds between retries of refused or failed steps.
    """

    def __init__(
        self,
        store: MemoryStore,
        membership: RaftMembers,
        clock: Clock,
        *,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self._store = store
        self._membership = membership
        self._clock = clock
        self._retry = retry_interval

    async def run(self) -> None:
        """Reconcile every node now, then each changed node, retrying refusals; until cancelled."""
        async with self._store.watch(["node"]) as sub:
            pending = self._all_candidates()
            while True:
                pending = {n for n in sorted(pending) if not await self.reconcile(n)}
                item = await sub.next_within(self._clock, self._retry if pending else None)
                while item is not None:
                    if isinstance(item, Event) and isinstance(item.obj, objects_pb2.Node):
                        pending.add(item.obj.id)
                    item = await anext(sub) if sub.pending() else None

    def _all_candidates(self) -> set[str]:
        nodes = self._store.view(lambda tx: tx.nodes.list())
        known = {n.id for n in nodes}
        orphans = {m.node_id for m in self._membership.members() if m.node_id not in known}
        return known | orphans

    async def reconcile(self, node_id: str) -> bool:
        """Take the next step for one node; False when it must be retried later."""
        node = self._store.view(lambda tx: tx.nodes.get(node_id))
        member = self._membership.member_of_node(node_id)
        bound = _log.bind(**{log.NODE_ID: node_id})
        if node is None:
            return await self._remove_deleted(node_id, member, bound)
        action = decide(node, member, self._membership.raft_id)
        try:
            return await self._take(action, node, bound)
        except (errors.FailedPrecondition, errors.Unavailable) as err:
            bound.warning("node role change postponed", action=action.value, reason=err.message)
            return False

    async def _take(
        self, action: Action, node: objects_pb2.Node, bound: structlog.typing.FilteringBoundLogger
    ) -> bool:
        if action is Action.NOTHING or action is Action.WAIT_FOR_CERTIFICATE:
            return True
        if action is Action.TRANSFER_LEADERSHIP:
            # Leadership moves away, which stops this component; the next leader removes us.
            to = await self._membership.transfer_leadership()
            bound.info("leadership transferred before demoting the leader", to=f"{to:x}")
            return False
        if action is Action.REMOVE_MEMBER:
            await self._membership.remove_node(node.id, "demoting")
            await self._observe(node.id, _WORKER)
            bound.info("manager demoted")
            return True
        target = _WORKER if action is Action.OBSERVE_WORKER else _MANAGER
        await self._observe(node.id, target)
        bound.info("node role observed", role=types_pb2.NodeRole.Name(target))
        return True

    async def _remove_deleted(
        self,
        node_id: str,
        member: types_pb2.RaftMember | None,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> bool:
        if member is None:
            return True
        try:
            if member.raft_id == self._membership.raft_id:
                # This leader's own node was removed: hand over, the next leader removes us.
                to = await self._membership.transfer_leadership()
                bound.info("leadership transferred before removing the leader", to=f"{to:x}")
                return False
            await self._membership.remove_node(node_id, "removing")
        except (errors.FailedPrecondition, errors.Unavailable) as err:
            bound.warning("raft member of removed node kept", reason=err.message)
            return False
        bound.info("raft member of removed node removed")
        return True

    async def _observe(self, node_id: str, role: types_pb2.NodeRole.ValueType) -> None:
        def fn(tx: Tx) -> None:
            node = tx.nodes.get(node_id)
            if node is None or node.role == role or node.spec.desired_role != role:
                return  # deleted, already done, or the operator changed their mind
            node.role = role
            if role == _WORKER:
                node.ClearField("manager_status")
            tx.nodes.update(node)

        await self._store.update(fn)


__all__ = ["RETRY_INTERVAL", "Action", "RaftMembers", "RoleManager", "decide"]
