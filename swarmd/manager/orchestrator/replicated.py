"""The replicated orchestrator: keeps slots 1..N of every replicated service filled.

Manager layer, leader-only. `reconcile_service` is the pure service-level step (scale up, scale
down with balanced victims, retire dead slots, hand dirty slots to the Updater);
`ReplicatedReconciler` is the events -> decisions core that also does the task-level part
(restart stopped tasks and tasks on unavailable nodes through its RestartSupervisor);
`ReplicatedOrchestrator` runs the core against the store (swarmkit
manager/orchestrator/replicated, design/orchestrators.md).

Slots (design/task_model.md): a slot is *occupied* when one of its tasks is meant to run
(desired <= RUNNING), or when its newest task stopped on its own (COMPLETE, FAILED, REJECTED)
and the restart policy says not to restart it (the slot stays filled by a task that is done,
so conditions NONE and ON_FAILURE are honoured, and a spec update still reaches it). Other
slots with tasks are *dead*. Tasks with desired REMOVE are on their way out and belong to no
slot. Scale-down and dead slots set desired REMOVE on every task of the slot: they are not
kept as history.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.orchestrator import placement, updatestatus
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.modecore import ModeOrchestrator, ModeReconciler
from swarmd.manager.orchestrator.plan import CreateTask, Decision, SetDesiredState
from swarmd.manager.orchestrator.update import Updater
from swarmd.manager.store import ReadTx

_ROLLBACK_STARTED = types_pb2.UpdateStatus.UPDATE_STATE_ROLLBACK_STARTED

ShouldRestart = Callable[[objects_pb2.Task], bool]


@dataclass(slots=True)
class Slots:
    """A replicated service's tasks by slot number (tasks with desired REMOVE left out).

    Attributes:
        occupied: slot -> the tasks meant to run there, or [the newest, stopped for good].
        dead: slot -> every task of a slot that is not occupied.
        history: slot -> every task of the slot.
    """

    occupied: dict[int, list[objects_pb2.Task]] = field(default_factory=dict)
    dead: dict[int, list[objects_pb2.Task]] = field(default_factory=dict)
    history: dict[int, list[objects_pb2.Task]] = field(default_factory=dict)


def group_slots(
    service: objects_pb2.Service,
    service_tasks: Iterable[objects_pb2.Task],
    should_restart: ShouldRestart,
) -> Slots:
    """Sort the service's tasks into occupied and dead slots (see the module docstring)."""
    out = Slots()
    for t in service_tasks:
        if t.desired_state >= tasks.REMOVE or t.slot == 0:
            continue
        out.history.setdefault(t.slot, []).append(t)
    # During a rollback every slot must converge, even those stopped for good.
    rolling_back = service.update_status.state == _ROLLBACK_STARTED
    for slot, group in out.history.items():
        live = [t for t in group if tasks.is_live(t)]
        if live:
            out.occupied[slot] = live
            continue
        last = tasks.newest(group)
        if (
            last is not None
            and not rolling_back
            and tasks.stopped_on_its_own(last)
            and not should_restart(last)
        ):
            out.occupied[slot] = [last]
        else:
            out.dead[slot] = group
    return out


def _node_of(slot: Sequence[objects_pb2.Task]) -> str:
    """The node a slot runs on; "" when unassigned or spread over several tasks."""
    return slot[0].node_id if len(slot) == 1 else ""


def _is_running(slot: Sequence[objects_pb2.Task]) -> bool:
    return any(t.status.state == tasks.RUNNING for t in slot)


def choose_victims(slots: Mapping[int, Sequence[objects_pb2.Task]], count: int) -> list[int]:
    """The slots to remove when scaling down by count, keeping the spread across nodes even.

    One at a time: first slots not (or not singly) placed on a node; then from the node
    holding the most slots of the service; among candidates, a slot that is not running goes
    before a running one, then the highest slot number (swarmkit replicated/services.go).
    """
    remaining = dict(slots)
    per_node = Counter(n for n in map(_node_of, remaining.values()) if n)
    victims: list[int] = []
    for _ in range(min(count, len(remaining))):
        pool = [s for s, group in remaining.items() if not _node_of(group)]
        if not pool:
            top = max(per_node.values())
            crowded = {n for n, c in per_node.items() if c == top}
            pool = [s for s, group in remaining.items() if _node_of(group) in crowded]
        victim = max(pool, key=lambda s: (not _is_running(remaining[s]), s))
        node = _node_of(remaining.pop(victim))
        if node:
            per_node[node] -= 1
        victims.append(victim)
    return victims


def _remove_all(group: Iterable[objects_pb2.Task]) -> list[Decision]:
    return [SetDesiredState(t.id, tasks.REMOVE) for t in group if t.desired_state < tasks.REMOVE]


