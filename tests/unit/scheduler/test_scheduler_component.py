"""The async Scheduler against a real MemoryStore (no proposer) on a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import pytest
from schedbuild import DRAIN, node, task

from swarmd import errors
from swarmd.api import objects_pb2, store_pb2, types_pb2
from swarmd.manager.scheduler import ASSIGNED_MESSAGE, CANCELLED_MESSAGE, Scheduler
from swarmd.manager.scheduler.scheduler import DEBOUNCE
from swarmd.manager.store import MemoryStore, Tx
from swarmd.testing.fake_clock import FakeClock

PENDING = types_pb2.TASK_STATE_PENDING
ASSIGNED = types_pb2.TASK_STATE_ASSIGNED


@dataclass
class Harness:
    store: MemoryStore
    clock: FakeClock
    scheduler: Scheduler

    async def create(self, *objs: objects_pb2.Node | objects_pb2.Task) -> None:
        def fn(tx: Tx) -> None:
            for obj in objs:
                if isinstance(obj, objects_pb2.Node):
                    tx.nodes.create(obj)
                else:
                    tx.tasks.create(obj)

        await self.store.update(fn)

    def task(self, task_id: str) -> objects_pb2.Task:
        t = self.store.view(lambda tx: tx.tasks.get(task_id))
        assert t is not None
        return t

    def tasks(self) -> list[objects_pb2.Task]:
        return self.store.view(lambda tx: tx.tasks.list())

    async def eventually(self, what: Callable[[], bool], steps: int = 100) -> None:
        """Advance the fake clock in debounce-sized steps until what() holds."""
        for _ in range(steps):
            if what():
                return
            await self.clock.advance(0.06)
        raise AssertionError(f"condition never held; tasks: {[_show(t) for t in self.tasks()]}")

    async def settle(self, steps: int = 10) -> None:
        """Let several debounce periods pass (to show that nothing more happens)."""
        for _ in range(steps):
            await self.clock.advance(0.06)


def _show(t: objects_pb2.Task) -> tuple[str, str, int, str]:
    return (t.id, t.node_id, t.status.state, t.status.err)


@contextlib.asynccontextmanager
async def running_scheduler(store: MemoryStore, clock: FakeClock) -> AsyncIterator[Harness]:
    scheduler = Scheduler(store, clock)
    runner = asyncio.create_task(scheduler.run())
    try:
        yield Harness(store, clock, scheduler)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    clock = FakeClock()
    async with running_scheduler(MemoryStore(clock=clock), clock) as harness:
        yield harness


def assigned(h: Harness) -> dict[str, str]:
    return {t.id: t.node_id for t in h.tasks() if t.status.state == ASSIGNED}


async def test_scheduler_assigns_pending_tasks_spread_over_nodes(h: Harness) -> None:
    await h.create(node("a"), node("b"), node("c"))
    await h.create(*(task(f"t{i}", "web", slot=i) for i in range(6)))
    await h.eventually(lambda: len(assigned(h)) == 6)
    assert Counter(assigned(h).values()) == {"a": 2, "b": 2, "c": 2}
    t = h.task("t0")
    assert t.status.message == ASSIGNED_MESSAGE
    assert t.status.err == ""
    # Stamped from the scheduler's clock before the write.
    assert abs(t.status.timestamp.ToNanoseconds() / 1e9 - h.clock.now()) < 10


async def test_scheduler_places_a_pending_task_when_a_labelled_node_joins(h: Harness) -> None:
    await h.create(node("us1", labels={"zone": "us"}))
    await h.create(task("t", "web", constraints=["node.labels.zone==eu"]))
    reason = "no suitable node (constraint node.labels.zone==eu unmet on 1 node)"
    await h.eventually(lambda: h.task("t").status.err == reason)
    assert h.task("t").status.state == PENDING
    assert h.task("t").node_id == ""

    await h.create(node("eu1", labels={"zone": "eu"}))
    await h.eventually(lambda: h.task("t").status.state == ASSIGNED)
    t = h.task("t")
    assert (t.node_id, t.status.err, t.status.message) == ("eu1", "", ASSIGNED_MESSAGE)


async def test_scheduler_writes_a_reason_only_when_it_changes(h: Harness) -> None:
    await h.create(node("a", cpus=1))
    await h.create(task("t", "web", cpus=2))
    await h.eventually(lambda: "insufficient cpu on 1 node" in h.task("t").status.err)
    version = h.task("t").meta.version.index
    passes = h.scheduler.passes

    # An unrelated change: a new pass, the same reason, so no write.
    def relabel(tx: Tx) -> None:
        n = tx.nodes.get("a")
        assert n is not None
        n.spec.annotations.labels["colour"] = "blue"
        tx.nodes.update(n)

    await h.store.update(relabel)
    await h.settle()
    assert h.scheduler.passes > passes
    assert h.task("t").meta.version.index == version

    # A change that alters the reason is written.
    await h.create(node("b", state=objects_pb2.NodeStatus.STATE_DOWN))
    await h.eventually(
        lambda: (
            h.task("t").status.err
            == "no suitable node (node not ready on 1 node; insufficient cpu on 1 node)"
        )
    )


async def test_scheduler_places_a_task_once_resources_are_freed(h: Harness) -> None:
    await h.create(node("a", cpus=1))
    await h.create(task("first", "web", cpus=1, slot=1), task("second", "web", cpus=1, slot=2))
    await h.eventually(lambda: len(assigned(h)) == 1)
    waiting = next(t for t in h.tasks() if t.status.state == PENDING)
    await h.eventually(lambda: h.task(waiting.id).status.err != "")
    assert h.task(waiting.id).status.err == "no suitable node (insufficient cpu on 1 node)"

    winner = next(iter(assigned(h)))

    def fail(tx: Tx) -> None:
        t = tx.tasks.get(winner)
        assert t is not None
        t.status.state = types_pb2.TASK_STATE_FAILED
        tx.tasks.update(t)

    await h.store.update(fail)
    await h.eventually(lambda: h.task(waiting.id).status.state == ASSIGNED)
    assert h.task(waiting.id).node_id == "a"


async def test_scheduler_validates_preassigned_tasks(h: Harness) -> None:
    await h.create(node("ok"), node("drained", availability=DRAIN))
    await h.create(
        task("g-ok", "global", node_id="ok"), task("g-drained", "global", node_id="drained")
    )
    await h.eventually(lambda: h.task("g-drained").status.err != "")
    assert h.task("g-ok").status.state == ASSIGNED
    assert h.task("g-ok").node_id == "ok"
    drained = h.task("g-drained")
    assert drained.status.state == PENDING
    assert drained.status.err == "no suitable node (node drained on 1 node)"


async def test_scheduler_ignores_tasks_it_should_not_schedule(h: Harness) -> None:
    await h.create(node("a"))
    await h.create(
        task("new", "web", state=types_pb2.TASK_STATE_NEW),
        task("placed", "web", node_id="a", state=types_pb2.TASK_STATE_RUNNING),
        task("go", "web"),
    )
    await h.eventually(lambda: h.task("go").status.state == ASSIGNED)
    await h.settle()
    assert _show(h.task("new")) == ("new", "", types_pb2.TASK_STATE_NEW, "")
    assert h.task("placed").meta.version.index == 2  # created in the second transaction


async def test_scheduler_shuts_down_pending_tasks_no_longer_wanted(h: Harness) -> None:
    await h.create(node("a", cpus=1))
    await h.create(task("big", "web", cpus=2))
    await h.eventually(lambda: h.task("big").status.err != "")

    def scale_away(tx: Tx) -> None:
        t = tx.tasks.get("big")
        assert t is not None
        t.desired_state = types_pb2.TASK_STATE_SHUTDOWN
        tx.tasks.update(t)

    await h.store.update(scale_away)
    await h.eventually(lambda: h.task("big").status.state == types_pb2.TASK_STATE_SHUTDOWN)
    t = h.task("big")
    assert (t.node_id, t.status.message, t.status.err) == ("", CANCELLED_MESSAGE, "")
    version = t.meta.version.index
    await h.settle()
    assert h.task("big").meta.version.index == version


async def test_scheduler_batches_commits_into_one_pass() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.update(lambda tx: tx.nodes.create(node("a")))
    async with running_scheduler(store, clock) as h:
        await h.settle(2)
        assert h.scheduler.passes == 0  # nothing pending, nothing to do
        # Ten commits half a debounce apart: each restarts the quiet period, so one pass.
        for i in range(10):
            await h.create(task(f"t{i}", "web"))
            await h.clock.advance(DEBOUNCE / 2)
        assert assigned(h) == {}
        await h.eventually(lambda: len(assigned(h)) == 10)
        assert h.scheduler.passes == 1


async def test_scheduler_schedules_what_was_pending_before_it_started() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.update(lambda tx: (tx.nodes.create(node("a")), tx.tasks.create(task("t")))[0])
    async with running_scheduler(store, clock) as h:
        await h.eventually(lambda: h.task("t").status.state == ASSIGNED)


async def test_scheduler_reloads_after_losing_its_watch(h: Harness) -> None:
    await h.create(node("a"))
    await h.settle(2)
    # A restore fails every watcher (they missed changes): the scheduler must re-read.
    other = MemoryStore()
    await other.update(lambda tx: tx.nodes.create(node("b")))
    await other.update(lambda tx: tx.tasks.create(task("t", "web")))
    h.store.restore(other.snapshot(), version=h.store.version + 5)
    await h.eventually(lambda: h.task("t").status.state == ASSIGNED)
    assert h.task("t").node_id == "b"


class GatedProposer:
    """Commits with consecutive versions once its gate is open; can be told to fail."""

    def __init__(self) -> None:
        self.index = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def propose(self, actions: Sequence[store_pb2.StoreAction]) -> int:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.index += 1
        return self.index


async def test_scheduler_drops_a_decision_when_the_task_changed_meanwhile() -> None:
    clock = FakeClock()
    proposer = GatedProposer()
    store = MemoryStore(proposer, clock=clock)
    async with running_scheduler(store, clock) as h:
        await h.create(node("a", labels={"zone": "eu"}))
        await h.create(task("t", "web"))
        # A writer holds the store (its proposal is stuck) while the scheduler plans "t -> a".
        proposer.gate.clear()

        def move_to_us(tx: Tx) -> None:
            t = tx.tasks.get("t")
            assert t is not None
            t.spec.placement.constraints.append("node.labels.zone==us")
            tx.tasks.update(t)

        writer = asyncio.create_task(store.update(move_to_us))
        for _ in range(5):
            await asyncio.sleep(0)
        passes = h.scheduler.passes
        await h.clock.advance(0.06)
        assert h.scheduler.passes == passes + 1  # planned, now waiting for the store
        proposer.gate.set()
        await writer
        # The plan was made from the old task: it is not written; the next pass explains.
        reason = "no suitable node (constraint node.labels.zone==us unmet on 1 node)"
        await h.eventually(lambda: h.task("t").status.err == reason)
        assert (h.task("t").node_id, h.task("t").status.state) == ("", PENDING)


async def test_scheduler_retries_after_a_failed_write() -> None:
    clock = FakeClock()
    proposer = GatedProposer()
    store = MemoryStore(proposer, clock=clock)
    async with running_scheduler(store, clock) as h:
        await h.create(node("a"), task("t", "web"))
        proposer.fail = errors.Unavailable("no quorum")
        await h.settle(3)
        assert h.task("t").status.state == PENDING
        proposer.fail = None
        await h.eventually(lambda: h.task("t").status.state == ASSIGNED)
