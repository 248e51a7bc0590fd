"""The seam for service updates: an `Updater` replaces tasks whose spec is out of date.

Manager layer, pure. The replicated and global orchestrators find the slots of a service that
hold a dirty task (`task.is_dirty`) and hand them to their Updater. Rolling updates
(parallelism, delay, monitor, failure action, rollback) will be an Updater of their own; until
then `ReplaceAllUpdater` replaces every dirty slot at once through `replace_dirty_slots`.
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
    still reaches it). At least one task of each slot is dirty. Called from a reconcile step:
    must not block or do I/O; may keep state between calls (an update in progress).
    """

    def update(
        self,
        service: objects_pb2.Service,
        slots: Sequence[Slot],
        now: float,
        cluster: objects_pb2.Cluster | None,
    ) -> list[Decision]: ...


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
    ) -> list[Decision]:
        """Replace all dirty slots now."""
        return replace_dirty_slots(service, slots, self._supervisor, now, cluster)


__all__ = ["ReplaceAllUpdater", "Slot", "Updater", "replace_dirty_slots"]
