"""The global orchestrator: one task of every global service on every eligible node.

Manager layer, leader-only (swarmkit manager/orchestrator/global). Named `global_` because
`global` is a Python keyword. A node is eligible when it is not DOWN, not drained and matches
the service's placement constraints: tasks on nodes that stop being eligible get desired
SHUTDOWN. Paused nodes keep the tasks they have but get no new ones and no updates. Tasks are
created with their node pre-set (slot 0); the scheduler only validates them.

`reconcile_global` is the pure step for one service over some nodes; `GlobalReconciler` the
events -> decisions core (with a RestartSupervisor for tasks that stop while their node stays
eligible); `GlobalOrchestrator` runs it against the store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

from swarmd.api import objects_pb2
from swarmd.manager.orchestrator import placement, rollout, updatestatus
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.modecore import ModeOrchestrator, ModeReconciler
from swarmd.manager.orchestrator.plan import (
    CreateTask,
    Decision,
    DeleteTask,
    ReplaceTask,
    SetDesiredState,
)
from swarmd.manager.orchestrator.update import Updater
from swarmd.manager.store import ReadTx

ShouldRestart = Callable[[objects_pb2.Task], bool]


def _shutdown(group: Iterable[objects_pb2.Task]) -> list[Decision]:
    return [SetDesiredState(t.id, tasks.SHUTDOWN) for t in group if tasks.is_live(t)]


def _one_per_node(
    service: objects_pb2.Service,
    live: list[objects_pb2.Task],
    updating: bool,
    out: list[Decision],
) -> list[objects_pb2.Task]:
    """Keep one live task on a node: a clean one if any, the newest otherwise.

    During an update the old task keeps running next to a new one that is not up yet (a
    start-first update; the updater retires the old task once the new one is up).
    """
    clean = [t for t in live if not tasks.is_dirty(service, t)]
    keep = tasks.newest(clean or live) or live[0]
    if clean and len(clean) < len(live) and updating and not rollout.is_up(keep):
        return live
    out.extend(_shutdown(t for t in live if t.id != keep.id))
    return [keep]


def is_eligible(service: objects_pb2.Service, node: objects_pb2.Node) -> bool:
    """Whether the service's task should run on the node (ignoring pause)."""
    return not placement.is_unavailable(node) and placement.service_matches(service, node)


def reconcile_global(
    service: objects_pb2.Service,
    nodes: Sequence[objects_pb2.Node],
    service_tasks: Iterable[objects_pb2.Task],
    should_restart: ShouldRestart,
    updater: Updater,
    now: float,
    cluster: objects_pb2.Cluster | None = None,
    *,
    every_node: bool = True,
) -> list[Decision]:
    """The decisions that give the service one task on each eligible node among `nodes`.

    Args:
        service_tasks: the service's tasks (on `nodes` at least).
        every_node: `nodes` is the whole cluster, so live tasks on any other node (deleted
            nodes, unassigned tasks) are shut down too, and an active update goes to the
            updater even without dirty slots.
    """
    service_tasks = list(service_tasks)
    updating = updatestatus.is_active(service)
    by_node: dict[str, list[objects_pb2.Task]] = {}
    for t in service_tasks:
        if t.desired_state < tasks.REMOVE:
            by_node.setdefault(t.node_id, []).append(t)
    out: list[Decision] = []
    dirty: list[list[objects_pb2.Task]] = []
    for node in nodes:
        group = by_node.pop(node.id, [])
        if not is_eligible(service, node):
            out.extend(_shutdown(group))
            continue
        if placement.is_paused(node):
            continue
        live = [t for t in group if tasks.is_live(t)]
        if len(live) > 1:
            live = _one_per_node(service, live, updating, out)
        slot = live
        if not slot:
            last = tasks.newest(group)
            if last is not None and tasks.stopped_on_its_own(last) and not should_restart(last):
                slot = [last]  # stopped for good; a spec update still replaces it
        if not slot:
            out.append(CreateTask(tasks.new_task(service, 0, node.id, now, cluster)))
        elif any(tasks.is_dirty(service, t) for t in slot):
            dirty.append(slot)
    if every_node:
        for group in by_node.values():
            out.extend(_shutdown(group))
    if dirty or (every_node and updating):
        out.extend(updater.update(service, dirty, now, cluster, service_tasks))
    return out


