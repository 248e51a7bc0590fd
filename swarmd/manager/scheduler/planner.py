"""The scheduler's decision core: which pending task goes to which node, or why it cannot.

Manager layer, pure and deterministic: `plan(nodes, tasks)` reads NodeInfos and tasks, changes
neither, and returns a `Plan` (nomad's "decisions as a value", swarmkit scheduler.go's
scheduleTaskGroup). The async `Scheduler` commits the plan to the store.

How a plan is made:
1. Pre-assigned tasks (global services: node_id already set) are validated against their node
   with the filter pipeline, in id order, and count on that node if they pass.
2. The other tasks are grouped by what makes them identical for placement (service, spec
   version, spec and endpoint) and each group is decided together, groups in a fixed order.
   The pipeline evaluates the group's first task over every node once.
3. The passing nodes form a tree by the placement preferences: level i splits by the value of
   the i-th spread descriptor (`node.labels.zone`), nodes without the label forming their own
   group. Each task goes down the tree, at every level into the branch holding the fewest
   tasks of the service (ties: branch order, label values sorted, the unlabelled group last),
   and at the leaf onto the node with the fewest tasks of the service, then the fewest tasks
   in all, then the lowest node id; a node where the service failed repeatedly in the last
   minutes (NodeInfo.is_faulty) comes after all the others.
4. A node is re-checked before every task placed on it, since each placement uses up
   reservations, host ports and the per-node replica cap; so nothing is ever over-committed.
   A branch with no node left is skipped. Tasks left over get the pipeline's reason, computed
   on the nodes as the group left them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from swarmd.api import objects_pb2
from swarmd.manager import constraint
from swarmd.manager.scheduler.nodeinfo import NodeInfo
from swarmd.manager.scheduler.pipeline import NO_SUITABLE_NODE, Pipeline


@dataclass(frozen=True, slots=True)
class Assignment:
    """Put task_id on node_id."""

    task_id: str
    node_id: str


@dataclass(frozen=True, slots=True)
class Unplaced:
    """task_id fits nowhere (or not on its pre-assigned node); reason says why, for users."""

    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The decisions of one scheduling pass, in the order they were taken."""

    assignments: tuple[Assignment, ...] = ()
    unplaced: tuple[Unplaced, ...] = ()


GroupKey = tuple[str, int, bytes, bytes, str]


def group_key(task: objects_pb2.Task) -> GroupKey:
    """What makes tasks interchangeable for placement; tasks without a service stand alone."""
    alone = "" if task.service_id else task.id
    return (
        task.service_id,
        task.spec_version.index,
        task.spec.SerializeToString(deterministic=True),
        task.endpoint.SerializeToString(deterministic=True),
        alone,
    )


def plan(
    nodes: Mapping[str, NodeInfo],
    tasks: Iterable[objects_pb2.Task],
    pipeline: Pipeline | None = None,
    *,
    now: float | None = None,
) -> Plan:
    """Decide where the pending tasks go.

    Args:
        nodes: the cluster's NodeInfos by id (not modified: the plan works on clones).
        tasks: PENDING tasks, unassigned or pre-assigned (node_id set).
        pipeline: the filters to use (default: `default_filters()`).
        now: the time (seconds since the epoch) recent failures are judged against; None
            ignores failure history.

    Returns:
        One Assignment or Unplaced per task.
    """
    planning = _Planning(nodes, pipeline or Pipeline(), now)
    groups: dict[GroupKey, list[objects_pb2.Task]] = {}
    preassigned: list[objects_pb2.Task] = []
    for task in tasks:
        if task.node_id:
            preassigned.append(task)
        else:
            groups.setdefault(group_key(task), []).append(task)
    for task in sorted(preassigned, key=lambda t: t.id):
        planning.validate(task)
    for key in sorted(groups):
        planning.place_group(sorted(groups[key], key=lambda t: (t.slot, t.id)))
    return Plan(tuple(planning.assignments), tuple(planning.unplaced))


class _Branch:
    """A subtree of candidate nodes sharing the values of the first few spread descriptors."""

    __slots__ = ("children", "count", "full", "heap")

    def __init__(self, count: int) -> None:
        self.count = count  # tasks of the service in the subtree, placed ones included
        self.full = False
        self.children: list[_Branch] = []
        # Leaves only: (faulty, service tasks, total tasks, node id), the spread order.
        self.heap: list[tuple[bool, int, int, str]] = []


