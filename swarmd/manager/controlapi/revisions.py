"""Spec revisions of a service: update, rollback to the previous spec or to a kept revision,
and pausing / resuming the update of the current one.

Manager layer, pure (mutates the Service message it is given). `revision` counts spec changes
from 1 at creation. `history` keeps the current revision plus up to `limit` earlier ones (the
cluster's service_history.revisions), oldest first, each with the time it was made, so a rollback
can name any kept revision (swarmctl service rollback --to N) and `service history` can list them.
A rollback is itself a new revision with an old spec, as in Kubernetes deployments: revisions
never go backwards, so tasks stamped with a revision stay comparable.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from swarmd import errors
from swarmd.api import objects_pb2, specs_pb2, types_pb2

_ROLLBACK_MESSAGE = "manually requested rollback"


def start_history(service: objects_pb2.Service, now: timestamp_pb2.Timestamp) -> None:
    """Make `service.spec` revision 1 of a new service."""
    service.revision = 1
    del service.history[:]
    service.history.append(
        objects_pb2.ServiceRevision(revision=1, spec=service.spec, created_at=now)
    )


def apply_spec(
    service: objects_pb2.Service,
    spec: specs_pb2.ServiceSpec,
    limit: int,
    now: timestamp_pb2.Timestamp,
) -> None:
    """Make `spec` the service's new revision; the current one becomes previous_spec."""
    previous = specs_pb2.ServiceSpec()
    previous.CopyFrom(service.spec)
    service.previous_spec.CopyFrom(previous)
    if service.HasField("spec_version"):
        service.previous_spec_version.CopyFrom(service.spec_version)
    service.spec.CopyFrom(spec)
    service.revision += 1
    service.history.append(
        objects_pb2.ServiceRevision(revision=service.revision, spec=spec, created_at=now)
    )
    excess = len(service.history) - (limit + 1)
    if excess > 0:
        del service.history[:excess]


def rollback(
    service: objects_pb2.Service,
    to_revision: int,
    limit: int,
    now: timestamp_pb2.Timestamp,
) -> None:
    """Go back to previous_spec (to_revision 0) or to a kept revision, as a new revision.

    Raises:
        errors.FailedPrecondition: there is no previous spec, or the revision is not kept.
    """
    name = service.spec.annotations.name
    if to_revision == 0:
        if not service.HasField("previous_spec"):
            raise errors.FailedPrecondition(f"service {name} does not have a previous spec")
        target = specs_pb2.ServiceSpec()
        target.CopyFrom(service.previous_spec)
    else:
        kept = {r.revision: r.spec for r in service.history}
        if to_revision not in kept:
            listed = ", ".join(str(r) for r in sorted(kept)) or "none"
            raise errors.FailedPrecondition(
                f"service {name} has no revision {to_revision} (kept revisions: {listed})"
            )
        target = specs_pb2.ServiceSpec()
        target.CopyFrom(kept[to_revision])
    apply_spec(service, target, limit, now)
    service.update_status.CopyFrom(
        types_pb2.UpdateStatus(
            state=types_pb2.UpdateStatus.UPDATE_STATE_ROLLBACK_STARTED,
            started_at=now,
            message=_ROLLBACK_MESSAGE,
        )
    )


_US = types_pb2.UpdateStatus
_PAUSE = {
    _US.UPDATE_STATE_UPDATING: _US.UPDATE_STATE_PAUSED,
    _US.UPDATE_STATE_ROLLBACK_STARTED: _US.UPDATE_STATE_ROLLBACK_PAUSED,
}
_RESUME = {v: k for k, v in _PAUSE.items()}


def pause_update(service: objects_pb2.Service) -> None:
    """Pause the service's update (or rollback) in progress; no more tasks are replaced.

    Raises:
        errors.FailedPrecondition: no update or rollback is in progress.
    """
    state = service.update_status.state
    if state not in _PAUSE:
        raise errors.FailedPrecondition(
            f"service {service.spec.annotations.name} has no update in progress to pause"
        )
    kind = "rollback" if state == _US.UPDATE_STATE_ROLLBACK_STARTED else "update"
    service.update_status.state = _PAUSE[state]
    service.update_status.message = f"{kind} paused by request"
    service.update_status.ClearField("completed_at")


def resume_update(service: objects_pb2.Service, now: timestamp_pb2.Timestamp) -> None:
    """Resume a paused update (or rollback) from where its tasks are, starting now.

    Failures of tasks before the resume no longer count against it (the updater counts the
    failures of tasks created since `started_at`).

    Raises:
        errors.FailedPrecondition: the service's update is not paused.
    """
    state = service.update_status.state
    if state not in _RESUME:
        raise errors.FailedPrecondition(
            f"service {service.spec.annotations.name} has no paused update to resume"
        )
    kind = "rollback" if state == _US.UPDATE_STATE_ROLLBACK_PAUSED else "update"
    service.update_status.state = _RESUME[state]
    service.update_status.message = f"{kind} resumed"
    service.update_status.started_at.CopyFrom(now)


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp for a Clock.now() value."""
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1_000_000_000))
    return ts


__all__ = [
    "apply_spec",
    "pause_update",
    "resume_update",
    "rollback",
    "start_history",
    "timestamp",
]
