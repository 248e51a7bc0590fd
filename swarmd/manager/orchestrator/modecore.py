"""What the replicated and the global orchestrator cores share: their bookkeeping of events.

Manager layer, pure. `ModeReconciler` holds the restart supervisor and the updater, the
services, nodes and tasks that events made worth looking at, the start-up pass (taskinit) and
the wake-up rule; each mode subclasses it with the predicate of its services (`owns`) and what
a node or a task change means for it (`_node_changed`, `_task_changed`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from swarmd.api import objects_pb2
from swarmd.clock import Clock
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.driver import run_reconciler
from swarmd.manager.orchestrator.plan import Decision
from swarmd.manager.orchestrator.restart import RestartSupervisor
from swarmd.manager.orchestrator.taskinit import check_tasks
from swarmd.manager.orchestrator.update import ReplaceAllUpdater, Updater
from swarmd.manager.orchestrator.updater import RollingUpdater
from swarmd.manager.store import Event, EventKind, MemoryStore, ReadTx


class ModeReconciler:
    """The event bookkeeping of one service mode's orchestrator core (no I/O).

    Args:
        supervisor: its restart supervisor (a new one by default).
        updater: builds the Updater from the supervisor (default: `ReplaceAllUpdater`).
    """

    name = "mode"
    kinds: Collection[str] = ("service", "task", "node", "cluster")

    @staticmethod
    def owns(service: objects_pb2.Service) -> bool:
        """Whether a service is of this core's mode."""
        raise NotImplementedError

    def __init__(
        self,
        supervisor: RestartSupervisor | None = None,
        updater: Callable[[RestartSupervisor], Updater] | None = None,
    ) -> None:
        self.supervisor = supervisor or RestartSupervisor()
        self.updater = (updater or ReplaceAllUpdater)(self.supervisor)
        self._cluster: objects_pb2.Cluster | None = None
        self._services: set[str] = set()
        self._removed: set[str] = set()
        self._candidates: set[str] = set()
        self._nodes: set[str] = set()

    def start(self, tx: ReadTx, now: float) -> list[Decision]:
        """Start-up pass: taskinit fixes, every service of this mode to reconcile."""
        self._cluster = tasks.current_cluster(tx)
        init = check_tasks(tx, self.owns, self.supervisor, now)
        self._candidates = init.candidates
        self._services = {s.id for s in tx.services.list() if self.owns(s)}
        self._removed = set()
        self._nodes = set()
        return init.decisions

    def handle(self, event: Event, now: float) -> None:
        """Note what the change makes worth looking at."""
        obj, removed = event.obj, event.action is EventKind.REMOVE
        if isinstance(obj, objects_pb2.Cluster):
            self._cluster = None if removed else obj
        elif isinstance(obj, objects_pb2.Service):
            if not self.owns(obj):
                return
            if removed:
                self._removed.add(obj.id)
                self._services.discard(obj.id)
                self.supervisor.clear_service(obj.id)
                self.updater.forget(obj.id)
            else:
                self._services.add(obj.id)
        elif isinstance(obj, objects_pb2.Node):
            self.supervisor.observe_node(obj.id, None if removed else obj)
            self._node_changed(obj, removed)
        elif isinstance(obj, objects_pb2.Task):
            self._handle_task(obj, event.old, removed)

    def _handle_task(self, t: objects_pb2.Task, old: object, removed: bool) -> None:
        if removed:
            self.supervisor.observe_task_removed(t.id)
            if tasks.is_live(t) and t.service_id:
                self._services.add(t.service_id)  # a slot (or a node's task) may have emptied
            return
        self.supervisor.observe_task(t)
        if self.updater.watches(t.service_id):
            self._services.add(t.service_id)  # the update follows its tasks
        if tasks.is_live(t):
            self._task_changed(t, old)

    def _node_changed(self, node: objects_pb2.Node, removed: bool) -> None:
        """A node was created, updated or removed."""
        self._nodes.add(node.id)

    def _task_changed(self, t: objects_pb2.Task, old: object) -> None:
        """A live task changed: a stopped one is a restart candidate."""
        if t.status.state > tasks.RUNNING:
            self._candidates.add(t.id)

    def plan(self, tx: ReadTx, now: float) -> list[Decision]:
        """The decisions of this pass (each mode plans its own)."""
        raise NotImplementedError

    def next_wakeup(self) -> float | None:
        """At once when events left work; else when a delayed start or an update is due."""
        if self._candidates or self._nodes or self._services or self._removed:
            return float("-inf")
        due = [self.supervisor.next_deadline(), self.updater.next_deadline()]
        return min((d for d in due if d is not None), default=None)


C = TypeVar("C", bound=ModeReconciler)


class ModeOrchestrator(Generic[C]):
    """Runs a mode's core against the store until cancelled (leader-only).

    Args:
        store: the manager's store.
        clock: time for timestamps and restart delays (FakeClock in tests).
        updater: builds the Updater from the restart supervisor (default: rolling updates).
    """

    core_class: type[C]

    def __init__(
        self,
        store: MemoryStore,
        clock: Clock,
        updater: Callable[[RestartSupervisor], Updater] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.core: C = self.core_class(updater=updater or RollingUpdater)

    async def run(self) -> None:
        """Reconcile until cancelled."""
        await run_reconciler(self._store, self._clock, self.core)


__all__ = ["ModeOrchestrator", "ModeReconciler"]
