"""Constraint enforcer: tasks whose node stopped matching are rejected, never shut down."""

from __future__ import annotations

from orchbuild import DRAIN, PAUSE, T0, Harness, S, node, service, task

from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.enforcer import (
    REJECT_ERR,
    ConstraintEnforcerCore,
    noncompliant_tasks,
)

RUNNING = S.TASK_STATE_RUNNING
REJECTED = S.TASK_STATE_REJECTED


def test_enforcer_pure_step_constraints_and_reservations():
    gpu = service("gpu", constraints=["node.labels.gpu==yes"])
    big = service("big")
    big.spec.task.resources.reservations.memory_bytes = 600
    n = node("n1", labels={"gpu": "no"})
    n.description.resources.memory_bytes = 1000
    on_node = [task("g", gpu, 1, "n1"), task("b1", big, 1, "n1"), task("b2", big, 2, "n1")]
    for i, t in enumerate(on_node):
        t.meta.created_at.CopyFrom(tasks.timestamp(T0 + i))
    services = {"gpu": gpu, "big": big}
    # The gpu task breaks its constraint; the second big task no longer fits next to the first.
    assert [t.id for t in noncompliant_tasks(n, on_node, services)] == ["g", "b2"]
    n.spec.annotations.labels["gpu"] = "yes"
    n.description.resources.memory_bytes = 0  # resources not reported: not checked
    assert noncompliant_tasks(n, on_node, services) == []
    for availability in (DRAIN, PAUSE):
        other = node("n1", labels={"gpu": "no"}, availability=availability)
        assert noncompliant_tasks(other, on_node, services) == []


def test_enforcer_rejects_running_task_when_node_label_changes():
    h = Harness(ConstraintEnforcerCore())
    svc = service(constraints=["node.labels.zone==a"])
    h.put(node("n1", labels={"zone": "a"}), svc)
    h.put(task("t1", svc, 1, "n1"), task("done", svc, 2, "n1", state=S.TASK_STATE_COMPLETE))
    h.start()
    assert h.settle() == []
    h.change(node("n1", labels={"zone": "b"}))
    h.settle()
    t1 = h.get("t1")
    assert t1.status.state == REJECTED
    assert t1.status.err == REJECT_ERR
    assert t1.desired_state == RUNNING  # the orchestrator decides what happens next
    assert h.get("done").status.state == S.TASK_STATE_COMPLETE
