"""Global orchestrator: one task per eligible node through joins, drain, down, pause, labels."""

from __future__ import annotations

from orchbuild import (
    DOWN_NODE,
    DRAIN,
    NONE,
    PAUSE,
    T0,
    Harness,
    S,
    node,
    restart_policy,
    service,
    task,
)

from swarmd.manager.orchestrator.global_ import GlobalReconciler, reconcile_global
from swarmd.manager.orchestrator.plan import CreateTask, SetDesiredState
from swarmd.manager.orchestrator.restart import RestartSupervisor
from swarmd.manager.orchestrator.update import ReplaceAllUpdater

RUNNING = S.TASK_STATE_RUNNING
FAILED = S.TASK_STATE_FAILED
SHUTDOWN = S.TASK_STATE_SHUTDOWN
REMOVE = S.TASK_STATE_REMOVE


def by_node(h: Harness) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in h.live():
        out[t.node_id] = out.get(t.node_id, 0) + 1
    return out


def started(*nodes, constraints=(), policy=None) -> Harness:
    h = Harness(GlobalReconciler())
    h.put(*nodes)
    h.put(service(replicas=None, constraints=constraints, restart=policy or restart_policy()))
    h.start()
    h.settle()
    return h


def test_global_pure_step_one_task_per_eligible_node():
    svc = service(replicas=None, constraints=["node.labels.zone==a"])
    nodes = [
        node("a1", labels={"zone": "a"}),
        node("a2", labels={"zone": "A"}),  # values compare case-insensitively
        node("b1", labels={"zone": "b"}),
        node("a3", labels={"zone": "a"}, availability=DRAIN),
        node("a4", labels={"zone": "a"}, state=DOWN_NODE),
        node("a5", labels={"zone": "a"}, availability=PAUSE),
    ]
    existing = [task("on-b1", svc, 0, "b1"), task("on-a5", svc, 0, "a5")]
    plan = reconcile_global(
        svc, nodes, existing, lambda t: True, ReplaceAllUpdater(RestartSupervisor()), T0
    )
    created = sorted(d.task.node_id for d in plan if isinstance(d, CreateTask))
    assert created == ["a1", "a2"]
    assert [d for d in plan if isinstance(d, SetDesiredState)] == [
        SetDesiredState("on-b1", SHUTDOWN)
    ]
    new = next(d.task for d in plan if isinstance(d, CreateTask))
    assert new.slot == 0
    assert new.annotations.name == f"web.{new.node_id}"


def test_global_creates_tasks_with_node_preset_and_follows_joins():
    h = started(node("n1"), node("n2"))
    assert by_node(h) == {"n1": 1, "n2": 1}
    h.put(node("n3"))
    h.settle()
    assert by_node(h) == {"n1": 1, "n2": 1, "n3": 1}
    assert all(t.status.state == S.TASK_STATE_PENDING for t in h.live())


def test_global_drain_and_down_shut_tasks_down_without_replacement():
    h = started(node("n1"), node("n2"), node("n3"))
    h.change(node("n1", availability=DRAIN))
    h.change(node("n2", state=DOWN_NODE))
    h.settle()
    assert by_node(h) == {"n3": 1}
    assert {t.desired_state for t in h.tasks() if t.node_id in ("n1", "n2")} == {SHUTDOWN}
    h.change(node("n1"))  # back to active: a fresh task
    h.settle()
    assert by_node(h) == {"n1": 1, "n3": 1}


def test_global_pause_keeps_tasks_but_takes_no_new_ones():
    h = started(node("n1"))
    h.change(node("n1", availability=PAUSE))
    h.put(node("n2", availability=PAUSE))
    h.settle()
    assert by_node(h) == {"n1": 1}
    (t,) = h.live()
    h.set_status(t.id, FAILED)  # a paused node gets no replacement either
    h.settle()
    assert by_node(h) == {}


def test_global_follows_node_label_and_service_constraint_changes():
    h = started(node("n1", labels={"gpu": "yes"}), node("n2"), constraints=["node.labels.gpu==yes"])
    assert by_node(h) == {"n1": 1}
    h.change(node("n2", labels={"gpu": "yes"}))
    h.change(node("n1"))
    h.settle()
    assert by_node(h) == {"n2": 1}
    svc = h.store.view(lambda tx: tx.services.get("svc1"))
    svc.spec.task.placement.constraints[:] = ["node.labels.gpu!=yes"]
    h.change(svc)
    h.settle()
    assert by_node(h) == {"n1": 1}


def test_global_failed_task_restarted_on_same_node_per_policy():
    h = started(node("n1"), node("n2"))
    t1 = next(t for t in h.live() if t.node_id == "n1")
    h.set_status(t1.id, FAILED)
    h.settle()
    assert h.get(t1.id).desired_state == SHUTDOWN
    assert by_node(h) == {"n1": 1, "n2": 1}
    new = next(t for t in h.live() if t.node_id == "n1")
    assert new.id != t1.id


def test_global_condition_none_leaves_node_without_task():
    h = started(node("n1"), policy=restart_policy(NONE))
    (t1,) = h.live()
    h.set_status(t1.id, S.TASK_STATE_COMPLETE)
    h.settle()
    assert h.live() == []
    h.put(node("n2"))  # a node event reconciles n2 only; n1 stays done
    h.settle()
    assert by_node(h) == {"n2": 1}


def test_global_spec_change_replaces_tasks():
    h = started(node("n1"), node("n2"))
    old = {t.id for t in h.live()}
    svc = h.store.view(lambda tx: tx.services.get("svc1"))
    svc.spec.task.container.image = "busybox:2"
    h.change(svc)
    h.settle()
    live = h.live()
    assert {t.node_id for t in live} == {"n1", "n2"}
    assert not old & {t.id for t in live}
    assert {t.spec.container.image for t in live} == {"busybox:2"}


def test_global_node_removal_deletes_its_tasks_and_service_removal_removes_all():
    h = started(node("n1"), node("n2"))
    h.write(lambda tx: tx.nodes.delete("n1"))
    h.settle()
    assert by_node(h) == {"n2": 1}
    assert all(t.node_id == "n2" for t in h.tasks())
    h.write(lambda tx: tx.services.delete("svc1"))
    h.settle()
    assert {t.desired_state for t in h.tasks()} == {REMOVE}
