"""A service's UpdateStatus: the states of a rolling update, their messages, and writing them.

Manager layer. The rolling updater (`updater.py`) decides; this module builds the UpdateStatus
messages it proposes (stamped with the planner's Clock time, never at apply time) and applies a
`SetUpdateStatus` decision to the store for `commit.commit_plan`. What `service inspect`
shows comes from here, so every status that stops or ends an update says why.

States (types.proto UpdateStatus): UPDATING -> COMPLETED, or -> PAUSED (failure action pause),
or -> ROLLBACK_STARTED (failure action rollback, or a manual rollback through the control API)
-> ROLLBACK_COMPLETED, or -> ROLLBACK_PAUSED when the rollback fails too. A new spec clears the
status (control API), which starts a new update from whatever the tasks are running.
"""

from __future__ import annotations

from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.manager.controlapi import defaults, revisions
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.plan import SetUpdateStatus
from swarmd.manager.store import Tx

State = types_pb2.UpdateStatus.UpdateState
UNKNOWN = types_pb2.UpdateStatus.UPDATE_STATE_UNKNOWN
UPDATING = types_pb2.UpdateStatus.UPDATE_STATE_UPDATING
PAUSED = types_pb2.UpdateStatus.UPDATE_STATE_PAUSED
COMPLETED = types_pb2.UpdateStatus.UPDATE_STATE_COMPLETED
ROLLBACK_STARTED = types_pb2.UpdateStatus.UPDATE_STATE_ROLLBACK_STARTED
ROLLBACK_PAUSED = types_pb2.UpdateStatus.UPDATE_STATE_ROLLBACK_PAUSED
ROLLBACK_COMPLETED = types_pb2.UpdateStatus.UPDATE_STATE_ROLLBACK_COMPLETED

ACTIVE = frozenset({UPDATING, ROLLBACK_STARTED})
PAUSED_STATES = frozenset({PAUSED, ROLLBACK_PAUSED})

UPDATING_MESSAGE = "update in progress"
COMPLETED_MESSAGE = "update completed"


def is_active(service: objects_pb2.Service) -> bool:
    """Whether an update or a rollback of the service is in progress (not paused, not done)."""
    return service.update_status.state in ACTIVE


def status(
    state: types_pb2.UpdateStatus.UpdateState.ValueType,
    message: str,
    now: float,
    started_at: float | None = None,
) -> types_pb2.UpdateStatus:
    """An UpdateStatus; `started_at` None starts the update now, a final state completes it now."""
    out = types_pb2.UpdateStatus(state=state, message=message)
    out.started_at.CopyFrom(tasks.timestamp(now if started_at is None else started_at))
    if state in (COMPLETED, ROLLBACK_COMPLETED):
        out.completed_at.CopyFrom(tasks.timestamp(now))
    return out


def rollback_completed_message(service: objects_pb2.Service) -> str:
    """The message of a finished rollback: it keeps why the rollback happened."""
    why = service.update_status.message
    return f"rollback completed ({why})" if why else "rollback completed"


def started_at(service: objects_pb2.Service) -> float:
    """When the service's current update started (0.0 when it has none)."""
    return tasks.seconds(service.update_status.started_at)


def set_status(
    service: objects_pb2.Service,
    new: types_pb2.UpdateStatus,
    *,
    rollback: bool = False,
) -> SetUpdateStatus:
    """The decision that moves `service` (as read by the planner) to `new`."""
    return SetUpdateStatus(
        service_id=service.id,
        revision=service.revision,
        from_state=service.update_status.state,
        status=new,
        rollback=rollback,
    )


def _history_limit(tx: Tx) -> int:
    cluster = tasks.current_cluster(tx)
    if cluster is not None and cluster.spec.service_history.revisions:
        return cluster.spec.service_history.revisions
    return defaults.SERVICE_HISTORY_REVISIONS


def apply_update_status(tx: Tx, decision: SetUpdateStatus) -> bool:
    """Write the decision in tx; False (nothing written) when it no longer applies."""
    service = tx.services.get(decision.service_id)
    if (
        service is None
        or service.revision != decision.revision
        or service.update_status.state != decision.from_state
    ):
        return False
    if decision.rollback:
        if not service.HasField("previous_spec"):
            return False
        target = specs_pb2.ServiceSpec()
        target.CopyFrom(service.previous_spec)  # apply_spec overwrites previous_spec
        revisions.apply_spec(service, target, _history_limit(tx), decision.status.started_at)
    service.update_status.CopyFrom(decision.status)
    tx.services.update(service)
    return True


__all__ = [
    "ACTIVE",
    "COMPLETED",
    "COMPLETED_MESSAGE",
    "PAUSED",
    "PAUSED_STATES",
    "ROLLBACK_COMPLETED",
    "ROLLBACK_PAUSED",
    "ROLLBACK_STARTED",
    "UNKNOWN",
    "UPDATING",
    "UPDATING_MESSAGE",
    "apply_update_status",
    "is_active",
    "rollback_completed_message",
    "set_status",
    "started_at",
    "status",
]
