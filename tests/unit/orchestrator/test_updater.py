"""The rolling updater inside the orchestrator cores, against a store, with time chosen by the test.

The test plays scheduler and agents (`Agents.converge`): tasks meant to run get a node and come
up (or fail, as scripted), tasks told to stop stop. Every step asserts what a user would see:
the tasks' specs and states and the service's update status.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf import duration_pb2
from orchbuild import T0, Harness, S, node, restart_policy, service

from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.controlapi import revisions
from swarmd.manager.orchestrator import updatestatus as us
from swarmd.manager.orchestrator.global_ import GlobalReconciler
from swarmd.manager.orchestrator.plan import CreateTask, ReplaceTask
from swarmd.manager.orchestrator.replicated import ReplicatedReconciler
from swarmd.manager.orchestrator.updater import RollingUpdater
from swarmd.manager.store import MemoryStore

RUNNING = S.TASK_STATE_RUNNING
READY = S.TASK_STATE_READY
PENDING = S.TASK_STATE_PENDING
FAILED = S.TASK_STATE_FAILED
SHUTDOWN = S.TASK_STATE_SHUTDOWN
U = types_pb2.UpdateConfig


class _Time:
    """The store's clock: the harness's `now`, so created_at follows the test's time."""

    def __init__(self, h: Harness) -> None:
        self._h = h

    def now(self) -> float:
        return self._h.now

    def monotonic(self) -> float:
        return self._h.now

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("the store never sleeps")


class UpdateHarness(Harness):
    def __init__(self, core: object, now: float = T0) -> None:
        self.core = core  # type: ignore[assignment]
        self.now = now
        self.store = MemoryStore(clock=_Time(self))
        self.sub = self.store.watch(self.core.kinds)

    def service(self) -> objects_pb2.Service:
        svc = self.store.view(lambda tx: tx.services.get("svc1"))
        assert svc is not None
        return svc

    def new_spec(self, fn: Callable[[objects_pb2.Service], None]) -> None:
        """What the control API does on UpdateService: new revision, status cleared."""
        svc = self.service()
        changed = objects_pb2.Service(spec=svc.spec)
        fn(changed)
        svc.ClearField("update_status")
        revisions.apply_spec(svc, changed.spec, 5, revisions.timestamp(self.now))
        self.change(svc)


def rolling(global_: bool = False, start_timeout: float = 120.0) -> UpdateHarness:
    def make(sup):  # type: ignore[no-untyped-def]
        return RollingUpdater(sup, start_timeout=start_timeout)

    core = GlobalReconciler(updater=make) if global_ else ReplicatedReconciler(updater=make)
    return UpdateHarness(core)


def update_config(
    parallelism: int = 2,
    delay: float = 0.0,
    monitor: float = 5.0,
    action: int = U.FAILURE_ACTION_PAUSE,
    ratio: float = 0.0,
    start_first: bool = False,
) -> types_pb2.UpdateConfig:
    c = U(parallelism=parallelism, max_failure_ratio=ratio)
    c.delay.CopyFrom(duration_pb2.Duration(seconds=int(delay)))
    c.monitor.CopyFrom(duration_pb2.Duration(seconds=int(monitor)))
    c.failure_action = action  # type: ignore[assignment]
    if start_first:
        c.order = U.UPDATE_ORDER_START_FIRST
    return c


class Agents:
    """Scheduler and agents: run what is meant to run, stop what is told to stop."""

    def __init__(self, h: UpdateHarness, nodes: tuple[str, ...] = ("n1", "n2", "n3")) -> None:
        self.h = h
        self.nodes = nodes
        self.fails: Callable[[objects_pb2.Task], bool] = lambda t: False
        self.starts: Callable[[objects_pb2.Task], bool] = lambda t: True

    def converge(self, rounds: int = 4) -> None:
        h = self.h
        for _ in range(rounds):
            h.settle()
            for i, t in enumerate(sorted(h.tasks(), key=lambda t: (t.slot, t.id))):
                if t.desired_state > RUNNING and t.status.state <= RUNNING:
                    h.set_status(t.id, SHUTDOWN)
                elif t.desired_state == RUNNING and t.status.state < RUNNING:
                    if not self.starts(t):
                        continue
                    cur = h.get(t.id)
                    cur.node_id = cur.node_id or self.nodes[i % len(self.nodes)]
                    cur.status.state = FAILED if self.fails(t) else RUNNING  # type: ignore[assignment]
                    if self.fails(t):
                        cur.status.err = "task: non-zero exit (1)"
                    cur.status.timestamp.CopyFrom(_ts(h.now))
                    h.change(cur)
            h.settle()


