"""What one node has been told: the pure bookkeeping behind the Assignments stream.

Manager layer, used by `DispatcherServicer.Assignments`. An `AssignmentTracker` remembers the
version of every task it has sent to its node and turns the node's current tasks into a COMPLETE
message first, then into INCREMENTAL messages carrying only what changed (new or changed tasks as
UPDATE, tasks gone from the node or deleted as REMOVE). Each message names the sequence it applies
to and the one it results in, so the agent can tell a gap (SwarmKit's applies_to/results_in).
As in SwarmKit (TasksEqualStable), a task past ASSIGNED whose only change is its status (or meta)
is not sent again: the status came from the agent itself, and each report would otherwise come
back as a whole task, about four per task started. No I/O, no clock: the servicer feeds it task
lists read from the store.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmd.api import dispatcher_pb2, objects_pb2, types_pb2

_UPDATE = dispatcher_pb2.AssignmentChange.ASSIGNMENT_ACTION_UPDATE
_REMOVE = dispatcher_pb2.AssignmentChange.ASSIGNMENT_ACTION_REMOVE


def is_assigned_to(task: objects_pb2.Task, node_id: str) -> bool:
    """A task the node must know of: placed on it by the scheduler (ASSIGNED or later).

    Tasks still PENDING with a pre-set node (global services) are not the node's business until
    the scheduler has validated them.
    """
    return task.node_id == node_id and task.status.state >= types_pb2.TASK_STATE_ASSIGNED


class AssignmentTracker:
    """Diffs a node's tasks against what was last sent to it."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        # Per task sent: its version, and its encoding without status and meta.
        self._sent: dict[str, tuple[int, bytes]] = {}
        self._sequence = 0

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def sequence(self) -> str:
        """The sequence id of the last message produced ("" before the first)."""
        return str(self._sequence) if self._sequence else ""

    def complete(self, tasks: Iterable[objects_pb2.Task]) -> dispatcher_pb2.AssignmentsMessage:
        """The full set of the node's tasks; resets what was sent."""
        self._sent.clear()
        msg = self._message(dispatcher_pb2.AssignmentsMessage.TYPE_COMPLETE)
        for task in sorted(tasks, key=lambda t: t.id):
            if is_assigned_to(task, self._node_id):
                self._sent[task.id] = (task.meta.version.index, _stable(task))
                msg.changes.append(_change(task, _UPDATE))
        return msg

    def incremental(
        self, changed: Iterable[objects_pb2.Task], removed_ids: Iterable[str]
    ) -> dispatcher_pb2.AssignmentsMessage | None:
        """Changes since the last message, or None when there is nothing new to say.

        Args:
            changed: tasks whose latest version may concern this node (created or updated; a task
                moved to another node counts as removed from this one).
            removed_ids: ids of tasks deleted from the store.
        """
        msg = dispatcher_pb2.AssignmentsMessage(
            type=dispatcher_pb2.AssignmentsMessage.TYPE_INCREMENTAL
        )
        for task in sorted(changed, key=lambda t: t.id):
            if is_assigned_to(task, self._node_id):
                version = task.meta.version.index
                sent = self._sent.get(task.id)
                if sent is not None and sent[0] == version:
                    continue
                stable = _stable(task)
                self._sent[task.id] = (version, stable)
                if (
                    sent is not None
                    and sent[1] == stable
                    and task.status.state > types_pb2.TASK_STATE_ASSIGNED
                ):
                    continue  # only the status moved: nothing the node does not know
                msg.changes.append(_change(task, _UPDATE))
            elif self._sent.pop(task.id, None) is not None:
                msg.changes.append(_removal(task.id))
        for task_id in sorted(removed_ids):
            if self._sent.pop(task_id, None) is not None:
                msg.changes.append(_removal(task_id))
        if not msg.changes:
            return None
        self._stamp(msg)
        return msg

    def _message(
        self, kind: dispatcher_pb2.AssignmentsMessage.Type.ValueType
    ) -> dispatcher_pb2.AssignmentsMessage:
        msg = dispatcher_pb2.AssignmentsMessage(type=kind)
        self._stamp(msg)
        return msg

    def _stamp(self, msg: dispatcher_pb2.AssignmentsMessage) -> None:
        msg.applies_to = self.sequence
        self._sequence += 1
        msg.results_in = self.sequence


def _stable(task: objects_pb2.Task) -> bytes:
    """The task's encoding without status and meta: what the node acts on."""
    stable = objects_pb2.Task()
    stable.CopyFrom(task)
    stable.ClearField("status")
    stable.ClearField("meta")
    return stable.SerializeToString(deterministic=True)


def _change(
    task: objects_pb2.Task, action: dispatcher_pb2.AssignmentChange.AssignmentAction.ValueType
) -> dispatcher_pb2.AssignmentChange:
    change = dispatcher_pb2.AssignmentChange(action=action)
    change.assignment.task.CopyFrom(task)
    return change


def _removal(task_id: str) -> dispatcher_pb2.AssignmentChange:
    change = dispatcher_pb2.AssignmentChange(action=_REMOVE)
    change.assignment.task.id = task_id
    return change


__all__ = ["AssignmentTracker", "is_assigned_to"]
