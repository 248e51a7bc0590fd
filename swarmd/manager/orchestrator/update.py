"""The seam for service updates: an `Updater` replaces tasks whose spec is out of date.

Manager layer, pure. The replicated and global orchestrators find the slots of a service that
hold a dirty task (`task.is_dirty`) and hand them, with all the service's tasks, to their
Updater, also while an update is in progress and no slot is dirty any more (it must still
watch the new tasks and say when it is done). The orchestrators run `updater.RollingUpdater`
(parallelism, delay, order, monitor, failure action, rollback); `ReplaceAllUpdater` replaces
every dirty slot at once through `replace_dirty_slots` (the bare cores' default, for tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from swarmd.api import objects_pb2
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.plan import CreateTask, Decision, ReplaceTask
from swarmd.manager.orchestrator.restart import RestartSupervisor

Slot = Sequence[objects_pb2.Task]


class Updater(Protocol):
    """Turns the dirty slots of a service into decisions.

    `slots` holds, per slot (or node, for global services), the tasks meant to run there, or,
    when none is, the newest task that stopped and is not to be restarted (so a spec change
    still reaches it). At least one task of each slot is dirty; `slots` may be empty while
    the service's update is active (`updatestatus.is_active`). `service_tasks` are all the
    service's tasks. Called from a reconcile step: must not block or do I/O; may keep state
    between calls (an update in progress) but must be able to rebuild it from the store.

    The orchestrator also reconciles a service when one of its tasks changes while
    `watches(service_id)`, and when `due(now)` names it (at `next_deadline()`); it calls
    `forget` when the service is removed.
    """

    def update(
        self,
        service: objects_pb2.Service,
        slots: Sequence[Slot],
        now: float,
        cluster: objects_pb2.Cluster | None,
        service_tasks: Sequence[objects_pb2.Task] = (),
    ) -> list[Decision]: ...

    def watches(self, service_id: str) -> bool: ...

    def next_deadline(self) -> float | None: ...

    def due(self, now: float) -> list[str]: ...

    def forget(self, service_id: str) -> None: ...


def replace_dirty_slots(
    service: objects_pb2.Service,
    slots: Sequence[Slot],
    supervisor: RestartSupervisor,
    now: float,
    cluster: objects_pb2.Cluster | None = None,
) -> list[Decision]:
    """Replace every dirty slot at once, stop-first.

    Per slot: one new task with the current spec (desired READY), the live old tasks shut
    down; the new task is started once the old ones stopped (or after the supervisor's
    old-task timeout), as swarmkit's updater does with UPDATE_ORDER_STOP_FIRST.
    """
    out: list[Decision] = []
    glob = tasks.is_global(service)
    for slot in slots:
        if not slot:
            continue
        first = slot[0]
        new = tasks.new_task(
            service, 0 if glob else first.slot, first.node_id if glob else "", now, cluster
        )
        live = [t for t in slot if tasks.is_live(t)]
        running = [t for t in live if t.status.state <= tasks.RUNNING and t.node_id]
        if running:
            new.desired_state = tasks.READY
            supervisor.delay_start(new.id, running[0], 0.0, now)
        if live:
            out.append(ReplaceTask(live[0].id, new))
            out.extend(ReplaceTask(t.id, None) for t in live[1:])
        else:
            out.append(CreateTask(new))
    return out


class ReplaceAllUpdater:
    """The default Updater: `replace_dirty_slots` with the orchestrator's restart supervisor."""

    def __init__(self, supervisor: RestartSupervisor) -> None:
        self._supervisor = supervisor

    def update(
        self,
        service: objects_pb2.Service,
        slots: Sequence[Slot],
        now: float,
        cluster: objects_pb2.Cluster | None,
        service_tasks: Sequence[objects_pb2.Task] = (),
    ) -> list[Decision]:
        """Replace all dirty slots now."""
        return replace_dirty_slots(service, slots, self._supervisor, now, cluster)

    def watches(self, service_id: str) -> bool:
        """Never: nothing is followed after the replacements are made."""
        return False

    def next_deadline(self) -> float | None:
        """None: no deadlines."""
        return None

    def due(self, now: float) -> list[str]:
        """Nothing is ever due."""
        return []

    def forget(self, service_id: str) -> None:
        """Nothing to forget."""


__all__ = ["ReplaceAllUpdater", "Slot", "Updater", "replace_dirty_slots"]
