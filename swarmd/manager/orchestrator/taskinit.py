"""The start-up pass of an orchestrator: fix what a previous leader left half done.

Manager layer, pure (swarmkit manager/orchestrator/taskinit). Run by each orchestrator core's
`start()` against a read-only view, before its first reconcile:

- tasks of deleted services get desired REMOVE (the agents stop them, the reaper deletes them);
- tasks of the orchestrator's services that are meant to run become restart candidates (the
  core replaces those that stopped, or sit on an unavailable node, as events would have);
- tasks held in desired READY by a restart delay are started, or their delay resumed for the
  time that is left (measured from their status time);
- restart history is rebuilt from the tasks kept in each slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from swarmd.api import objects_pb2
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.plan import Decision, SetDesiredState, StartTask
from swarmd.manager.orchestrator.restart import RestartSupervisor
from swarmd.manager.store import ReadTx


@dataclass(slots=True)
class InitResult:
    """What the start-up pass found: decisions to write and tasks to check for restart."""

    decisions: list[Decision] = field(default_factory=list)
    candidates: set[str] = field(default_factory=set)


def check_tasks(
    tx: ReadTx,
    is_related: Callable[[objects_pb2.Service], bool],
    supervisor: RestartSupervisor,
    now: float,
) -> InitResult:
    """The start-up fixes for the services `is_related` selects (see the module docstring)."""
    out = InitResult()
    services: dict[str, objects_pb2.Service | None] = {}
    slots: dict[tasks.SlotKey, list[objects_pb2.Task]] = {}
    for t in tx.tasks.list():
        if not t.service_id:
            continue
        if t.service_id not in services:
            services[t.service_id] = tx.services.get(t.service_id)
        service = services[t.service_id]
        if service is None:
            if t.desired_state < tasks.REMOVE:
                out.decisions.append(SetDesiredState(t.id, tasks.REMOVE))
            continue
        if not is_related(service):
            continue
        slots.setdefault(tasks.slot_key(t, service), []).append(t)
        if tasks.is_live(t):
            out.candidates.add(t.id)
        if t.desired_state == tasks.READY and t.status.state <= tasks.RUNNING:
            decision = _resume(t, supervisor, now)
            if decision is not None:
                out.decisions.append(decision)
    for key, group in slots.items():
        service = services.get(key[0])
        if service is not None:
            supervisor.rebuild_history(service, group)
    return out


def _resume(t: objects_pb2.Task, supervisor: RestartSupervisor, now: float) -> Decision | None:
    """Start a task held in desired READY, or hold it for what is left of its delay."""
    if supervisor.is_delayed(t.id):
        return None  # this supervisor is already pacing it (a resynchronisation)
    delay = tasks.restart_delay(t)
    since = tasks.status_time(t)
    left = min(delay, since + delay - now) if since else 0.0
    if left > 0:
        supervisor.delay_start(t.id, None, left, now)
        return None
    return StartTask(t.id)


__all__ = ["InitResult", "check_tasks"]