def _ts(at: float):  # type: ignore[no-untyped-def]
    from swarmd.manager.orchestrator.task import timestamp

    return timestamp(at)


def deployed(
    h: UpdateHarness, replicas: int | None = 6, cfg: types_pb2.UpdateConfig | None = None
) -> Agents:
    h.put(node("n1"), node("n2"), node("n3"))
    svc = service(replicas=replicas, restart=restart_policy(delay=0))
    revisions.start_history(svc, revisions.timestamp(h.now))
    h.put(svc)
    if cfg is not None:
        svc = h.service()
        svc.spec.update.CopyFrom(cfg)
        svc.spec.rollback.CopyFrom(cfg)
        h.change(svc)
    h.start()
    agents = Agents(h)
    agents.converge()
    assert all(t.status.state == RUNNING for t in h.live())
    return agents


def image(h: UpdateHarness, name: str) -> None:
    h.new_spec(lambda s: setattr(s.spec.task.container, "image", name))


def images(h: UpdateHarness) -> list[str]:
    return sorted(t.spec.container.image for t in h.live())


def up_count(h: UpdateHarness) -> int:
    return sum(1 for t in h.live() if t.status.state == RUNNING)


def test_stop_first_updates_two_at_a_time_and_completes_after_monitor():
    h = rolling()
    agents = deployed(h, 6, update_config(parallelism=2, monitor=5))
    image(h, "busybox:2")
    h.settle()
    assert h.service().update_status.state == us.UPDATING
    assert h.service().update_status.message == "update in progress"
    rounds = 0
    while images(h).count("busybox:2") < 6:
        # Never more than 2 slots without a running task.
        assert up_count(h) >= 4, [(t.slot, t.status.state) for t in h.live()]
        assert sum(1 for t in h.live() if t.spec.container.image == "busybox:2") <= 6
        h.now += 1
        agents.converge(rounds=1)
        rounds += 1
        assert rounds < 20
    agents.converge()
    assert images(h) == ["busybox:2"] * 6
    assert up_count(h) == 6
    assert h.service().update_status.state == us.UPDATING  # monitoring the last batch
    h.now += 5
    h.settle()
    status = h.service().update_status
    assert status.state == us.COMPLETED
    assert status.message == "update completed"
    assert status.completed_at.seconds == int(h.now)
    assert status.started_at.seconds < status.completed_at.seconds


def test_start_first_keeps_every_replica_running():
    h = rolling()
    agents = deployed(h, 6, update_config(parallelism=2, start_first=True, monitor=1))
    old_ids = {t.id for t in h.live()}
    image(h, "busybox:2")
    h.settle()
    live = h.live()
    assert len(live) == 8  # two new tasks next to the six old ones
    assert {t.id for t in live} >= old_ids
    for _ in range(20):
        assert up_count(h) >= 6
        h.now += 1
        agents.converge(rounds=1)
        if h.service().update_status.state == us.COMPLETED:
            break
    assert images(h) == ["busybox:2"] * 6
    assert up_count(h) == 6
    assert h.service().update_status.state == us.COMPLETED


def test_delay_between_batches_is_honoured():
    h = rolling()
    agents = deployed(h, 4, update_config(parallelism=1, delay=10, monitor=1))
    image(h, "busybox:2")
    agents.converge()
    assert images(h).count("busybox:2") == 1
    h.now += 9.5
    agents.converge()
    assert images(h).count("busybox:2") == 1  # the delay is not over
    h.now += 0.5
    agents.converge()
    assert images(h).count("busybox:2") == 2
    # The orchestrator wakes up by itself when the delay ends (no event needed).
    assert h.core.next_wakeup() == h.now + 10


