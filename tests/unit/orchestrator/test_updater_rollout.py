"""The rolling update's pure decisions (rollout.py): settings, batches, failures, timeouts."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from orchbuild import T0, S, service, task

from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.orchestrator import rollout
from swarmd.manager.orchestrator.task import timestamp

RUNNING = S.TASK_STATE_RUNNING
PENDING = S.TASK_STATE_PENDING
FAILED = S.TASK_STATE_FAILED
SHUTDOWN = S.TASK_STATE_SHUTDOWN
STARTED = T0 + 100  # the update's start
U = types_pb2.UpdateConfig


def config(
    parallelism: int = 1,
    delay: float = 0.0,
    monitor: float = 5.0,
    action: int = U.FAILURE_ACTION_PAUSE,
    ratio: float = 0.0,
    start_first: bool = False,
) -> types_pb2.UpdateConfig:
    c = U(parallelism=parallelism, max_failure_ratio=ratio)
    c.delay.CopyFrom(duration_pb2.Duration(seconds=int(delay), nanos=int(delay % 1 * 1e9)))
    c.monitor.CopyFrom(duration_pb2.Duration(seconds=int(monitor), nanos=int(monitor % 1 * 1e9)))
    c.failure_action = action  # type: ignore[assignment]
    if start_first:
        c.order = U.UPDATE_ORDER_START_FIRST
    return c


def updated_service(replicas: int = 6) -> objects_pb2.Service:
    svc = service(replicas=replicas)
    svc.spec.task.container.image = "busybox:2"
    return svc


def old(svc: objects_pb2.Service, slot: int, **kw: object) -> objects_pb2.Task:
    """A task of the previous spec (dirty), created before the update."""
    t = task(f"old{slot}", svc, slot, "n1", at=T0, **kw)  # type: ignore[arg-type]
    t.spec.container.image = "busybox"
    t.meta.created_at.CopyFrom(timestamp(T0))
    return t


def new(
    svc: objects_pb2.Service,
    slot: int,
    state: int = RUNNING,
    *,
    at: float = STARTED + 1,
    created: float = STARTED,
    tid: str = "",
    desired: int = RUNNING,
) -> objects_pb2.Task:
    """A task of the update (current spec, created after the update started)."""
    t = task(tid or f"new{slot}", svc, slot, "n1", state=state, at=at, desired=desired)
    t.annotations.name = f"web.{slot}"
    t.meta.created_at.CopyFrom(timestamp(created))
    return t


def test_settings_defaults_when_the_spec_leaves_update_unset():
    cfg = rollout.settings(None)
    assert cfg == rollout.Settings(
        parallelism=1,
        delay=0.0,
        monitor=5.0,
        failure_action=U.FAILURE_ACTION_PAUSE,
        max_failure_ratio=0.0,
        start_first=False,
        start_timeout=rollout.START_TIMEOUT,
    )


def test_settings_explicit_config_and_start_timeout_never_below_monitor():
    cfg = rollout.settings(config(parallelism=0, delay=1.5, monitor=300, start_first=True))
    assert (cfg.parallelism, cfg.delay, cfg.monitor, cfg.start_first) == (0, 1.5, 300.0, True)
    assert cfg.start_timeout == 300.0
    assert rollout.settings(config(monitor=2), start_timeout=10).start_timeout == 10.0


@pytest.mark.parametrize(
    ("parallelism", "in_flight", "expect_started", "expect_waiting"),
    [
        (2, 0, [1, 2], 4),
        (2, 1, [1], 4),  # slot 6 is in flight: one worker left
        (2, 2, [], 4),
        (1, 0, [1], 5),
        (0, 0, [1, 2, 3, 4, 5, 6], 0),  # 0 = all at once
        (0, 2, [1, 2, 3, 4], 0),
        (10, 0, [1, 2, 3, 4, 5, 6], 0),
    ],
)
def test_batch_respects_parallelism(parallelism, in_flight, expect_started, expect_waiting):
    svc = updated_service(6)
    tasks = [old(svc, s) for s in range(1, 7)]
    dirty = [[t] for t in tasks]
    # Slots already being updated (stop-first): the old task shut down, the new one pending.
    for s in range(6, 6 - in_flight, -1):
        dirty = [d for d in dirty if d[0].slot != s]
        tasks.append(new(svc, s, PENDING))
    cfg = rollout.settings(config(parallelism=parallelism))
    progress = rollout.assess(svc, tasks, cfg, STARTED, STARTED + 2, {})
    batch = rollout.next_batch(svc, dirty, progress, cfg)
    assert [s[0].slot for s in batch.start] == expect_started
    assert batch.waiting == expect_waiting
    assert batch.retire == []


def test_batch_takes_slots_that_run_nothing_first():
    svc = updated_service(4)
    tasks = [old(svc, 1), old(svc, 2, state=PENDING), old(svc, 3), old(svc, 4, state=PENDING)]
    cfg = rollout.settings(config(parallelism=2))
    progress = rollout.assess(svc, tasks, cfg, STARTED, STARTED, {})
    batch = rollout.next_batch(svc, [[t] for t in tasks], progress, cfg)
    assert [s[0].slot for s in batch.start] == [2, 4]


def test_start_first_retires_old_task_once_new_one_is_up_and_waits_otherwise():
    svc = updated_service(3)
    slot1 = [old(svc, 1), new(svc, 1, RUNNING)]  # new is up: retire old1
    slot2 = [old(svc, 2), new(svc, 2, PENDING)]  # new still starting: in flight
    slot3 = [old(svc, 3)]
    cfg = rollout.settings(config(parallelism=2, start_first=True))
    progress = rollout.assess(svc, slot1 + slot2 + slot3, cfg, STARTED, STARTED + 2, {})
    batch = rollout.next_batch(svc, [slot1, slot2, slot3], progress, cfg)
    assert [t.id for t in batch.retire] == ["old1"]
    assert [s[0].slot for s in batch.start] == [3]


def test_unhealthy_or_starting_health_is_not_up():
    svc = updated_service(1)
    t = new(svc, 1, RUNNING)
    assert rollout.is_up(t)
    t.status.health = types_pb2.HEALTH_STATE_STARTING
    assert not rollout.is_up(t)
    t.status.health = types_pb2.HEALTH_STATE_HEALTHY
    assert rollout.is_up(t)


def test_delay_holds_the_worker_after_its_task_came_up():
    svc = updated_service(3)
    tasks = [new(svc, 1, RUNNING, at=STARTED + 10), old(svc, 2), old(svc, 3)]
    cfg = rollout.settings(config(parallelism=1, delay=5))
    dirty = [[tasks[1]], [tasks[2]]]
    progress = rollout.assess(svc, tasks, cfg, STARTED, STARTED + 14.9, {})
    batch = rollout.next_batch(svc, dirty, progress, cfg)
    assert batch.start == []
    assert batch.wake_at == STARTED + 15
    progress = rollout.assess(svc, tasks, cfg, STARTED, STARTED + 15, {})
    assert [s[0].slot for s in rollout.next_batch(svc, dirty, progress, cfg).start] == [2]


def test_monitor_end_is_monitor_after_the_last_task_came_up():
    svc = updated_service(2)
    tasks = [new(svc, 1, RUNNING, at=STARTED + 3), new(svc, 2, RUNNING, at=STARTED + 8)]
    cfg = rollout.settings(config(monitor=5))
    progress = rollout.assess(svc, tasks, cfg, STARTED, STARTED + 9, {})
    assert progress.monitor_end == STARTED + 13
    assert progress.in_flight == {}


@pytest.mark.parametrize(
    ("state", "failed_at", "up_seen", "counts"),
    [
        (FAILED, STARTED + 3, None, True),  # failed, up time unknown: counts
        (FAILED, STARTED + 3, STARTED + 1, True),  # 2 s after it came up, monitor 5 s
        (FAILED, STARTED + 7, STARTED + 1, False),  # 6 s after: past its monitor window
        (S.TASK_STATE_REJECTED, STARTED + 3, None, True),
        (S.TASK_STATE_COMPLETE, STARTED + 3, None, True),  # a service task must not exit
        (SHUTDOWN, STARTED + 3, None, False),  # shut down by the orchestrator
    ],
)
def test_failures_inside_the_monitor_window(state, failed_at, up_seen, counts):
    svc = updated_service(1)
    t = new(svc, 1, state, at=failed_at, desired=SHUTDOWN)
    t.status.err = "task: non-zero exit (1)"
    cfg = rollout.settings(config(monitor=5))
    seen = {} if up_seen is None else {t.id: up_seen}
    progress = rollout.assess(svc, [t], cfg, STARTED, STARTED + 10, seen)
    assert bool(progress.failures) == counts
    if counts and state == FAILED:
        assert progress.failures[0][1] == "task web.1 failed: task: non-zero exit (1)"


def test_failures_before_the_update_started_do_not_count():
    svc = updated_service(1)
    t = new(svc, 1, FAILED, at=STARTED - 5, created=STARTED - 10, desired=SHUTDOWN)
    cfg = rollout.settings(config())
    assert rollout.assess(svc, [t], cfg, STARTED, STARTED + 1, {}).failures == []


def test_task_that_never_starts_fails_at_its_start_timeout_and_frees_its_worker():
    svc = updated_service(2)
    stuck = new(svc, 1, PENDING, at=STARTED)
    stuck.status.message = "pending task scheduling"
    stuck.status.err = "no suitable node (insufficient memory on 3 nodes)"
    cfg = rollout.settings(config(parallelism=1), start_timeout=60)
    before = rollout.assess(svc, [stuck], cfg, STARTED, STARTED + 59, {})
    assert before.failures == []
    assert list(before.in_flight) == [("svc1", 1, "")]
    assert before.timeouts == [STARTED + 60]
    after = rollout.assess(svc, [stuck], cfg, STARTED, STARTED + 60, {})
    assert after.in_flight == {}
    assert [why for _, why in after.failures] == [
        "task web.1 did not start within 60s "
        "(pending: no suitable node (insufficient memory on 3 nodes))"
    ]


@pytest.mark.parametrize(
    ("failures", "slots", "ratio", "exceeded"),
    [
        (0, 6, 0.0, False),
        (1, 6, 0.0, True),
        (1, 6, 0.2, False),  # 1/6 = 0.17
        (2, 6, 0.2, True),
        (3, 6, 0.5, False),  # exactly the ratio is still fine
        (4, 6, 0.5, True),
        (5, 6, 1.0, False),
    ],
)
def test_max_failure_ratio(failures, slots, ratio, exceeded):
    svc = updated_service(slots)
    failed = [
        new(svc, s, FAILED, at=STARTED + 2, desired=SHUTDOWN, tid=f"f{s}")
        for s in range(1, failures + 1)
    ]
    cfg = rollout.settings(config(ratio=ratio))
    progress = rollout.assess(svc, failed, cfg, STARTED, STARTED + 3, {})
    assert len(progress.failures) == failures
    assert rollout.failures_exceeded(progress, cfg, slots) is exceeded


# Each slot: what it holds when the batch is picked.
_SLOT_KINDS = (
    "old running",
    "old pending",
    "new starting",
    "new up",
    "old+new starting",
    "old+new up",
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    kinds=st.lists(st.sampled_from(_SLOT_KINDS), min_size=1, max_size=12),
    parallelism=st.integers(min_value=0, max_value=5),
    start_first=st.booleans(),
)
def test_batch_never_takes_more_than_parallelism_down(kinds, parallelism, start_first):
    svc = updated_service(len(kinds))
    tasks: list[objects_pb2.Task] = []
    dirty = []
    for slot, kind in enumerate(kinds, start=1):
        group = []
        if kind.startswith("old"):
            group.append(old(svc, slot, state=PENDING if kind == "old pending" else RUNNING))
        if "new" in kind:
            group.append(new(svc, slot, RUNNING if kind.endswith("up") else PENDING))
        tasks.extend(group)
        if kind.startswith("old"):
            dirty.append(group)
    cfg = rollout.settings(config(parallelism=parallelism, start_first=start_first))
    progress = rollout.assess(svc, tasks, cfg, STARTED, STARTED + 2, {})
    batch = rollout.next_batch(svc, dirty, progress, cfg)
    started = [s[0].slot for s in batch.start]
    assert len(set(started)) == len(started)
    # Never a slot whose new task is already there, nor one that is being retired.
    for slot in started:
        assert "new" not in kinds[slot - 1]
    assert sorted(t.slot for t in batch.retire) == [
        s for s, k in enumerate(kinds, start=1) if k == "old+new up"
    ]
    assert all(t.id.startswith("old") for t in batch.retire)
    in_flight = sum(1 for k in kinds if k.endswith("starting"))
    if parallelism:
        assert len(started) <= max(0, parallelism - in_flight)
    # Every dirty slot is either started, retired, in flight, or left for later.
    assert len(started) + batch.waiting + len(batch.retire) + in_flight == len(dirty) + sum(
        1 for k in kinds if k == "new starting"
    )
