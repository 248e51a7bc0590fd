"""Builders and a synchronous harness shared by the orchestrator tests.

`Harness` drives a core (Reconciler) against a real MemoryStore without a proposer, whose
writes never suspend: events are fed to the core and plans committed synchronously, so a test
reads like a script of store changes and expected decisions, with `now` chosen by the test.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from google.protobuf import duration_pb2

from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.manager.orchestrator.commit import apply_decision
from swarmd.manager.orchestrator.driver import Reconciler
from swarmd.manager.orchestrator.plan import Decision
from swarmd.manager.orchestrator.task import timestamp
from swarmd.manager.store import Batch, Event, MemoryStore, Tx

T = TypeVar("T")

S = types_pb2
READY_NODE = objects_pb2.NodeStatus.STATE_READY
DOWN_NODE = objects_pb2.NodeStatus.STATE_DOWN
ACTIVE = specs_pb2.NodeSpec.AVAILABILITY_ACTIVE
PAUSE = specs_pb2.NodeSpec.AVAILABILITY_PAUSE
DRAIN = specs_pb2.NodeSpec.AVAILABILITY_DRAIN
ANY = types_pb2.RestartPolicy.RESTART_CONDITION_ANY
NONE = types_pb2.RestartPolicy.RESTART_CONDITION_NONE
ON_FAILURE = types_pb2.RestartPolicy.RESTART_CONDITION_ON_FAILURE

T0 = 1_700_000_000.0


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (store writes without a proposer)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("coroutine suspended")


def restart_policy(
    condition: int = ANY, delay: float = 0.0, max_attempts: int = 0, window: float = 0.0
) -> types_pb2.RestartPolicy:
    p = types_pb2.RestartPolicy(max_attempts=max_attempts)
    p.condition = condition  # type: ignore[assignment]
    p.delay.CopyFrom(duration_pb2.Duration(seconds=int(delay), nanos=int(delay % 1 * 1e9)))
    p.window.CopyFrom(duration_pb2.Duration(seconds=int(window)))
    return p


def service(
    sid: str = "svc1",
    name: str = "web",
    replicas: int | None = 3,
    *,
    restart: types_pb2.RestartPolicy | None = None,
    constraints: Iterable[str] = (),
    image: str = "busybox",
) -> objects_pb2.Service:
    """A replicated service (replicas None: a global one); restart delay 0 unless given."""
    svc = objects_pb2.Service(id=sid, revision=1)
    svc.spec.annotations.name = name
    svc.spec.task.container.image = image
    svc.spec.task.restart.CopyFrom(restart or restart_policy())
    svc.spec.task.placement.constraints.extend(constraints)
    if replicas is None:
        getattr(svc.spec, "global").SetInParent()  # `global` is a Python keyword
    else:
        svc.spec.replicated.replicas = replicas
    return svc


def node(
    nid: str,
    *,
    state: int = READY_NODE,
    availability: int = ACTIVE,
    labels: dict[str, str] | None = None,
) -> objects_pb2.Node:
    n = objects_pb2.Node(id=nid)
    n.status.state = state  # type: ignore[assignment]
    n.spec.availability = availability  # type: ignore[assignment]
    n.description.hostname = f"host-{nid}"
    n.spec.annotations.labels.update(labels or {})
    return n


def task(
    tid: str,
    svc: objects_pb2.Service,
    slot: int = 0,
    node_id: str = "",
    *,
    state: int = S.TASK_STATE_RUNNING,
    desired: int = S.TASK_STATE_RUNNING,
    at: float = T0,
) -> objects_pb2.Task:
    """A task of svc in the given slot (or on node_id), its spec the service's current one."""
    t = objects_pb2.Task(id=tid, service_id=svc.id, slot=slot, node_id=node_id)
    t.spec.CopyFrom(svc.spec.task)
    t.spec_version.CopyFrom(svc.meta.version)
    t.status.state = state  # type: ignore[assignment]
    t.status.timestamp.CopyFrom(timestamp(at))
    t.desired_state = desired  # type: ignore[assignment]
    return t


class Harness:
    """A core plus a store; events reach the core only through `sync()`."""

    def __init__(self, core: Reconciler, now: float = T0) -> None:
        self.core = core
        self.store = MemoryStore()
        self.sub = self.store.watch(core.kinds)
        self.now = now

    def write(self, fn: Any) -> Any:
        """Run a store transaction now (and feed its events to the core)."""
        result = run_now(self.store.update(fn))
        self.sync()
        return result

    def put(self, *objs: Any) -> None:
        """Create objects of any kind."""

        def fn(tx: Tx) -> None:
            for obj in objs:
                getattr(tx, _table(obj)).create(obj)

        self.write(fn)

    def change(self, obj: Any) -> None:
        """Replace an object (read at its current version first)."""

        def fn(tx: Tx) -> None:
            table = getattr(tx, _table(obj))
            cur = table.get(obj.id)
            obj.meta.version.index = cur.meta.version.index
            table.update(obj)

        self.write(fn)

    def sync(self) -> None:
        while self.sub.pending():
            item = run_now(self.sub.__anext__())
            if isinstance(item, Event):
                self.core.handle(item, self.now)

    def start(self) -> list[Decision]:
        plan = self.store.view(lambda tx: self.core.start(tx, self.now))
        self.commit(plan)
        return plan

    def step(self) -> list[Decision]:
        """One plan, if due at `now`, committed; [] when nothing is due."""
        wake = self.core.next_wakeup()
        if wake is None or wake > self.now:
            return []
        plan = self.store.view(lambda tx: self.core.plan(tx, self.now))
        self.commit(plan)
        return plan

    def settle(self, limit: int = 10) -> list[Decision]:
        """Plan until nothing is due at `now`; all decisions made."""
        out: list[Decision] = []
        for _ in range(limit):
            plan = self.step()
            if not plan and (self.core.next_wakeup() or float("inf")) > self.now:
                return out
            out.extend(plan)
        raise AssertionError(f"core did not settle: {out}")

    def commit(self, plan: list[Decision]) -> None:
        def fn(b: Batch) -> None:
            for d in plan:
                b.update(lambda tx, d=d: apply_decision(tx, d))

        run_now(self.store.batch(fn))
        self.sync()

    def tasks(self, svc_id: str = "svc1") -> list[objects_pb2.Task]:
        return self.store.view(lambda tx: tx.tasks.find_by_service(svc_id))

    def live(self, svc_id: str = "svc1") -> list[objects_pb2.Task]:
        return [t for t in self.tasks(svc_id) if t.desired_state <= S.TASK_STATE_RUNNING]

    def get(self, tid: str) -> objects_pb2.Task:
        t = self.store.view(lambda tx: tx.tasks.get(tid))
        assert t is not None
        return t

    def set_status(self, tid: str, state: int, at: float | None = None) -> None:
        t = self.get(tid)
        t.status.state = state  # type: ignore[assignment]
        t.status.timestamp.CopyFrom(timestamp(self.now if at is None else at))
        self.change(t)

    def assign(self, tid: str, node_id: str, state: int = S.TASK_STATE_RUNNING) -> None:
        t = self.get(tid)
        t.node_id = node_id
        t.status.state = state  # type: ignore[assignment]
        self.change(t)


def _table(obj: Any) -> str:
    return {
        objects_pb2.Service: "services",
        objects_pb2.Task: "tasks",
        objects_pb2.Node: "nodes",
        objects_pb2.Cluster: "clusters",
    }[type(obj)]


def slots_of(tasks: Iterable[objects_pb2.Task]) -> list[int]:
    return sorted(t.slot for t in tasks)
