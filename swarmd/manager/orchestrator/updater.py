"""The rolling updater: replaces a service's out-of-date tasks in batches, and rolls back.

Manager layer, pure (an `update.Updater`; the replicated and global orchestrators call it from
their reconcile steps with the service's dirty slots and all its tasks). Per UpdateConfig
(`spec.update`, or `spec.rollback` while rolling back; swarmkit's defaults when unset):

- at most `parallelism` slots down at once (0: all at once); after a new task comes up, its
  worker waits `delay` before taking the next slot;
- stop-first: the old task is shut down and the new one (desired READY) started once the old one
  stopped, paced by the orchestrator's restart supervisor; start-first: the new task starts next
  to the old one, which is shut down once the new one is up;
- failures of the update's tasks (see `rollout`) beyond `max_failure_ratio` of the slots trigger
  the failure action: pause (PAUSED, or ROLLBACK_PAUSED during a rollback), continue, or
  rollback (back to `previous_spec` as a new revision, ROLLBACK_STARTED; a failing rollback
  pauses); the status message names the task and why it failed;
- once no slot is dirty and every new task has been up for `monitor` seconds, the update is
  COMPLETED (ROLLBACK_COMPLETED).

State: the update status in the store and the tasks; every call re-derives the progress from
them, so a leader change or a newer spec picks up where the tasks are. In memory only: when a
task was last seen up (to tell a crash after the monitor window from one inside it; unknown
after a leader change, when the failure counts) and when each service next needs a look (the
orchestrator asks `due()` and reconciles those services).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.orchestrator import rollout
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator import updatestatus as us
from swarmd.manager.orchestrator.plan import CreateTask, Decision, ReplaceTask
from swarmd.manager.orchestrator.restart import RestartSupervisor
from swarmd.manager.orchestrator.update import Slot, replace_dirty_slots

_log = structlog.get_logger(component="orchestrator")


def _config(service: objects_pb2.Service, rolling_back: bool) -> types_pb2.UpdateConfig | None:
    if rolling_back:
        return service.spec.rollback if service.spec.HasField("rollback") else None
    return service.spec.update if service.spec.HasField("update") else None


def _slot_count(service: objects_pb2.Service, service_tasks: Sequence[objects_pb2.Task]) -> int:
    return len({tasks.slot_key(t, service) for t in service_tasks if tasks.is_live(t)})


class RollingUpdater:
    """The default Updater of the orchestrators (see the module docstring).

    Args:
        supervisor: the orchestrator's restart supervisor (paces stop-first starts).
        start_timeout: the floor of the start timeout (`rollout.Settings.start_timeout`).
    """

    def __init__(
        self, supervisor: RestartSupervisor, start_timeout: float = rollout.START_TIMEOUT
    ) -> None:
        self._supervisor = supervisor
        self._start_timeout = start_timeout
        self._active: set[str] = set()
        self._wake: dict[str, float] = {}
        self._up_seen: dict[str, dict[str, float]] = {}

    # -- the orchestrator's hooks ------------------------------------------------------------

    def watches(self, service_id: str) -> bool:
        """Whether changes of the service's tasks should reconcile it (its update is active)."""
        return service_id in self._active

    def next_deadline(self) -> float | None:
        """When some service's update next needs a look without any event."""
        return min(self._wake.values(), default=None)

    def due(self, now: float) -> list[str]:
        """The services whose deadline has come (forgotten: the reconcile sets a new one)."""
        ids = sorted(s for s, at in self._wake.items() if at <= now)
        for s in ids:
            del self._wake[s]
        return ids

    def forget(self, service_id: str) -> None:
        """Drop what is remembered about a service (removed, or its update is over)."""
        self._active.discard(service_id)
        self._wake.pop(service_id, None)
        self._up_seen.pop(service_id, None)

    # -- the reconcile step ------------------------------------------------------------------

    def update(
        self,
        service: objects_pb2.Service,
        slots: Sequence[Slot],
        now: float,
        cluster: objects_pb2.Cluster | None,
        service_tasks: Sequence[objects_pb2.Task] = (),
    ) -> list[Decision]:
        """The decisions for the service's update now (see the module docstring)."""
        state = service.update_status.state
        if state in us.PAUSED_STATES or (state not in us.ACTIVE and not slots):
            self.forget(service.id)
            return []
        out: list[Decision] = []
        if state in us.ACTIVE:
            started = us.started_at(service)
        else:
            # Dirty slots and no update in progress: a new spec (or a resume) starts one.
            started = now
            out.append(us.set_status(service, us.status(us.UPDATING, us.UPDATING_MESSAGE, now)))
            _log.info("service update started", service_id=service.id, slots=len(slots))
            state = us.UPDATING
        rolling_back = state == us.ROLLBACK_STARTED
        cfg = rollout.settings(_config(service, rolling_back), self._start_timeout)
        seen = self._up_seen.setdefault(service.id, {})
        progress = rollout.assess(service, service_tasks, cfg, started, now, seen)
        # Remember when tasks came up (a crash is judged against it later), for as long as
        # the tasks exist.
        present = {t.id for t in service_tasks}
        for task_id in [i for i in seen if i not in present]:
            del seen[task_id]
        for task_id, since in progress.up.items():
            seen.setdefault(task_id, since)
        self._active.add(service.id)
        self._wake.pop(service.id, None)

        total = _slot_count(service, service_tasks) or len(slots)
        if cfg.failure_action != rollout.CONTINUE and rollout.failures_exceeded(
            progress, cfg, total
        ):
            return out + self._on_failure(service, progress, cfg, rolling_back, now)

        batch = rollout.next_batch(service, slots, progress, cfg)
        out.extend(ReplaceTask(t.id, None) for t in batch.retire)
        for slot in batch.start:
            out.extend(self._replace(service, slot, cfg, now, cluster))
        if slots or progress.in_flight or batch.retire:
            self._schedule(service.id, [batch.wake_at, *progress.timeouts])
            return out
        if progress.monitor_end > now:
            self._schedule(service.id, [progress.monitor_end])
            return out
        done = us.ROLLBACK_COMPLETED if rolling_back else us.COMPLETED
        message = us.rollback_completed_message(service) if rolling_back else us.COMPLETED_MESSAGE
        out.append(us.set_status(service, us.status(done, message, now, started)))
        _log.info("service update completed", service_id=service.id, rollback=rolling_back)
        self.forget(service.id)
        return out

    def _schedule(self, service_id: str, times: Sequence[float | None]) -> None:
        found = [t for t in times if t is not None]
        if found:
            self._wake[service_id] = min(found)

    def _on_failure(
        self,
        service: objects_pb2.Service,
        progress: rollout.Progress,
        cfg: rollout.Settings,
        rolling_back: bool,
        now: float,
    ) -> list[Decision]:
        why = progress.failures[-1][1]
        log = _log.bind(service_id=service.id, reason=why)
        self.forget(service.id)
        if cfg.failure_action == rollout.ROLLBACK and not rolling_back:
            if service.HasField("previous_spec"):
                log.warning("service update failed, rolling back")
                new = us.status(us.ROLLBACK_STARTED, f"update rolled back: {why}", now)
                return [us.set_status(service, new, rollback=True)]
            why = f"{why}; there is no previous spec to roll back to"
        if rolling_back:
            log.warning("service rollback failed, pausing")
            new = us.status(
                us.ROLLBACK_PAUSED, f"rollback paused: {why}", now, us.started_at(service)
            )
        else:
            log.warning("service update failed, pausing")
            new = us.status(us.PAUSED, f"update paused: {why}", now, us.started_at(service))
        return [us.set_status(service, new)]

    def _replace(
        self,
        service: objects_pb2.Service,
        slot: Slot,
        cfg: rollout.Settings,
        now: float,
        cluster: objects_pb2.Cluster | None,
    ) -> list[Decision]:
        running = [t for t in slot if tasks.is_live(t) and t.status.state == tasks.RUNNING]
        if not (cfg.start_first and running):
            return replace_dirty_slots(service, [slot], self._supervisor, now, cluster)
        # Start first: the new task runs next to the old ones until it is up.
        glob = tasks.is_global(service)
        first = slot[0]
        new = tasks.new_task(
            service, 0 if glob else first.slot, first.node_id if glob else "", now, cluster
        )
        out: list[Decision] = [CreateTask(new)]
        # Old tasks that are not running any more have nothing to keep up: shut them now.
        out.extend(ReplaceTask(t.id, None) for t in slot if tasks.is_live(t) and t not in running)
        return out


__all__ = ["RollingUpdater"]