class _Planning:
    """One pass: clones of the nodes, the pipeline, and the decisions taken so far."""

    def __init__(
        self, nodes: Mapping[str, NodeInfo], pipeline: Pipeline, now: float | None
    ) -> None:
        self.nodes = {nid: nodes[nid].clone() for nid in sorted(nodes)}
        self.pipeline = pipeline
        self.now = now
        self.assignments: list[Assignment] = []
        self.unplaced: list[Unplaced] = []

    def validate(self, task: objects_pb2.Task) -> None:
        info = self.nodes.get(task.node_id)
        if info is None:
            reason = f"{NO_SUITABLE_NODE} (assigned node {task.node_id} not found)"
            self.unplaced.append(Unplaced(task.id, reason))
            return
        evaluation = self.pipeline.evaluate(task, [info])
        if evaluation.passing:
            self._assign(task, info)
        else:
            self.unplaced.append(Unplaced(task.id, evaluation.reason))

    def place_group(self, tasks: Sequence[objects_pb2.Task]) -> None:
        first = tasks[0]
        evaluation = self.pipeline.evaluate(first, self.nodes.values())
        placed = 0
        if evaluation.passing:
            root = self._tree(evaluation.passing, _spread_keys(first), first.service_id)
            for task in tasks:
                node_id = self._descend(root)
                if node_id is None:
                    break
                self._assign(task, self.nodes[node_id])
                placed += 1
            if placed == len(tasks):
                return
            evaluation = self.pipeline.evaluate(first, self.nodes.values())
        for task in tasks[placed:]:
            self.unplaced.append(Unplaced(task.id, evaluation.reason))

    def _assign(self, task: objects_pb2.Task, info: NodeInfo) -> None:
        info.add_task(task)
        self.assignments.append(Assignment(task.id, info.id))

    def _tree(self, nodes: Sequence[NodeInfo], keys: Sequence[str], service_id: str) -> _Branch:
        branch = _Branch(sum(n.service_tasks(service_id) for n in nodes))
        if not keys:
            branch.heap = [
                (self._faulty(n, service_id), n.service_tasks(service_id), n.total_tasks, n.id)
                for n in nodes
            ]
            heapq.heapify(branch.heap)
            return branch
        by_value: dict[str | None, list[NodeInfo]] = {}
        for n in nodes:
            by_value.setdefault(constraint.node_attribute(keys[0], n.node), []).append(n)
        for value in sorted(by_value, key=lambda v: (v is None, v or "")):
            branch.children.append(self._tree(by_value[value], keys[1:], service_id))
        return branch

    def _faulty(self, node: NodeInfo, service_id: str) -> bool:
        return self.now is not None and node.is_faulty(service_id, self.now)

    def _descend(self, branch: _Branch) -> str | None:
        """Pick a node for one more task of the group under branch; None when it is full."""
        if branch.full:
            return None
        if not branch.children:
            node_id = self._pop_leaf(branch)
        else:
            node_id = None
            while node_id is None:
                open_children = [c for c in branch.children if not c.full]
                if not open_children:
                    break
                # min() keeps the first of equals: branch order breaks ties.
                node_id = self._descend(min(open_children, key=lambda c: c.count))
        if node_id is None:
            branch.full = True
        else:
            branch.count += 1
        return node_id

    def _pop_leaf(self, leaf: _Branch) -> str | None:
        while leaf.heap:
            faulty, service_tasks, total, node_id = heapq.heappop(leaf.heap)
            if self.pipeline.check(self.nodes[node_id]):
                heapq.heappush(leaf.heap, (faulty, service_tasks + 1, total + 1, node_id))
                return node_id
            # The group filled this node up (reservations, ports, max replicas): drop it.
        return None


def _spread_keys(task: objects_pb2.Task) -> list[str]:
    """The canonical spread descriptors of the task's placement preferences.

    The control API rejects bad descriptors; one that slipped through is skipped, so the task
    is still placed, only less spread.
    """
    keys: list[str] = []
    for pref in task.spec.placement.preferences:
        try:
            keys.append(constraint.check_spread_descriptor(pref.spread.spread_descriptor))
        except constraint.ConstraintError:
            continue
    return keys


__all__ = ["Assignment", "GroupKey", "Plan", "Unplaced", "group_key", "plan"]
