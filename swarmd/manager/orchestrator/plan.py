"""Decisions of the orchestrators: what to write to the store, as plain value objects.

Manager layer, pure. The reconcile steps (replicated, global, restart, taskinit, reaper,
constraint enforcer, rolling updater) return lists of these; `commit.commit_plan` writes them
in store batches, one decision per unit, each re-checked against the state current at write
time, so a decision made from a slightly older view never moves a desired state backwards,
never creates a task for a service deleted meanwhile and never replaces a task twice.
Timestamps inside the decisions are stamped by the planner from its Clock, before anything is
proposed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from swarmd.api import objects_pb2, types_pb2


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Create a task (skipped when its service no longer exists)."""

    task: objects_pb2.Task


@dataclass(frozen=True, slots=True)
class ReplaceTask:
    """Atomically shut the old task down (desired SHUTDOWN) and create its replacement.

    Skipped as a whole when the old task is gone or already has a desired state past RUNNING:
    someone else already handled it. `new` None only shuts the old task down.
    """

    old_task_id: str
    new: objects_pb2.Task | None


@dataclass(frozen=True, slots=True)
class SetDesiredState:
    """Raise a task's desired state (never lowers it: desired states only move forward)."""

    task_id: str
    state: types_pb2.TaskState.ValueType


@dataclass(frozen=True, slots=True)
class StartTask:
    """Promote a task waiting in desired READY to desired RUNNING (end of a restart delay)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class DeleteTask:
    """Delete a task from the store (history beyond retention, REMOVE-desired, orphans)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class RejectTask:
    """Set a task's observed state to REJECTED (unless it already stopped), stamped `now`."""

    task_id: str
    message: str
    err: str
    now: float


@dataclass(frozen=True, slots=True)
class SetUpdateStatus:
    """Write a service's update status (the rolling updater, `updatestatus.apply_update_status`).

    Skipped when the service is gone, its revision is no longer `revision` (a newer spec or a
    manual rollback came in) or its update state is no longer `from_state` (someone else moved
    the update on). With `rollback`, the service also goes back to its previous spec, as a new
    revision.
    """

    service_id: str
    revision: int
    from_state: types_pb2.UpdateStatus.UpdateState.ValueType
    status: types_pb2.UpdateStatus
    rollback: bool = False


Decision: TypeAlias = (
    CreateTask
    | ReplaceTask
    | SetDesiredState
    | StartTask
    | DeleteTask
    | RejectTask
    | SetUpdateStatus
)

__all__ = [
    "CreateTask",
    "Decision",
    "DeleteTask",
    "RejectTask",
    "ReplaceTask",
    "SetDesiredState",
    "SetUpdateStatus",
    "StartTask",
]