def reconcile_service(
    service: objects_pb2.Service,
    service_tasks: Iterable[objects_pb2.Task],
    should_restart: ShouldRestart,
    updater: Updater,
    now: float,
    cluster: objects_pb2.Cluster | None = None,
) -> list[Decision]:
    """The decisions that bring a replicated service's slots to its replica count.

    Scale up fills the lowest free slot numbers (a dead slot reused keeps its history); scale
    down removes `choose_victims`; dead slots not reused are removed; the occupied slots left
    that hold a dirty task go to the updater (also with none while an update is active).
    """
    service_tasks = list(service_tasks)
    slots = group_slots(service, service_tasks, should_restart)
    want = service.spec.replicated.replicas
    have = len(slots.occupied)
    out: list[Decision] = []
    keep = slots.occupied
    if want > have:
        free = (s for s in itertools.count(1) if s not in slots.occupied)
        for slot in itertools.islice(free, want - have):
            slots.dead.pop(slot, None)
            out.append(CreateTask(tasks.new_task(service, slot, "", now, cluster)))
    elif want < have:
        victims = set(choose_victims(slots.occupied, have - want))
        for slot in sorted(victims):
            out.extend(_remove_all(slots.history[slot]))
        keep = {s: g for s, g in slots.occupied.items() if s not in victims}
    for slot in sorted(slots.dead):
        out.extend(_remove_all(slots.dead[slot]))
    dirty = [keep[s] for s in sorted(keep) if any(tasks.is_dirty(service, t) for t in keep[s])]
    if dirty or updatestatus.is_active(service):
        out.extend(updater.update(service, dirty, now, cluster, service_tasks))
    return out


class ReplicatedReconciler(ModeReconciler):
    """The replicated orchestrator's core: store events in, decisions out (no I/O).

    Args:
        supervisor: its restart supervisor (a new one by default).
        updater: builds the Updater from the supervisor (default: `ReplaceAllUpdater`).
    """

    name = "replicated"
    owns = staticmethod(tasks.is_replicated)

    def _node_changed(self, node: objects_pb2.Node, removed: bool) -> None:
        if removed or placement.is_unavailable(node):
            self._nodes.add(node.id)

    def _task_changed(self, t: objects_pb2.Task, old: object) -> None:
        # A stopped task is a restart candidate; so is one that moved onto a node that may be
        # unavailable by now.
        moved = not isinstance(old, objects_pb2.Task) or old.node_id != t.node_id
        if t.status.state > tasks.RUNNING or (t.node_id and moved):
            self._candidates.add(t.id)

    def plan(self, tx: ReadTx, now: float) -> list[Decision]:
        """Due starts and restarts first; services once restarts are committed."""
        self._services.update(self.updater.due(now))
        out = self.supervisor.due(now)
        restarts = self._plan_restarts(tx, now)
        if restarts:
            # Reconcile services against a view that holds the replacements (next plan).
            return out + restarts
        for service_id in sorted(self._removed):
            out.extend(_remove_all(tx.tasks.find_by_service(service_id)))
        self._removed.clear()
        for service_id in sorted(self._services):
            service = tx.services.get(service_id)
            if service is None or not tasks.is_replicated(service):
                continue
            out.extend(
                reconcile_service(
                    service,
                    tx.tasks.find_by_service(service_id),
                    functools.partial(self.supervisor.should_restart, service=service),
                    self.updater,
                    now,
                    self._cluster,
                )
            )
        self._services.clear()
        return out

    def _plan_restarts(self, tx: ReadTx, now: float) -> list[Decision]:
        ids = set(self._candidates)
        for node_id in self._nodes:
            ids.update(t.id for t in tx.tasks.find_by_node(node_id) if tasks.is_live(t))
        self._candidates.clear()
        self._nodes.clear()
        out: list[Decision] = []
        for task_id in sorted(ids):
            t = tx.tasks.get(task_id)
            if t is None or not tasks.is_live(t):
                continue
            service = tx.services.get(t.service_id)
            if service is None or not tasks.is_replicated(service):
                continue
            node = tx.nodes.get(t.node_id) if t.node_id else None
            out.extend(self.supervisor.restart(t, service, node, now, self._cluster))
        return out


class ReplicatedOrchestrator(ModeOrchestrator[ReplicatedReconciler]):
    """Runs a ReplicatedReconciler against the store until cancelled (leader-only)."""

    core_class = ReplicatedReconciler


__all__ = [
    "ReplicatedOrchestrator",
    "ReplicatedReconciler",
    "Slots",
    "choose_victims",
    "group_slots",
    "reconcile_service",
]
