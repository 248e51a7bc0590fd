"""The constraint enforcer: rejects tasks whose node no longer suits them.

Manager layer, leader-only (swarmkit manager/orchestrator/constraintenforcer). When a node
changes (labels, role, resources), the tasks on it that are meant to run are checked against
their service's *current* placement constraints and the node's resources; a task that fails
gets observed state REJECTED. The enforcer never touches desired states: the orchestrator sees
a REJECTED task and restarts it per policy, and the scheduler places the replacement on a node
that fits. Only active nodes are checked (drained nodes lose their tasks anyway; paused nodes
keep theirs untouched).

`noncompliant_tasks` is the pure step; `ConstraintEnforcerCore` the core; `ConstraintEnforcer`
its shell.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from swarmd.api import objects_pb2, specs_pb2
from swarmd.clock import Clock
from swarmd.manager.orchestrator import placement
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.driver import run_reconciler
from swarmd.manager.orchestrator.plan import Decision, RejectTask
from swarmd.manager.store import Event, EventKind, MemoryStore, ReadTx

REJECT_MESSAGE = "task rejected by constraint enforcer"
REJECT_ERR = "assigned node no longer meets constraints"

_ACTIVE = specs_pb2.NodeSpec.AVAILABILITY_ACTIVE


def noncompliant_tasks(
    node: objects_pb2.Node,
    node_tasks: Sequence[objects_pb2.Task],
    services: Mapping[str, objects_pb2.Service],
) -> list[objects_pb2.Task]:
    """The node's running-or-starting tasks that its current state no longer allows.

    A task breaks its service's constraints, or its reservations do not fit in what the node
    offers once the older tasks' reservations are taken (resources the node does not report
    are not checked).
    """
    if node.spec.availability != _ACTIVE:
        return []
    cpus = node.description.resources.nano_cpus
    memory = node.description.resources.memory_bytes
    out: list[objects_pb2.Task] = []
    ordered = sorted(node_tasks, key=lambda t: (tasks.seconds(t.meta.created_at), t.id))
    for t in ordered:
        if not tasks.is_live(t) or t.status.state >= tasks.COMPLETE:
            continue
        service = services.get(t.service_id)
        if service is None:
            continue
        if not placement.service_matches(service, node):
            out.append(t)
            continue
        want = t.spec.resources.reservations
        if (cpus and want.nano_cpus > cpus) or (memory and want.memory_bytes > memory):
            out.append(t)
            continue
        if cpus:
            cpus -= want.nano_cpus
        if memory:
            memory -= want.memory_bytes
    return out


class ConstraintEnforcerCore:
    """Checks the tasks of every node that changed (no I/O)."""

    name = "constraint-enforcer"
    kinds: Collection[str] = ("node",)

    def __init__(self) -> None:
        self._nodes: set[str] = set()

    def start(self, tx: ReadTx, now: float) -> list[Decision]:
        """Check every node once."""
        self._nodes = {n.id for n in tx.nodes.list()}
        return []

    def handle(self, event: Event, now: float) -> None:
        """Note nodes that were created or changed."""
        if isinstance(event.obj, objects_pb2.Node) and event.action is not EventKind.REMOVE:
            self._nodes.add(event.obj.id)

    def next_wakeup(self) -> float | None:
        """At once when a node changed."""
        return float("-inf") if self._nodes else None

    def plan(self, tx: ReadTx, now: float) -> list[Decision]:
        """REJECTED for every task its node no longer allows."""
        out: list[Decision] = []
        for node_id in sorted(self._nodes):
            node = tx.nodes.get(node_id)
            if node is None:
                continue
            on_node = tx.tasks.find_by_node(node_id)
            services: dict[str, objects_pb2.Service] = {}
            for t in on_node:
                if t.service_id and t.service_id not in services:
                    svc = tx.services.get(t.service_id)
                    if svc is not None:
                        services[t.service_id] = svc
            out.extend(
                RejectTask(t.id, REJECT_MESSAGE, REJECT_ERR, now)
                for t in noncompliant_tasks(node, on_node, services)
            )
        self._nodes.clear()
        return out


class ConstraintEnforcer:
    """Runs a ConstraintEnforcerCore against the store until cancelled (leader-only)."""

    def __init__(self, store: MemoryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.core = ConstraintEnforcerCore()

    async def run(self) -> None:
        """Enforce until cancelled."""
        await run_reconciler(self._store, self._clock, self.core)


__all__ = [
    "REJECT_ERR",
    "REJECT_MESSAGE",
    "ConstraintEnforcer",
    "ConstraintEnforcerCore",
    "noncompliant_tasks",
]
