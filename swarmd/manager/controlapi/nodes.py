"""Control API handlers for nodes: get, list, update (availability, labels, role), remove.

Manager layer. Removal follows swarmkit controlapi/node.go: a manager must be demoted first (it
is a raft member, and removing it here would not remove it from the quorum); a node that is up
needs `force`; the tasks of a removed node are orphaned in the same transaction, because nothing
else would ever learn they are gone.

With the raft membership given (`membership`, the leader's `raftnode.membership.Membership`),
the rules follow raft rather than the stored roles: a demotion or removal that would leave too
few reachable managers for a quorum is refused with the arithmetic in the message; a manager
still in raft can be removed only with `force` (the role manager then takes it out of raft);
a manager node that is no longer a raft member (say after `--force-new-cluster`) is removed
like a worker.
"""

from __future__ import annotations

from typing import Protocol

import structlog
from google.protobuf import timestamp_pb2

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2, specs_pb2, types_pb2
from swarmd.clock import Clock
from swarmd.manager.controlapi import defaults, revisions
from swarmd.manager.controlapi.filters import node_name, select
from swarmd.manager.controlapi.validation import validate_node_spec
from swarmd.manager.store import MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="controlapi")

_MANAGER = types_pb2.NODE_ROLE_MANAGER
_WORKER = types_pb2.NODE_ROLE_WORKER
_READY = objects_pb2.NodeStatus.STATE_READY
_ORPHANED_MESSAGE = "task belonged to a node that has been removed"


def _get(tx: ReadTx, node_id: str) -> objects_pb2.Node:
    if not node_id:
        raise errors.InvalidArgument("node_id is required")
    node = tx.nodes.get(node_id)
    if node is None:
        raise errors.NotFound("node", node_id)
    return node


def _is_manager(node: objects_pb2.Node) -> bool:
    return node.spec.desired_role == _MANAGER or node.role == _MANAGER


class RaftMembership(Protocol):
    """What the node rules ask of the raft membership (`raftnode.membership.Membership`)."""

    def is_member(self, node_id: str) -> bool:
        """Is the manager `node_id` a raft member?"""
        ...

    def check_removal(self, node_id: str, verb: str = "removing") -> None:
        """Raise FailedPrecondition if taking `node_id` out of raft would lose quorum."""
        ...


