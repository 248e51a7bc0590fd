"""The decisions of a rolling update, as pure functions of a service's tasks and the time.

Manager layer, pure (no store, no clock: callers pass `now`). `updater.RollingUpdater` calls
these on every reconcile of a service whose update is in progress; nothing here remembers
anything, so an update continues from the store after a leader change (swarmkit
manager/orchestrator/update/updater.go keeps the same progress in a goroutine instead).

Terms:
- The update's tasks: tasks whose spec is the service's (clean) created since the update
  started (`update_status.started_at`): replacements made by the update, by restarts during it,
  or by a scale-up during it.
- A task is *up* when it is RUNNING and, if it has a health check, not (yet) STARTING or
  UNHEALTHY (`TaskStatus.health`).
- A clean live task that is not up is *in flight*: its slot counts against `parallelism` (it is
  down) until it comes up, fails, or its start timeout passes.
- A task of the update *fails* when it stops on its own (COMPLETE, FAILED, REJECTED) before it
  has been up for `monitor` seconds, or when it has not come up `start_timeout` seconds after it
  was created (`Settings.start_timeout`: max(START_TIMEOUT, monitor); swarmkit has no such
  timeout and an update whose task never starts stalls silently). Whether a stopped task had
  been up for longer than `monitor` is known only if the updater saw it up (`up_seen`); after a
  leader change it is not, and the failure counts.
- After a task comes up, its worker waits `delay` seconds before it takes the next slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.controlapi import defaults
from swarmd.manager.orchestrator import task as tasks

START_TIMEOUT = 120.0

FailureAction = types_pb2.UpdateConfig.FailureAction
PAUSE = types_pb2.UpdateConfig.FAILURE_ACTION_PAUSE
CONTINUE = types_pb2.UpdateConfig.FAILURE_ACTION_CONTINUE
ROLLBACK = types_pb2.UpdateConfig.FAILURE_ACTION_ROLLBACK
_START_FIRST = types_pb2.UpdateConfig.UPDATE_ORDER_START_FIRST
_NOT_UP = (types_pb2.HEALTH_STATE_STARTING, types_pb2.HEALTH_STATE_UNHEALTHY)

Slot = Sequence[objects_pb2.Task]


@dataclass(frozen=True, slots=True)
class Settings:
    """An UpdateConfig with the defaults applied, in seconds.

    Attributes:
        parallelism: slots updated at the same time; 0 = all at once.
    """

    parallelism: int
    delay: float
    monitor: float
    failure_action: FailureAction.ValueType
    max_failure_ratio: float
    start_first: bool
    start_timeout: float


def _secs(d: object) -> float:
    return max(0.0, getattr(d, "seconds", 0) + getattr(d, "nanos", 0) / 1e9)


def settings(
    config: types_pb2.UpdateConfig | None, start_timeout: float = START_TIMEOUT
) -> Settings:
    """The Settings for an UpdateConfig (None: the spec leaves it unset, swarmkit's defaults)."""
    cfg = config if config is not None else defaults.default_update_config()
    monitor = _secs(cfg.monitor) if cfg.HasField("monitor") else defaults.UPDATE_MONITOR_SECONDS
    return Settings(
        parallelism=cfg.parallelism,
        delay=_secs(cfg.delay),
        monitor=float(monitor),
        failure_action=cfg.failure_action,
        max_failure_ratio=cfg.max_failure_ratio,
        start_first=cfg.order == _START_FIRST,
        start_timeout=max(start_timeout, float(monitor)),
    )


def is_up(t: objects_pb2.Task) -> bool:
    """Whether the task runs (and, with a health check, is not starting or unhealthy)."""
    return t.status.state == tasks.RUNNING and t.status.health not in _NOT_UP


def created(t: objects_pb2.Task) -> float:
    """When the task was created (the store's stamp; its first status time if unset)."""
    at = tasks.seconds(t.meta.created_at)
    return at if at else tasks.seconds(t.status.timestamp)


def _state_name(t: objects_pb2.Task) -> str:
    return types_pb2.TaskState.Name(t.status.state).removeprefix("TASK_STATE_").lower()


def _why(t: objects_pb2.Task) -> str:
    return t.status.err or t.status.message or _state_name(t)


@dataclass(slots=True)
class Progress:
    """Where an update stands, derived from the service's tasks.

    Attributes:
        mine: the update's tasks (see the module docstring).
        failures: (task, why) for each failed task of the update, oldest first.
        in_flight: clean live tasks not up yet and not timed out, by slot.
        cooling: when each worker's delay after its task came up ends (still in the future).
        timeouts: when each in-flight task's start timeout ends.
        monitor_end: when the monitor window of the last task that came up ends.
        up: task id -> when it came up, for every task of the update that is up now.
    """

    mine: list[objects_pb2.Task] = field(default_factory=list)
    failures: list[tuple[objects_pb2.Task, str]] = field(default_factory=list)
    in_flight: dict[tasks.SlotKey, list[objects_pb2.Task]] = field(default_factory=dict)
    cooling: list[float] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    monitor_end: float = 0.0
    up: dict[str, float] = field(default_factory=dict)


def failure(t: objects_pb2.Task, cfg: Settings, now: float, up_seen: float | None) -> str | None:
    """Why a task of the update counts as failed, or None when it does not (yet)."""
    name = t.annotations.name or t.id
    if tasks.stopped_on_its_own(t):
        if up_seen is not None and tasks.status_time(t) > up_seen + cfg.monitor:
            return None  # it ran past its monitor window: not the update's fault
        if t.status.state == tasks.COMPLETE:
            return f"task {name} exited: {_why(t)}"
        return f"task {name} failed: {_why(t)}"
    if (
        tasks.is_live(t)
        and t.status.state <= tasks.RUNNING
        and not is_up(t)
        and created(t) + cfg.start_timeout <= now
    ):
        return (
            f"task {name} did not start within {cfg.start_timeout:g}s ({_state_name(t)}: {_why(t)})"
        )
    return None


def assess(
    service: objects_pb2.Service,
    service_tasks: Sequence[objects_pb2.Task],
    cfg: Settings,
    started: float,
    now: float,
    up_seen: Mapping[str, float],
) -> Progress:
    """The Progress of the update of `service` that started at `started`.

    Args:
        up_seen: task id -> when the updater last saw it up (see the module docstring).
    """
    out = Progress()
    for t in service_tasks:
        if t.desired_state >= tasks.REMOVE or tasks.is_dirty(service, t):
            continue
        mine = created(t) >= started
        if mine:
            out.mine.append(t)
            why = failure(t, cfg, now, up_seen.get(t.id))
            if why is not None:
                out.failures.append((t, why))
                continue
        if not tasks.is_live(t) or t.status.state > tasks.RUNNING:
            continue
        if is_up(t):
            if mine:
                since = tasks.status_time(t)
                out.up[t.id] = since
                out.monitor_end = max(out.monitor_end, since + cfg.monitor)
                if since + cfg.delay > now:
                    out.cooling.append(since + cfg.delay)
            continue
        deadline = created(t) + cfg.start_timeout
        if deadline <= now:
            continue  # timed out: a failure if it is the update's, no longer holds a worker
        out.in_flight.setdefault(tasks.slot_key(t, service), []).append(t)
        out.timeouts.append(deadline)
    out.failures.sort(key=lambda f: (tasks.status_time(f[0]), f[0].id))
    return out


def failures_exceeded(progress: Progress, cfg: Settings, total_slots: int) -> bool:
    """Whether the failures are more than max_failure_ratio of the slots (swarmkit's rule)."""
    if not progress.failures:
        return False
    return len(progress.failures) > cfg.max_failure_ratio * max(1, total_slots)


@dataclass(slots=True)
class Batch:
    """What to do with the dirty slots now.

    Attributes:
        retire: old tasks to shut down (start-first: their slot's new task is up).
        start: the dirty slots to update now.
        waiting: dirty slots left for a later batch.
        wake_at: when the next batch may start (a delay ends), None if no delay holds it.
    """

    retire: list[objects_pb2.Task] = field(default_factory=list)
    start: list[Slot] = field(default_factory=list)
    waiting: int = 0
    wake_at: float | None = None


def _running(slot: Slot) -> bool:
    return any(t.status.state == tasks.RUNNING for t in slot)


def next_batch(
    service: objects_pb2.Service,
    dirty: Sequence[Slot],
    progress: Progress,
    cfg: Settings,
) -> Batch:
    """Pick the dirty slots to update now, at most `parallelism` down at once.

    A dirty slot that already has a new task is left alone while it starts (start first), and
    gets its old tasks retired once it is up. Slots that are not running anything go first (updating
    them costs no capacity), then by slot number or node.
    """
    out = Batch()
    candidates: list[Slot] = []
    for slot in dirty:
        if not slot:
            continue
        key = tasks.slot_key(slot[0], service)
        clean = [t for t in slot if not tasks.is_dirty(service, t) and tasks.is_live(t)]
        if any(is_up(t) for t in clean):
            out.retire.extend(t for t in slot if tasks.is_dirty(service, t) and tasks.is_live(t))
            continue
        if clean or key in progress.in_flight:
            continue  # its new task is on its way (or stuck: a failure, not a reason for more)
        candidates.append(slot)
    candidates.sort(key=lambda s: (_running(s), tasks.slot_key(s[0], service)))
    busy = len(progress.in_flight) + len(progress.cooling)
    room = len(candidates) if cfg.parallelism == 0 else max(0, cfg.parallelism - busy)
    out.start = candidates[:room]
    out.waiting = len(candidates) - len(out.start)
    if out.waiting and progress.cooling:
        out.wake_at = min(progress.cooling)
    return out


__all__ = [
    "CONTINUE",
    "PAUSE",
    "ROLLBACK",
    "START_TIMEOUT",
    "Batch",
    "Progress",
    "Settings",
    "assess",
    "created",
    "failure",
    "failures_exceeded",
    "is_up",
    "next_batch",
    "settings",
]