class GlobalReconciler(ModeReconciler):
    """The global orchestrator's core: store events in, decisions out (no I/O).

    Args:
        supervisor: its restart supervisor (a new one by default).
        updater: builds the Updater from the supervisor (default: `ReplaceAllUpdater`).
    """

    name = "global"
    owns = staticmethod(tasks.is_global)

    def plan(self, tx: ReadTx, now: float) -> list[Decision]:
        """Due starts and restarts first; services and nodes once restarts are committed."""
        self._services.update(self.updater.due(now))
        out = self.supervisor.due(now)
        restarts = self._plan_restarts(tx, now)
        if restarts:
            return out + restarts
        for service_id in sorted(self._removed):
            out.extend(
                SetDesiredState(t.id, tasks.REMOVE)
                for t in tx.tasks.find_by_service(service_id)
                if t.desired_state < tasks.REMOVE
            )
        if self._services or self._nodes:
            services = [s for s in tx.services.list() if tasks.is_global(s)]
            # The updater needs every node's task: a node change reaching a service with an
            # update to make reconciles that service over all nodes.
            self._services.update(s.id for s in services if self._updates_on_nodes(tx, s))
            nodes = tx.nodes.list() if self._services else []
            for service in services:
                if service.id in self._services:
                    found = tx.tasks.find_by_service(service.id)
                    out.extend(self._reconcile(service, nodes, found, now))
            for node_id in sorted(self._nodes):
                out.extend(self._reconcile_node(tx, node_id, services, now))
        self._removed.clear()
        self._services.clear()
        self._nodes.clear()
        return out

    def _updates_on_nodes(self, tx: ReadTx, service: objects_pb2.Service) -> bool:
        if service.id in self._services or not self._nodes:
            return False
        if updatestatus.is_active(service):
            return True
        return any(
            t.service_id == service.id and tasks.is_live(t) and tasks.is_dirty(service, t)
            for node_id in self._nodes
            for t in tx.tasks.find_by_node(node_id)
        )

    def _reconcile(
        self,
        service: objects_pb2.Service,
        nodes: Sequence[objects_pb2.Node],
        service_tasks: Iterable[objects_pb2.Task],
        now: float,
        *,
        every_node: bool = True,
    ) -> list[Decision]:
        return reconcile_global(
            service,
            nodes,
            service_tasks,
            functools.partial(self.supervisor.should_restart, service=service),
            self.updater,
            now,
            self._cluster,
            every_node=every_node,
        )

    def _reconcile_node(
        self, tx: ReadTx, node_id: str, services: Sequence[objects_pb2.Service], now: float
    ) -> list[Decision]:
        on_node = tx.tasks.find_by_node(node_id)
        node = tx.nodes.get(node_id)
        out: list[Decision] = []
        for service in services:
            if service.id in self._services:
                continue  # reconciled over every node already
            mine = [t for t in on_node if t.service_id == service.id]
            if node is None:
                # The node left the cluster: its tasks cannot run anywhere else.
                out.extend(DeleteTask(t.id) for t in mine)
                continue
            out.extend(self._reconcile(service, [node], mine, now, every_node=False))
        return out

    def _plan_restarts(self, tx: ReadTx, now: float) -> list[Decision]:
        out: list[Decision] = []
        for task_id in sorted(self._candidates):
            t = tx.tasks.get(task_id)
            if t is None or not tasks.is_live(t):
                continue
            service = tx.services.get(t.service_id)
            if service is None or not tasks.is_global(service):
                continue
            node = tx.nodes.get(t.node_id) if t.node_id else None
            if node is None or placement.is_unavailable(node):
                continue  # the node reconcile shuts it down
            if placement.is_paused(node) or not placement.service_matches(service, node):
                out.append(ReplaceTask(t.id, None))
                continue
            out.extend(self.supervisor.restart(t, service, node, now, self._cluster))
        self._candidates.clear()
        return out


class GlobalOrchestrator(ModeOrchestrator[GlobalReconciler]):
    """Runs a GlobalReconciler against the store until cancelled (leader-only)."""

    core_class = GlobalReconciler


__all__ = ["GlobalOrchestrator", "GlobalReconciler", "is_eligible", "reconcile_global"]