def test_only_dirty_slots_are_replaced_and_force_update_replaces_all():
    h = rolling()
    agents = deployed(h, 3, update_config(parallelism=0, monitor=1))
    first = {t.id for t in h.live()}
    h.new_spec(lambda s: setattr(s.spec.replicated, "replicas", 4))  # a scale: nothing dirty
    agents.converge()
    assert first < {t.id for t in h.live()}
    assert h.service().update_status.state == us.UNKNOWN
    before = {t.id for t in h.live()}
    h.new_spec(lambda s: setattr(s.spec.task, "force_update", 1))
    agents.converge()
    assert not before & {t.id for t in h.live()}
    assert len(h.live()) == 4


def test_failure_pauses_and_says_why():
    h = rolling()
    agents = deployed(h, 6, update_config(parallelism=2))
    agents.fails = lambda t: t.spec.container.image == "busybox:bad"
    image(h, "busybox:bad")
    agents.converge()
    status = h.service().update_status
    assert status.state == us.PAUSED
    assert status.message.startswith("update paused: task web.")
    assert status.message.endswith(" failed: task: non-zero exit (1)")
    # Paused: the other slots keep the old spec and keep running.
    bad = [t for t in h.tasks() if t.spec.container.image == "busybox:bad"]
    assert images(h).count("busybox") == 4
    h.now += 100
    agents.converge()
    assert images(h).count("busybox") == 4
    assert h.service().update_status.state == us.PAUSED
    assert bad  # the failures are kept as task history


def test_failure_rolls_back_to_the_previous_spec():
    h = rolling()
    agents = deployed(h, 6, update_config(parallelism=2, action=U.FAILURE_ACTION_ROLLBACK))
    agents.fails = lambda t: t.spec.container.image == "busybox:bad"
    original = {t.id for t in h.live()}
    image(h, "busybox:bad")
    agents.converge()
    svc = h.service()
    assert svc.spec.task.container.image == "busybox"
    assert svc.previous_spec.task.container.image == "busybox:bad"
    assert svc.revision == 3  # the rollback is a revision of its own
    # Only the slots the update reached were replaced; the good tasks were never touched.
    kept = original & {t.id for t in h.live()}
    assert len(kept) == 4
    assert svc.update_status.state == us.ROLLBACK_STARTED
    assert svc.update_status.message.startswith("update rolled back: task web.")
    assert images(h) == ["busybox"] * 6
    assert up_count(h) == 6
    h.now += 6
    agents.converge()
    assert h.service().update_status.state == us.ROLLBACK_COMPLETED
    message = h.service().update_status.message
    assert message.startswith("rollback completed (update rolled back: task web.")
    assert message.endswith(" failed: task: non-zero exit (1))")


def test_failing_rollback_pauses():
    h = rolling()
    agents = deployed(h, 2, update_config(parallelism=1, action=U.FAILURE_ACTION_ROLLBACK))
    agents.fails = lambda t: True  # both specs fail from now on
    image(h, "busybox:bad")
    agents.converge(rounds=8)
    status = h.service().update_status
    assert status.state == us.ROLLBACK_PAUSED
    assert status.message.startswith("rollback paused: task web.")


def test_continue_ignores_failures_and_max_failure_ratio_tolerates_some():
    h = rolling()
    agents = deployed(h, 4, update_config(parallelism=0, action=U.FAILURE_ACTION_CONTINUE))
    flaky = {"n": 0}

    def fail_once(t: objects_pb2.Task) -> bool:
        flaky["n"] += 1
        return flaky["n"] <= 3

    agents.fails = fail_once
    image(h, "busybox:2")
    agents.converge()
    assert h.service().update_status.state == us.UPDATING
    h.now += 6
    agents.converge()
    assert h.service().update_status.state == us.COMPLETED
    assert images(h) == ["busybox:2"] * 4

    h2 = rolling()
    agents2 = deployed(h2, 4, update_config(parallelism=0, ratio=0.5))
    victims: set[int] = set()

    def fail_slots(t: objects_pb2.Task) -> bool:
        if t.slot in (1, 2) and t.slot not in victims:
            victims.add(t.slot)
            return True
        return False

    agents2.fails = fail_slots
    image(h2, "busybox:2")
    agents2.converge()
    assert h2.service().update_status.state == us.UPDATING  # 2 of 4 failed: ratio 0.5 holds
    agents2.fails = lambda t: t.slot == 3 and t.status.state < RUNNING
    svc_tasks = [t for t in h2.live() if t.slot == 3]
    h2.set_status(svc_tasks[0].id, FAILED)
    agents2.converge()
    assert h2.service().update_status.state == us.PAUSED  # the third failure is too many


