"""The restart supervisor: replaces stopped tasks per restart policy and paces their start.

Manager layer, pure (no store, no clock: callers pass `now`, Clock.now() seconds). Each
orchestrator owns one and calls `restart()` for a task that stopped (observed state past
RUNNING) while meant to run, or whose node became unavailable (replicated services only).
Semantics follow swarmkit manager/orchestrator/restart and design/orchestrators.md:

- The old task always gets desired SHUTDOWN. A replacement in the same slot (or on the same
  node, for global services) is created when the policy says so: condition NONE never,
  ON_FAILURE unless the task COMPLETEd, ANY always; at most `max_attempts` restarts per slot
  (0: unlimited), counted within the last `window` seconds before the failure (0: ever). The
  count starts over when the spec version changes.
- A task whose node went DOWN or was drained is rescheduled whatever the policy: the task did
  not fail, so this is not counted against max_attempts (swarmd keeps this distinct from
  failures; swarmkit runs such tasks through the policy as well).
- The replacement is created with desired READY (the agent may prepare it but not start it)
  and promoted to RUNNING by a `StartTask` once the restart delay is over *and* the old task
  stopped (or its node went down, or `old_task_timeout` passed). No delay on drained nodes;
  no wait when the old task already stopped or was never assigned. A replacement with neither
  delay nor wait is created desired RUNNING directly.
- A task that fails again while its own start is still delayed is not replaced yet: its
  promotion to RUNNING (after the delay) makes it a restart candidate again, which prevents
  tight restart loops (an image that does not exist, a crash on start).
- History is in memory, lost on leader change and rebuilt approximately by `rebuild_history`
  (taskinit) from the tasks kept in the store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.manager.orchestrator import placement
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.plan import Decision, ReplaceTask, StartTask

OLD_TASK_TIMEOUT = 60.0  # swarmkit defaultOldTaskTimeout

_NONE = types_pb2.RestartPolicy.RESTART_CONDITION_NONE
_ON_FAILURE = types_pb2.RestartPolicy.RESTART_CONDITION_ON_FAILURE
_DOWN = objects_pb2.NodeStatus.STATE_DOWN
_DRAIN = specs_pb2.NodeSpec.AVAILABILITY_DRAIN


@dataclass(slots=True)
class _History:
    """Restarts of one slot under one spec version."""

    spec_version: int
    total: int = 0
    # Restart times (replacement creation), oldest first; kept only when a window is set.
    times: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class DelayedStart:
    """A replacement waiting in desired READY.

    Attributes:
        task_id: the replacement.
        old_task_id: the task it replaces ("" when there is nothing to wait for).
        old_node_id: the old task's node (its going DOWN ends the wait).
        ready_at: when the restart delay is over.
        give_up_at: when to start even if the old task still runs.
        waiting: still waiting for the old task to stop.
    """

    task_id: str
    old_task_id: str
    old_node_id: str
    ready_at: float
    give_up_at: float
    waiting: bool

    def start_at(self) -> float:
        """The earliest time the task may start, as far as is known now."""
        return max(self.ready_at, self.give_up_at) if self.waiting else self.ready_at


class RestartSupervisor:
    """Restart decisions, restart history and delayed starts of one orchestrator.

    Args:
        old_task_timeout: how long a replacement waits for the task it replaces to stop.
    """

    def __init__(self, old_task_timeout: float = OLD_TASK_TIMEOUT) -> None:
        self._timeout = old_task_timeout
        self._history: dict[str, dict[tasks.SlotKey, _History]] = {}
        self._delayed: dict[str, DelayedStart] = {}
        self._waiting_on: dict[str, str] = {}  # old task id -> replacement id

    # -- policy ----------------------------------------------------------------------------

    def should_restart(self, task: objects_pb2.Task, service: objects_pb2.Service) -> bool:
        """Whether the policy wants a replacement for this stopped task."""
        policy = tasks.restart_policy(task)
        if policy.condition == _NONE:
            return False
        if policy.condition == _ON_FAILURE and task.status.state == tasks.COMPLETE:
            return False
        if policy.max_attempts == 0:
            return True
        hist = self._history.get(task.service_id, {}).get(tasks.slot_key(task, service))
        if hist is None or hist.spec_version != task.spec_version.index:
            return True
        window = policy.window.seconds + policy.window.nanos / 1e9
        failed_at = tasks.status_time(task)
        if window <= 0 or failed_at == 0.0:
            return hist.total < policy.max_attempts
        lookback = failed_at - window
        while hist.times and hist.times[0] <= lookback:
            hist.times.popleft()
        # Restarts made after this task stopped do not count against it.
        count = sum(1 for t in hist.times if t < failed_at)
        return count < policy.max_attempts

    def restart(
        self,
        task: objects_pb2.Task,
        service: objects_pb2.Service,
        node: objects_pb2.Node | None,
        now: float,
        cluster: objects_pb2.Cluster | None = None,
    ) -> list[Decision]:
        """Decide about a task that stopped, or whose node is unavailable.

        Returns nothing when the task is no longer meant to run or is itself still waiting
        for its delayed start; otherwise one `ReplaceTask` (with or without a replacement).
        """
        if task.desired_state > tasks.RUNNING or task.id in self._delayed:
            return []
        failed = task.status.state > tasks.RUNNING
        if not failed and not (task.node_id and placement.is_unavailable(node)):
            return []
        if failed and not self.should_restart(task, service):
            return [ReplaceTask(task.id, None)]
        glob = tasks.is_global(service)
        new = tasks.new_task(
            service, 0 if glob else task.slot, task.node_id if glob else "", now, cluster
        )
        drained = node is not None and node.spec.availability == _DRAIN
        delay = 0.0 if drained else tasks.restart_delay(task)
        # Wait for the old task only if something may still be running it.
        wait = (
            not failed
            and task.status.state >= tasks.ASSIGNED
            and node is not None
            and node.status.state != _DOWN
        )
        if failed:
            self.record_restart(tasks.slot_key(new, service), new, now)
        if delay > 0 or wait:
            new.desired_state = tasks.READY
            self.delay_start(new.id, task if wait else None, delay, now)
        return [ReplaceTask(task.id, new)]

    def record_restart(self, key: tasks.SlotKey, replacement: objects_pb2.Task, at: float) -> None:
        """Count a restart of the slot (only when the policy limits attempts)."""
        policy = tasks.restart_policy(replacement)
        if policy.max_attempts == 0:
            return
        by_slot = self._history.setdefault(replacement.service_id, {})
        version = replacement.spec_version.index
        hist = by_slot.get(key)
        if hist is None or hist.spec_version != version:
            # A new spec: past failures do not count against it.
            hist = by_slot[key] = _History(spec_version=version)
        hist.total += 1
        if policy.window.seconds or policy.window.nanos:
            hist.times.append(at)

    def rebuild_history(
        self, service: objects_pb2.Service, slot: Iterable[objects_pb2.Task]
    ) -> None:
        """Reconstruct a slot's restart history from its tasks (leader start-up).

        Of the tasks with the newest spec version, all but the first created count as
        restarts, at their creation times (swarmkit taskinit).
        """
        group = list(slot)
        if not group:
            return
        latest = max(t.spec_version.index for t in group)
        current = sorted(
            (t for t in group if t.spec_version.index == latest),
            key=lambda t: (tasks.seconds(t.meta.created_at), t.id),
        )
        for t in current[1:]:
            self.record_restart(tasks.slot_key(t, service), t, tasks.seconds(t.meta.created_at))

    def clear_service(self, service_id: str) -> None:
        """Forget the restart history of a removed service."""
        self._history.pop(service_id, None)

    # -- delayed starts --------------------------------------------------------------------

    def delay_start(
        self, task_id: str, old: objects_pb2.Task | None, delay: float, now: float
    ) -> None:
        """Hold task_id in desired READY for delay seconds and until `old` stopped."""
        self.cancel(task_id)
        waiting = old is not None and old.status.state <= tasks.RUNNING
        entry = DelayedStart(
            task_id=task_id,
            old_task_id=old.id if old is not None else "",
            old_node_id=old.node_id if old is not None else "",
            ready_at=now + delay,
            give_up_at=now + self._timeout,
            waiting=waiting,
        )
        self._delayed[task_id] = entry
        if waiting:
            self._waiting_on[entry.old_task_id] = task_id

    def is_delayed(self, task_id: str) -> bool:
        """Whether the task waits for a delayed start."""
        return task_id in self._delayed

    def delayed(self) -> list[DelayedStart]:
        """The pending delayed starts, soonest first (the supervisor's entries: do not modify)."""
        return sorted(self._delayed.values(), key=lambda e: (e.start_at(), e.task_id))

    def observe_task(self, task: objects_pb2.Task) -> None:
        """A task changed: a replacement waiting for it may go once it stopped."""
        new_id = self._waiting_on.get(task.id)
        if new_id is not None and task.status.state > tasks.RUNNING:
            self._stop_waiting(task.id)

    def observe_task_removed(self, task_id: str) -> None:
        """A task was deleted: drop its delayed start; whoever waited for it goes on."""
        self.cancel(task_id)
        self._stop_waiting(task_id)

    def observe_node(self, node_id: str, node: objects_pb2.Node | None) -> None:
        """A node changed or was deleted (None): once down, nothing runs there any more."""
        if node is not None and node.status.state != _DOWN:
            return
        for entry in self._delayed.values():
            if entry.waiting and entry.old_node_id == node_id:
                self._waiting_on.pop(entry.old_task_id, None)
                entry.waiting = False

    def _stop_waiting(self, old_task_id: str) -> None:
        new_id = self._waiting_on.pop(old_task_id, None)
        entry = self._delayed.get(new_id or "")
        if entry is not None:
            entry.waiting = False

    def cancel(self, task_id: str) -> None:
        """Forget a delayed start (its task was deleted or superseded)."""
        entry = self._delayed.pop(task_id, None)
        if entry is not None and entry.waiting:
            self._waiting_on.pop(entry.old_task_id, None)

    def due(self, now: float) -> list[Decision]:
        """`StartTask` for every delayed start whose time has come; they are forgotten."""
        ready = [e for e in self._delayed.values() if e.start_at() <= now]
        ready.sort(key=lambda e: (e.start_at(), e.task_id))
        for e in ready:
            self.cancel(e.task_id)
        return [StartTask(e.task_id) for e in ready]

    def next_deadline(self) -> float | None:
        """When the next delayed start is due, if any."""
        if not self._delayed:
            return None
        return min(e.start_at() for e in self._delayed.values())


__all__ = ["OLD_TASK_TIMEOUT", "DelayedStart", "RestartSupervisor"]
