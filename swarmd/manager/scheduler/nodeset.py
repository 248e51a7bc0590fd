"""NodeSet: the scheduler's own copy of the cluster, kept from store events.

Manager layer, pure. The async `Scheduler` loads it from a store view and feeds it every node
and task event; the planner reads its NodeInfos and pending tasks. Which tasks count:

- a task *holds resources* on its node from ASSIGNED to RUNNING (a task past RUNNING has
  stopped, one before ASSIGNED has not been placed);
- a task is *pending* (to schedule) when its observed state is PENDING and its desired state
  is at most RUNNING; with node_id set it is pre-assigned (global services) and only needs
  validating against that node;
- a task is *cancelled* when it is still PENDING but its desired state moved past RUNNING (scaled
  down, updated, service removed): no agent will ever see it, so the scheduler itself moves it
  to SHUTDOWN (swarmkit#2998, which fixed tasks stuck in PENDING forever).

Failures (FAILED or REJECTED tasks with a node) are remembered on their node, stamped with
the time the store recorded them (meta.updated_at, the leader's clock), so the planner can try
a node where a service keeps failing last (swarmkit's faulty-node rule). They are rebuilt from
the failed tasks still in the store when the set is loaded.

Updates are ordered by the task's meta.version: an older copy never replaces a newer one, so the
scheduler may record its own writes as soon as they commit, whether or not the watch has
delivered them yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.scheduler.nodeinfo import NodeInfo


def holds_resources(task: objects_pb2.Task) -> bool:
    """Whether the task counts on its node (reservations, ports, spread)."""
    return bool(task.node_id) and (
        types_pb2.TASK_STATE_ASSIGNED <= task.status.state <= types_pb2.TASK_STATE_RUNNING
    )


def is_pending(task: objects_pb2.Task) -> bool:
    """Whether the scheduler should place (or validate) the task."""
    return (
        task.status.state == types_pb2.TASK_STATE_PENDING
        and task.desired_state <= types_pb2.TASK_STATE_RUNNING
    )


def is_cancelled(task: objects_pb2.Task) -> bool:
    """Whether the task never got placed and no longer should be (desired past RUNNING)."""
    return (
        task.status.state == types_pb2.TASK_STATE_PENDING
        and task.desired_state > types_pb2.TASK_STATE_RUNNING
    )


_FAILED_STATES = frozenset({types_pb2.TASK_STATE_FAILED, types_pb2.TASK_STATE_REJECTED})


def failed_at(task: objects_pb2.Task) -> float:
    """When the task's last change was stored (seconds since the epoch); the status timestamp
    when the store's is missing."""
    stamp = task.meta.updated_at if task.meta.HasField("updated_at") else task.status.timestamp
    return stamp.ToNanoseconds() / 1e9


class NodeSet:
    """NodeInfos by node id, plus the pending tasks. Loop-confined, no I/O."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._tasks: dict[str, objects_pb2.Task] = {}
        self._pending: dict[str, objects_pb2.Task] = {}
        self._cancelled: dict[str, objects_pb2.Task] = {}
        # Tasks holding resources on nodes not (or no longer) in the set, by node id: they
        # count again if the node (re)appears.
        self._orphans: dict[str, dict[str, objects_pb2.Task]] = {}

    @property
    def nodes(self) -> Mapping[str, NodeInfo]:
        """The known nodes, by id (read-only: change them through this class)."""
        return self._nodes

    def pending(self) -> list[objects_pb2.Task]:
        """The tasks to schedule, sorted by id."""
        return [self._pending[k] for k in sorted(self._pending)]

    def cancelled(self) -> list[objects_pb2.Task]:
        """The tasks to move from PENDING to SHUTDOWN, sorted by id."""
        return [self._cancelled[k] for k in sorted(self._cancelled)]

    def has_pending(self) -> bool:
        """Whether any task waits for the scheduler (to place, validate or shut down)."""
        return bool(self._pending or self._cancelled)

    def task(self, task_id: str) -> objects_pb2.Task | None:
        """The tracked copy of a task (pending or holding resources), or None."""
        return self._tasks.get(task_id)

    def load(self, nodes: Iterable[objects_pb2.Node], tasks: Iterable[objects_pb2.Task]) -> None:
        """Add nodes and tasks read from a store view (the set starts empty)."""
        for node in nodes:
            self.put_node(node)
        for task in tasks:
            self.put_task(task)

    def put_node(self, node: objects_pb2.Node) -> None:
        """A node was created or updated."""
        info = self._nodes.get(node.id)
        if info is None:
            orphans = self._orphans.pop(node.id, {})
            self._nodes[node.id] = NodeInfo(node, orphans.values())
        else:
            info.set_node(node)

    def remove_node(self, node_id: str) -> None:
        """A node was deleted; its tasks wait in case it comes back."""
        info = self._nodes.pop(node_id, None)
        if info is not None and info.tasks:
            self._orphans[node_id] = dict(info.tasks)

    def put_task(self, task: objects_pb2.Task, *, known_only: bool = False) -> bool:
        """A task was created or updated; returns whether this copy was taken.

        A copy older (by meta.version) than the tracked one is ignored. With known_only, a task
        not tracked any more (deleted, or finished) is ignored too: that is how the scheduler
        records its own commits without resurrecting a task deleted meanwhile.
        """
        old = self._tasks.get(task.id)
        if old is None and known_only:
            return False
        if old is not None:
            if old.meta.version.index > task.meta.version.index:
                return False
            self._detach(old)
        if task.node_id and task.status.state in _FAILED_STATES:
            info = self._nodes.get(task.node_id)
            if info is not None:
                info.record_failure(task, failed_at(task))
        if holds_resources(task):
            info = self._nodes.get(task.node_id)
            if info is None:
                self._orphans.setdefault(task.node_id, {})[task.id] = task
            else:
                info.add_task(task)
            self._tasks[task.id] = task
        elif is_pending(task):
            self._pending[task.id] = task
            self._tasks[task.id] = task
        elif is_cancelled(task):
            self._cancelled[task.id] = task
            self._tasks[task.id] = task
        else:
            self._tasks.pop(task.id, None)
        return True

    def remove_task(self, task_id: str) -> None:
        """A task was deleted."""
        old = self._tasks.pop(task_id, None)
        if old is not None:
            self._detach(old)

    def _detach(self, task: objects_pb2.Task) -> None:
        self._pending.pop(task.id, None)
        self._cancelled.pop(task.id, None)
        info = self._nodes.get(task.node_id)
        if info is not None:
            info.remove_task(task.id)
        orphans = self._orphans.get(task.node_id)
        if orphans is not None:
            orphans.pop(task.id, None)
            if not orphans:
                del self._orphans[task.node_id]


__all__ = ["NodeSet", "holds_resources", "is_cancelled", "is_pending"]