def test_task_that_never_starts_pauses_the_update_after_the_start_timeout():
    h = rolling(start_timeout=30)
    agents = deployed(h, 3, update_config(parallelism=1))
    agents.starts = lambda t: t.spec.container.image != "busybox:2"
    image(h, "busybox:2")
    agents.converge()
    assert h.service().update_status.state == us.UPDATING
    h.now += 29
    agents.converge()
    assert h.service().update_status.state == us.UPDATING
    assert h.core.next_wakeup() == h.now + 1  # woken by the timeout, not by an event
    h.now += 1
    h.settle()
    status = h.service().update_status
    assert status.state == us.PAUSED
    assert "did not start within 30s (pending: pending task scheduling)" in status.message


def test_newer_spec_during_an_update_restarts_from_the_tasks():
    h = rolling()
    agents = deployed(h, 4, update_config(parallelism=1, monitor=1))
    image(h, "busybox:2")
    agents.converge(rounds=2)
    assert 1 <= images(h).count("busybox:2") < 4  # busybox:3 arrives mid-update
    image(h, "busybox:3")
    for _ in range(12):
        h.now += 1
        agents.converge(rounds=1)
        assert up_count(h) >= 3
    assert images(h) == ["busybox:3"] * 4
    assert h.service().update_status.state == us.COMPLETED


def test_a_new_leader_continues_the_update_from_the_store():
    h = rolling()
    agents = deployed(h, 6, update_config(parallelism=2, monitor=2))
    image(h, "busybox:2")
    agents.converge(rounds=2)
    assert images(h).count("busybox:2") == 4  # the second batch is on its way
    # A new leader: fresh cores, the same store.
    h2 = UpdateHarness(ReplicatedReconciler(updater=RollingUpdater), now=h.now)
    h2.store, h2.sub = h.store, h.store.watch(h2.core.kinds)
    h2.store = h.store
    plan = h2.start()
    plan += h2.settle()
    replaced = [d for d in plan if isinstance(d, (ReplaceTask, CreateTask))]
    assert replaced == []  # the second batch is still starting: nothing more at once
    agents.h = h2
    for _ in range(10):
        h2.now += 1
        agents.converge(rounds=1)
    assert images(h2) == ["busybox:2"] * 6
    assert h2.service().update_status.state == us.COMPLETED


def test_global_service_updates_node_by_node():
    h = rolling(global_=True)
    agents = deployed(h, None, update_config(parallelism=1, monitor=1))
    assert len(h.live()) == 3
    image(h, "busybox:2")
    h.settle()
    new = [t for t in h.live() if t.spec.container.image == "busybox:2"]
    assert len(new) == 1
    for _ in range(10):
        h.now += 1
        agents.converge(rounds=1)
        assert len([t for t in h.live() if t.status.state != RUNNING]) <= 1
    assert images(h) == ["busybox:2"] * 3
    assert {t.node_id for t in h.live()} == {"n1", "n2", "n3"}
    assert h.service().update_status.state == us.COMPLETED


def test_global_start_first_keeps_the_old_task_until_the_new_one_runs():
    h = rolling(global_=True)
    agents = deployed(h, None, update_config(parallelism=1, monitor=1, start_first=True))
    agents.starts = lambda t: t.spec.container.image != "busybox:2"
    image(h, "busybox:2")
    agents.converge()
    on_node = {}
    for t in h.live():
        on_node.setdefault(t.node_id, []).append(t.spec.container.image)
    # One node got its new task next to the old one, which still runs.
    assert sorted(len(v) for v in on_node.values()) == [1, 1, 2]
    assert up_count(h) == 3
    agents.starts = lambda t: True
    for _ in range(10):
        h.now += 1
        agents.converge(rounds=1)
        assert up_count(h) >= 3
    assert images(h) == ["busybox:2"] * 3
    assert h.service().update_status.state == us.COMPLETED
