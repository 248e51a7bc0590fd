"""The task reaper: deletes task history the cluster no longer needs.

Manager layer, leader-only (swarmkit manager/orchestrator/taskreaper). Three kinds of tasks go:

- history beyond the retention limit: per slot (replicated) or per node (global), the oldest
  tasks that are neither meant to run nor running, until at most
  `cluster.spec.orchestration.task_history_retention_limit` tasks remain (default 5, negative
  keeps everything; at least max_attempts + 1 when the restart policy limits attempts, so the
  restart history can be rebuilt from the store);
- tasks with desired REMOVE (scaled away, service deleted) once they are terminal or were never
  assigned;
- serviceless tasks that were ORPHANED.

Work is batched: a plan runs `BATCH_INTERVAL` seconds after the first change noted, or at once
past `MAX_DIRTY` noted items. `TaskReaperCore` is the pure core, `TaskReaper` its shell.
"""

from __future__ import annotations

from collections.abc import Collection

from swarmd.api import objects_pb2
from swarmd.clock import Clock
from swarmd.manager.controlapi import defaults
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.driver import run_reconciler
from swarmd.manager.orchestrator.plan import Decision, DeleteTask
from swarmd.manager.store import Event, EventKind, MemoryStore, ReadTx

BATCH_INTERVAL = 0.25  # swarmkit reaperBatchingInterval
MAX_DIRTY = 1000  # swarmkit maxDirty


def retention_limit(cluster: objects_pb2.Cluster | None) -> int:
    """Tasks kept per slot: the cluster's setting, or the default when it has none."""
    if cluster is None or not cluster.spec.HasField("orchestration"):
        return defaults.TASK_HISTORY_RETENTION
    return cluster.spec.orchestration.task_history_retention_limit


def is_removable(task: objects_pb2.Task) -> bool:
    """A REMOVE-desired task that can go: terminal, or never assigned to a node."""
    return task.desired_state == tasks.REMOVE and (
        task.status.state >= tasks.COMPLETE or task.status.state < tasks.ASSIGNED
    )


def _is_running(task: objects_pb2.Task) -> bool:
    return tasks.is_live(task) or task.status.state <= tasks.RUNNING


def reap_slot(history: list[objects_pb2.Task], limit: int) -> list[objects_pb2.Task]:
    """The tasks of one slot to delete so at most limit remain (running tasks stay)."""
    excess = len(history) - limit
    if limit < 0 or excess <= 0:
        return []
    doomed: list[objects_pb2.Task] = []
    for t in sorted(history, key=lambda t: (tasks.status_time(t), t.id)):
        if len(doomed) == excess:
            break
        if not _is_running(t):
            doomed.append(t)
    return doomed


class TaskReaperCore:
    """The reaper's core: notes task changes, plans deletions in batches (no I/O)."""

    name = "reaper"
    kinds: Collection[str] = ("task", "cluster")

    def __init__(self) -> None:
        self._limit = defaults.TASK_HISTORY_RETENTION
        self._dirty: set[tasks.SlotKey] = set()
        self._held: set[tasks.SlotKey] = set()  # slots with several running tasks
        self._candidates: set[str] = set()  # orphaned or removable tasks
        self._since: float | None = None

    def start(self, tx: ReadTx, now: float) -> list[Decision]:
        """Look at every slot and every removable or orphaned task now."""
        self._limit = retention_limit(tasks.current_cluster(tx))
        self._dirty = set()
        self._held = set()
        self._candidates = set()
        for t in tx.tasks.list():
            if t.service_id:
                self._dirty.add(tasks.slot_key(t))
            if is_removable(t) or (not t.service_id and t.status.state >= tasks.ORPHANED):
                self._candidates.add(t.id)
        return self.plan(tx, now)

    def handle(self, event: Event, now: float) -> None:
        """Note slots that grew or whose tasks stopped, and tasks that may be deleted."""
        obj = event.obj
        if isinstance(obj, objects_pb2.Cluster):
            if event.action is not EventKind.REMOVE:
                self._limit = retention_limit(obj)
            return
        if not isinstance(obj, objects_pb2.Task) or event.action is EventKind.REMOVE:
            return
        noted = False
        if obj.service_id and (
            event.action is EventKind.CREATE or obj.status.state > tasks.RUNNING
        ):
            self._dirty.add(tasks.slot_key(obj))
            self._dirty.update(self._held)
            self._held.clear()
            noted = True
        if is_removable(obj) or (not obj.service_id and obj.status.state >= tasks.ORPHANED):
            self._candidates.add(obj.id)
            noted = True
        if noted and self._since is None:
            self._since = now

    def next_wakeup(self) -> float | None:
        """BATCH_INTERVAL after the first noted change; at once past MAX_DIRTY items."""
        if not self._dirty and not self._candidates:
            return None
        if len(self._dirty) + len(self._candidates) > MAX_DIRTY or self._since is None:
            return float("-inf")
        return self._since + BATCH_INTERVAL

    def plan(self, tx: ReadTx, now: float) -> list[Decision]:
        """Delete what the noted slots and tasks allow."""
        doomed: set[str] = set()
        for task_id in self._candidates:
            t = tx.tasks.get(task_id)
            if t is not None and (
                is_removable(t) or (not t.service_id and t.status.state >= tasks.ORPHANED)
            ):
                doomed.add(task_id)
        for key in self._dirty:
            doomed.update(self._reap(tx, key))
        self._dirty.clear()
        self._candidates.clear()
        self._since = None
        return [DeleteTask(task_id) for task_id in sorted(doomed)]

    def _reap(self, tx: ReadTx, key: tasks.SlotKey) -> list[str]:
        service_id, slot, node_id = key
        service = tx.services.get(service_id)
        if service is None or self._limit < 0:
            return []
        limit = self._limit
        attempts = tasks.restart_policy(objects_pb2.Task(spec=service.spec.task)).max_attempts
        if attempts:
            limit = max(limit, attempts + 1)
        if slot:
            history = tx.tasks.find_by_slot(service_id, slot)
        else:
            history = [t for t in tx.tasks.find_by_node(node_id) if t.service_id == service_id]
        if sum(1 for t in history if _is_running(t)) > 1:
            # Wait until all but one stopped before trimming (start-first updates).
            self._held.add(key)
        return [t.id for t in reap_slot(history, limit)]


class TaskReaper:
    """Runs a TaskReaperCore against the store until cancelled (leader-only)."""

    def __init__(self, store: MemoryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.core = TaskReaperCore()

    async def run(self) -> None:
        """Reap until cancelled."""
        await run_reconciler(self._store, self._clock, self.core)


__all__ = [
    "BATCH_INTERVAL",
    "MAX_DIRTY",
    "TaskReaper",
    "TaskReaperCore",
    "is_removable",
    "reap_slot",
    "retention_limit",
]
