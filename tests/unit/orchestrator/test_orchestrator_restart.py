"""Restart supervisor and task helpers: policy table, history, delayed starts; new_task."""

from __future__ import annotations

import pytest
from orchbuild import ANY, DRAIN, NONE, ON_FAILURE, T0, S, node, restart_policy, service, task

from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.plan import ReplaceTask, StartTask
from swarmd.manager.orchestrator.restart import RestartSupervisor

FAILED = S.TASK_STATE_FAILED
COMPLETE = S.TASK_STATE_COMPLETE
RUNNING = S.TASK_STATE_RUNNING
READY = S.TASK_STATE_READY


@pytest.mark.parametrize(
    ("condition", "state", "expected"),
    [
        (ANY, FAILED, True),
        (ANY, COMPLETE, True),
        (ANY, S.TASK_STATE_SHUTDOWN, True),
        (ON_FAILURE, FAILED, True),
        (ON_FAILURE, S.TASK_STATE_REJECTED, True),
        (ON_FAILURE, COMPLETE, False),
        (NONE, FAILED, False),
        (NONE, COMPLETE, False),
    ],
)
def test_restart_condition_table(condition, state, expected):
    svc = service(restart=restart_policy(condition))
    assert RestartSupervisor().should_restart(task("t", svc, 1, state=state), svc) is expected


def test_restart_max_attempts_counts_per_slot_and_resets_on_new_spec():
    svc = service(restart=restart_policy(max_attempts=2))
    sup = RestartSupervisor()
    for i in range(2):
        t = task(f"t{i}", svc, 1, "n1", state=FAILED, at=T0 + i)
        assert sup.should_restart(t, svc)
        assert len(sup.restart(t, svc, node("n1"), T0 + i)) == 1
    assert not sup.should_restart(task("t9", svc, 1, state=FAILED, at=T0 + 3), svc)
    assert sup.should_restart(task("o", svc, 2, state=FAILED, at=T0 + 3), svc)  # other slot
    svc.meta.version.index = 7  # a new spec version: failures start over
    assert sup.should_restart(task("t10", svc, 1, state=FAILED, at=T0 + 4), svc)


def test_restart_window_only_counts_recent_restarts_before_the_failure():
    svc = service(restart=restart_policy(max_attempts=1, window=30))
    sup = RestartSupervisor()
    sup.restart(task("t0", svc, 1, state=FAILED, at=T0), svc, None, T0)
    assert not sup.should_restart(task("t1", svc, 1, state=FAILED, at=T0 + 29), svc)
    assert sup.should_restart(task("t1", svc, 1, state=FAILED, at=T0 + 31), svc)
    # A restart made after the task failed does not count against it.
    sup = RestartSupervisor()
    sup.restart(task("t0", svc, 1, state=FAILED, at=T0), svc, None, T0 + 10)
    assert sup.should_restart(task("t1", svc, 1, state=FAILED, at=T0 + 5), svc)


def test_restart_history_rebuilt_from_stored_tasks():
    svc = service(restart=restart_policy(max_attempts=2))
    slot = []
    for i in range(3):
        t = task(f"t{i}", svc, 1, state=FAILED, at=T0 + i)
        t.meta.created_at.CopyFrom(tasks.timestamp(T0 + i))
        slot.append(t)
    sup = RestartSupervisor()
    sup.rebuild_history(svc, slot)  # t1 and t2 were restarts
    assert not sup.should_restart(slot[-1], svc)


def test_restart_delayed_start_waits_for_delay_and_old_task_or_timeout():
    svc = service(restart=restart_policy(delay=2))
    sup = RestartSupervisor(old_task_timeout=60)
    old = task("old", svc, 1, "n1", state=RUNNING)
    sup.delay_start("new", old, 2, T0)
    assert sup.next_deadline() == T0 + 60
    assert sup.due(T0 + 2) == []  # delay over, old task still running
    sup.observe_task(task("old", svc, 1, "n1", state=S.TASK_STATE_SHUTDOWN))
    assert sup.next_deadline() == T0 + 2
    assert sup.due(T0 + 2) == [StartTask("new")]
    assert sup.next_deadline() is None

    sup.delay_start("new2", old, 0, T0)
    assert sup.due(T0 + 59) == []
    assert sup.due(T0 + 60) == [StartTask("new2")]  # gave up waiting

    sup.delay_start("new3", old, 0, T0)
    sup.observe_node("n1", node("n1"))  # still up: keep waiting
    assert sup.due(T0 + 1) == []
    sup.observe_node("n1", None)  # the node left: nothing runs there any more
    assert sup.due(T0 + 1) == [StartTask("new3")]


def test_restart_replacement_on_drained_node_has_no_delay():
    svc = service(restart=restart_policy(delay=5))
    sup = RestartSupervisor()
    t = task("t", svc, 3, "n1", state=RUNNING)
    (decision,) = sup.restart(t, svc, node("n1", availability=DRAIN), T0)
    assert isinstance(decision, ReplaceTask)
    assert decision.new is not None
    assert decision.new.slot == 3
    assert decision.new.desired_state == READY
    (pending,) = sup.delayed()
    assert pending.ready_at == T0
    assert pending.waiting


def test_restart_ignores_tasks_not_meant_to_run_or_still_fine():
    svc = service()
    sup = RestartSupervisor()
    assert (
        sup.restart(
            task("t", svc, 1, "n1", state=FAILED, desired=S.TASK_STATE_SHUTDOWN), svc, None, T0
        )
        == []
    )
    assert sup.restart(task("t", svc, 1, "n1"), svc, node("n1"), T0) == []


def test_new_task_fields():
    svc = service("s9", "api", replicas=2)
    svc.meta.version.index = 12
    svc.revision = 3
    t = tasks.new_task(svc, 2, "", T0)
    assert (t.service_id, t.slot, t.node_id) == ("s9", 2, "")
    assert t.annotations.name == "api.2"
    assert t.service_annotations.name == "api"
    assert t.spec == svc.spec.task
    assert t.spec_version.index == 12
    assert t.service_revision == 3
    assert t.desired_state == RUNNING
    assert t.status.state == S.TASK_STATE_PENDING
    assert tasks.seconds(t.status.timestamp) == pytest.approx(T0)
    g = tasks.new_task(service("g", "agent", replicas=None), 0, "node7", T0)
    assert g.annotations.name == "agent.node7"
    assert g.node_id == "node7"
    assert g.slot == 0
    assert tasks.new_task(svc, 1, "", T0).id != t.id
