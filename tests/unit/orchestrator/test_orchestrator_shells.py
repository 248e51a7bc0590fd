"""The async shells against a real MemoryStore and a FakeClock, services made by the control API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from google.protobuf import duration_pb2
from orchbuild import DRAIN, S, node

from swarmd.api import control_pb2, objects_pb2, specs_pb2
from swarmd.manager.controlapi.services import Services
from swarmd.manager.orchestrator.driver import RESYNC_DELAY, run_reconciler
from swarmd.manager.orchestrator.enforcer import ConstraintEnforcer
from swarmd.manager.orchestrator.global_ import GlobalOrchestrator
from swarmd.manager.orchestrator.reaper import BATCH_INTERVAL, TaskReaper
from swarmd.manager.orchestrator.replicated import ReplicatedOrchestrator, ReplicatedReconciler
from swarmd.manager.store import MemoryStore, Tx
from swarmd.testing.fake_clock import FakeClock

RUNNING = S.TASK_STATE_RUNNING
PENDING = S.TASK_STATE_PENDING
READY = S.TASK_STATE_READY
REMOVE = S.TASK_STATE_REMOVE
SHUTDOWN = S.TASK_STATE_SHUTDOWN


async def eventually(pred: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll pred on the real loop (the shells run as tasks) until true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


@dataclass
class Cluster:
    store: MemoryStore
    clock: FakeClock
    services: Services

    def tasks(self, service_id: str) -> list[objects_pb2.Task]:
        return self.store.view(lambda tx: tx.tasks.find_by_service(service_id))

    def live(self, service_id: str) -> list[objects_pb2.Task]:
        return [t for t in self.tasks(service_id) if t.desired_state <= RUNNING]

    def live_slots(self, service_id: str) -> list[int]:
        return sorted(t.slot for t in self.live(service_id))

    async def create(
        self, name: str, replicas: int | None, delay: float = 0.0, constraints: tuple[str, ...] = ()
    ) -> str:
        spec = specs_pb2.ServiceSpec()
        spec.task.placement.constraints.extend(constraints)
        spec.annotations.name = name
        spec.task.container.image = "swarmd-busybox:latest"
        spec.task.container.command.extend(["sleep", "3600"])
        spec.task.restart.delay.CopyFrom(duration_pb2.Duration(seconds=int(delay)))
        if replicas is None:
            getattr(spec, "global").SetInParent()
        else:
            spec.replicated.replicas = replicas
        svc = await self.services.create(control_pb2.CreateServiceRequest(spec=spec))
        return svc.id

    async def scale(self, service_id: str, replicas: int) -> None:
        svc = self.store.view(lambda tx: tx.services.get(service_id))
        assert svc is not None
        svc.spec.replicated.replicas = replicas
        await self.services.update(
            control_pb2.UpdateServiceRequest(
                service_id=service_id, service_version=svc.meta.version, spec=svc.spec
            )
        )

    async def put_node(self, n: objects_pb2.Node) -> None:
        def fn(tx: Tx) -> None:
            cur = tx.nodes.get(n.id)
            if cur is None:
                tx.nodes.create(n)
            else:
                n.meta.version.index = cur.meta.version.index
                tx.nodes.update(n)

        await self.store.update(fn)

    async def report(self, task_id: str, state: int, node_id: str | None = None) -> None:
        """What the scheduler and an agent would write."""

        def fn(tx: Tx) -> None:
            t = tx.tasks.get(task_id)
            assert t is not None
            if node_id is not None:
                t.node_id = node_id
            t.status.state = state  # type: ignore[assignment]
            t.status.timestamp.CopyFrom(tx.now)
            tx.tasks.update(t)

        await self.store.update(fn)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    c = Cluster(store, clock, Services(store, clock))
    shells: list[ReplicatedOrchestrator | GlobalOrchestrator | TaskReaper | ConstraintEnforcer] = [
        ReplicatedOrchestrator(store, clock),
        GlobalOrchestrator(store, clock),
        TaskReaper(store, clock),
        ConstraintEnforcer(store, clock),
    ]
    runners = [asyncio.create_task(s.run()) for s in shells]
    await asyncio.sleep(0)
    yield c
    crashed = [r for r in runners if r.done()]
    for r in runners:
        r.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
    assert not crashed, [r.exception() for r in crashed]


async def test_shell_replicated_create_scale_up_and_down(cluster: Cluster):
    sid = await cluster.create("web", 3)
    await eventually(lambda: cluster.live_slots(sid) == [1, 2, 3], "3 tasks")
    for t in cluster.live(sid):
        assert t.status.state == PENDING
        assert t.status.message == "pending task scheduling"
        assert t.annotations.name == f"web.{t.slot}"
    await cluster.scale(sid, 5)
    await eventually(lambda: cluster.live_slots(sid) == [1, 2, 3, 4, 5], "5 tasks")
    await cluster.scale(sid, 2)
    await eventually(lambda: len(cluster.live_slots(sid)) == 2, "2 tasks")
    gone = [t for t in cluster.tasks(sid) if t.desired_state > RUNNING]
    assert len(gone) == 3
    assert {t.desired_state for t in gone} == {REMOVE}
    # The reaper deletes scaled-away tasks that never got a node, after its batch interval.
    await cluster.clock.advance(BATCH_INTERVAL)
    await eventually(lambda: len(cluster.tasks(sid)) == 2, "scaled-away tasks reaped")


async def test_shell_failed_task_replaced_after_restart_delay(cluster: Cluster):
    await cluster.put_node(node("n1"))
    sid = await cluster.create("web", 1, delay=5)
    await eventually(lambda: len(cluster.live(sid)) == 1, "1 task")
    (t1,) = cluster.live(sid)
    await cluster.report(t1.id, RUNNING, node_id="n1")
    await cluster.report(t1.id, S.TASK_STATE_FAILED)
    await eventually(
        lambda: [t.id for t in cluster.live(sid)] not in ([], [t1.id]), "a replacement"
    )
    (new,) = cluster.live(sid)
    assert new.slot == t1.slot
    assert new.desired_state == READY
    await cluster.clock.advance(4)
    await asyncio.sleep(0.05)
    assert cluster.live(sid)[0].desired_state == READY
    await cluster.clock.advance(1)
    await eventually(lambda: cluster.live(sid)[0].desired_state == RUNNING, "delayed start")


async def test_shell_drained_node_tasks_replaced(cluster: Cluster):
    await cluster.put_node(node("n1"))
    await cluster.put_node(node("n2"))
    sid = await cluster.create("web", 2)
    await eventually(lambda: len(cluster.live(sid)) == 2, "2 tasks")
    first, second = sorted(cluster.live(sid), key=lambda t: t.slot)
    await cluster.report(first.id, RUNNING, node_id="n1")
    await cluster.report(second.id, RUNNING, node_id="n2")
    await cluster.put_node(node("n1", availability=DRAIN))

    def replaced() -> bool:
        live = cluster.live(sid)
        return len(live) == 2 and first.id not in {t.id for t in live}

    await eventually(replaced, "the drained node's task replaced")
    old = cluster.store.view(lambda tx: tx.tasks.get(first.id))
    assert old is not None
    assert old.desired_state == SHUTDOWN
    new = next(t for t in cluster.live(sid) if t.id != second.id)
    assert new.slot == first.slot
    assert new.node_id == ""


async def test_shell_global_service_follows_nodes(cluster: Cluster):
    await cluster.put_node(node("n1"))
    sid = await cluster.create("agent", None)
    await eventually(lambda: [t.node_id for t in cluster.live(sid)] == ["n1"], "task on n1")
    await cluster.put_node(node("n2"))
    await eventually(lambda: len(cluster.live(sid)) == 2, "task on the new node")
    await cluster.put_node(node("n1", availability=DRAIN))
    await eventually(lambda: [t.node_id for t in cluster.live(sid)] == ["n2"], "n1 drained")


async def test_shell_service_removal_shuts_tasks_down(cluster: Cluster):
    sid = await cluster.create("web", 3)
    await eventually(lambda: len(cluster.live(sid)) == 3, "3 tasks")
    await cluster.services.remove(control_pb2.RemoveServiceRequest(service_id=sid))
    await eventually(lambda: cluster.live(sid) == [], "tasks shut down")
    await asyncio.sleep(0.05)
    assert cluster.live(sid) == []  # nothing recreated them


async def test_shell_resynchronises_after_store_restore(cluster: Cluster):
    sid = await cluster.create("web", 2)
    await eventually(lambda: len(cluster.live(sid)) == 2, "2 tasks")
    snap = cluster.store.snapshot()
    del snap.tasks[:]  # a snapshot taken before the tasks existed
    cluster.store.restore(snap, cluster.store.version + 1)  # fails every watch
    assert cluster.live(sid) == []
    await asyncio.sleep(0.01)
    await cluster.clock.advance(RESYNC_DELAY)
    await eventually(lambda: cluster.live_slots(sid) == [1, 2], "tasks recreated after resync")


async def test_shell_task_on_node_that_stopped_matching_is_replaced(cluster: Cluster):
    await cluster.put_node(node("n1", labels={"zone": "a"}))
    sid = await cluster.create("web", 1, constraints=("node.labels.zone==a",))
    await eventually(lambda: len(cluster.live(sid)) == 1, "1 task")
    (t1,) = cluster.live(sid)
    await cluster.report(t1.id, RUNNING, node_id="n1")
    await cluster.put_node(node("n1", labels={"zone": "b"}))

    def replaced() -> bool:
        live = cluster.live(sid)
        return len(live) == 1 and live[0].id != t1.id

    await eventually(replaced, "the rejected task replaced")
    old = cluster.store.view(lambda tx: tx.tasks.get(t1.id))
    assert old is not None
    assert old.status.state == S.TASK_STATE_REJECTED
    assert old.desired_state == SHUTDOWN


class FailingOnce(ReplicatedReconciler):
    """A core with a bug that shows once: the shell must log it and start over."""

    failed = False

    def plan(self, tx, now):
        if not self.failed:
            self.failed = True
            raise RuntimeError("reconcile bug")
        return super().plan(tx, now)


async def test_shell_restarts_a_failing_core_after_a_pause():
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    c = Cluster(store, clock, Services(store, clock))
    core = FailingOnce()
    runner = asyncio.create_task(run_reconciler(store, clock, core))
    try:
        sid = await c.create("web", 2)
        await eventually(lambda: core.failed, "the failure")
        await asyncio.sleep(0.01)
        assert c.live(sid) == []
        await clock.advance(RESYNC_DELAY)
        await eventually(lambda: c.live_slots(sid) == [1, 2], "tasks after the restart")
        assert not runner.done()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