class Nodes:
    """The node methods of the Control servicer.

    Args:
        store: the manager's store.
        clock: stamps orphaned tasks.
        membership: the raft membership, for the quorum rules; None keeps the store-only rules.
    """

    def __init__(
        self, store: MemoryStore, clock: Clock, membership: RaftMembership | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._membership = membership

    def get(self, req: control_pb2.GetNodeRequest) -> objects_pb2.Node:
        """One node by exact id."""
        return self._store.view(lambda tx: _get(tx, req.node_id))

    def list(self, req: control_pb2.ListNodesRequest) -> list[objects_pb2.Node]:
        """Nodes passing the filters (observed role, membership), sorted by id."""
        roles, memberships = set(req.roles), set(req.memberships)
        nodes = self._store.view(
            lambda tx: select(tx.nodes, req.filters, node_name, lambda n: n.spec.annotations.labels)
        )
        return [
            n
            for n in nodes
            if (not roles or n.role in roles)
            and (not memberships or n.spec.membership in memberships)
        ]

    async def update(self, req: control_pb2.UpdateNodeRequest) -> objects_pb2.Node:
        """Replace the node's spec, checked against the caller's node_version."""
        if req.node_version.index == 0:
            raise errors.InvalidArgument("node_version is required")
        if not req.HasField("spec"):
            raise errors.InvalidArgument("spec is required")
        validate_node_spec(req.spec)

        def fn(tx: Tx) -> objects_pb2.Node:
            node = _get(tx, req.node_id)
            if node.meta.version.index != req.node_version.index:
                raise errors.SequenceConflict(
                    "node", req.node_id, req.node_version.index, node.meta.version.index
                )
            _check_transition(tx, node, req.spec, self._membership)
            node.spec.CopyFrom(req.spec)
            return tx.nodes.update(node)

        updated = await self._store.update(fn)
        _log.info(
            "node updated",
            node_id=updated.id,
            availability=specs_pb2.NodeSpec.Availability.Name(updated.spec.availability),
            desired_role=types_pb2.NodeRole.Name(updated.spec.desired_role),
        )
        return updated

    async def remove(self, req: control_pb2.RemoveNodeRequest) -> None:
        """Delete a down (or, with force, any) worker node and orphan its tasks."""
        now = revisions.timestamp(self._clock.now())

        # swarmkit orphans in the removal's own transaction so a crash cannot strand tasks on a
        # deleted node; we do too for the first TX_CHANGES - 1 tasks, the store's limit, and
        # finish a larger node in follow-up transactions.
        def fn(tx: Tx) -> tuple[int, bool]:
            node = _get(tx, req.node_id)
            self._check_manager_removal(tx, node, force=req.force)
            if node.status.state == _READY and not req.force:
                raise errors.FailedPrecondition(
                    f"node {node.id} is not down and can't be removed; use --force"
                )
            tx.nodes.delete(node.id)
            return _orphan_tasks(tx, node.id, now, defaults.TX_CHANGES - 1)

        orphaned, more = await self._store.update(fn)
        while more:
            count, more = await self._store.update(
                lambda tx: _orphan_tasks(tx, req.node_id, now, defaults.TX_CHANGES)
            )
            orphaned += count
        _log.info("node removed", node_id=req.node_id, force=req.force, orphaned_tasks=orphaned)

    def _check_manager_removal(self, tx: ReadTx, node: objects_pb2.Node, *, force: bool) -> None:
        membership = self._membership
        in_raft = membership.is_member(node.id) if membership is not None else _is_manager(node)
        if not in_raft:
            return
        if membership is None or not force:
            raise errors.FailedPrecondition(
                f"node {node.id} is a cluster manager and is a member of the raft cluster. "
                "It must be demoted to worker before removal"
            )
        managers = [n for n in tx.nodes.list() if n.id != node.id and _is_manager(n)]
        if not managers:
            raise errors.FailedPrecondition(
                f"node {node.id} is the last manager of the swarm and cannot be removed"
            )
        membership.check_removal(node.id, "removing")


def _check_transition(
    tx: ReadTx,
    node: objects_pb2.Node,
    spec: specs_pb2.NodeSpec,
    membership: RaftMembership | None = None,
) -> None:
    if (
        node.spec.membership == specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED
        and spec.membership == specs_pb2.NodeSpec.MEMBERSHIP_PENDING
    ):
        raise errors.InvalidArgument(
            f'invalid membership "pending": node {node.id} is already accepted'
        )
    if node.spec.desired_role == _MANAGER and spec.desired_role == _WORKER:
        managers = [n for n in tx.nodes.list() if n.spec.desired_role == _MANAGER]
        if len(managers) <= 1:
            raise errors.FailedPrecondition(
                f"node {node.id} is the last manager of the swarm and cannot be demoted"
            )
        if membership is not None and membership.is_member(node.id):
            membership.check_removal(node.id, "demoting")


def _orphan_tasks(
    tx: Tx, node_id: str, now: timestamp_pb2.Timestamp, limit: int
) -> tuple[int, bool]:
    """swarmkit orphanNodeTasks: up to `limit` live tasks become ORPHANED with desired REMOVE.

    Terminal tasks are left alone, which also keeps the transaction small. Returns how many
    were orphaned and whether live tasks remain.
    """
    live = [
        t for t in tx.tasks.find_by_node(node_id) if t.status.state < types_pb2.TASK_STATE_COMPLETE
    ]
    for task in live[:limit]:
        task.status.CopyFrom(
            types_pb2.TaskStatus(
                state=types_pb2.TASK_STATE_ORPHANED, message=_ORPHANED_MESSAGE, timestamp=now
            )
        )
        task.desired_state = types_pb2.TASK_STATE_REMOVE
        tx.tasks.update(task)
    return min(len(live), limit), len(live) > limit


__all__ = ["Nodes"]
