"""Replicated orchestrator: slot reconcile tables, victim choice, restarts, drain, taskinit."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orchbuild import (
    DOWN_NODE,
    DRAIN,
    NONE,
    ON_FAILURE,
    T0,
    Harness,
    S,
    node,
    restart_policy,
    service,
    slots_of,
    task,
)

from swarmd.manager.orchestrator.plan import CreateTask, ReplaceTask, SetDesiredState, StartTask
from swarmd.manager.orchestrator.replicated import (
    ReplicatedReconciler,
    choose_victims,
    reconcile_service,
)
from swarmd.manager.orchestrator.restart import RestartSupervisor
from swarmd.manager.orchestrator.update import ReplaceAllUpdater

RUNNING = S.TASK_STATE_RUNNING
PENDING = S.TASK_STATE_PENDING
FAILED = S.TASK_STATE_FAILED
COMPLETE = S.TASK_STATE_COMPLETE
SHUTDOWN = S.TASK_STATE_SHUTDOWN
REMOVE = S.TASK_STATE_REMOVE
READY = S.TASK_STATE_READY


def reconcile(svc, tasks, should_restart=lambda t: True, updater=None):
    updater = updater or ReplaceAllUpdater(RestartSupervisor())
    return reconcile_service(svc, tasks, should_restart, updater, T0)


def created_slots(plan) -> list[int]:
    return sorted(d.task.slot for d in plan if isinstance(d, CreateTask))


def removed(plan) -> set[str]:
    return {d.task_id for d in plan if isinstance(d, SetDesiredState) and d.state == REMOVE}


# -- reconcile_service: scale up / down from various states ------------------------------


@pytest.mark.parametrize(
    ("replicas", "existing", "created"),
    [
        (3, [], [1, 2, 3]),
        (3, [1, 3], [2]),
        (5, [2, 4], [1, 3, 5]),
        (2, [1, 2], []),
        (1, [7], []),
    ],
)
def test_replicated_scale_up_fills_lowest_free_slots(replicas, existing, created):
    svc = service(replicas=replicas)
    tasks = [task(f"t{s}", svc, s, "n1") for s in existing]
    assert created_slots(reconcile(svc, tasks)) == created


def test_replicated_new_tasks_are_pending_with_name_and_spec():
    svc = service(replicas=1)
    plan = reconcile(svc, [])
    (new,) = [d.task for d in plan if isinstance(d, CreateTask)]
    assert new.annotations.name == "web.1"
    assert new.status.state == PENDING
    assert new.status.message == "pending task scheduling"
    assert new.desired_state == RUNNING
    assert new.node_id == ""
    assert new.spec == svc.spec.task


def test_replicated_scale_down_keeps_spread_even_across_nodes():
    svc = service(replicas=3)
    tasks = [
        task("a1", svc, 1, "A"),
        task("a2", svc, 2, "A"),
        task("a3", svc, 3, "A"),
        task("b4", svc, 4, "B"),
        task("c5", svc, 5, "C"),
    ]
    assert removed(reconcile(svc, tasks)) == {"a3", "a2"}


def test_replicated_victims_prefer_unassigned_then_not_running():
    svc = service()
    slots = {
        1: [task("a1", svc, 1, "A")],
        2: [task("a2", svc, 2, "A", state=S.TASK_STATE_PREPARING)],
        3: [task("b3", svc, 3, "B")],
        4: [task("b4", svc, 4, "B")],
        5: [task("p5", svc, 5, "", state=PENDING)],
    }
    assert choose_victims(slots, 1) == [5]
    # A and B tie: the task not running yet goes first, then B holds the most.
    assert choose_victims(slots, 2) == [5, 2]
    assert choose_victims(slots, 3) == [5, 2, 4]
    assert choose_victims(slots, 4) == [5, 2, 4, 3]


def test_replicated_scale_down_removes_slot_history_too():
    svc = service(replicas=1)
    tasks = [
        task("old2", svc, 2, "A", state=FAILED, desired=SHUTDOWN, at=T0 - 10),
        task("t2", svc, 2, "A"),
        task("t1", svc, 1, "B"),
    ]
    assert removed(reconcile(svc, tasks)) == {"t2", "old2"}


def test_replicated_slot_stopped_for_good_counts_as_filled():
    svc = service(replicas=3, restart=restart_policy(NONE))
    tasks = [
        task("t1", svc, 1, "A"),
        task("t2", svc, 2, "A"),
        task("t3", svc, 3, "A", state=FAILED, desired=SHUTDOWN),
    ]
    assert reconcile(svc, tasks, should_restart=lambda t: False) == []


def test_replicated_dead_slots_are_removed_or_reused():
    svc = service(replicas=2)
    # Slot 2 lost its task (shut down, replacement gone); slot 5 is a leftover.
    tasks = [
        task("t1", svc, 1, "A"),
        task("d2", svc, 2, "A", state=SHUTDOWN, desired=SHUTDOWN),
        task("d5", svc, 5, "A", state=SHUTDOWN, desired=SHUTDOWN),
    ]
    plan = reconcile(svc, tasks)
    assert created_slots(plan) == [2]
    assert removed(plan) == {"d5"}  # slot 2's history stays with the reused slot


def test_replicated_remove_desired_tasks_do_not_fill_slots():
    svc = service(replicas=2)
    tasks = [task("t1", svc, 1, "A"), task("r2", svc, 2, "A", desired=REMOVE)]
    assert created_slots(reconcile(svc, tasks)) == [2]


def test_replicated_spec_change_goes_to_updater_with_dirty_slots():
    svc = service(replicas=3)
    tasks = [task(f"t{s}", svc, s, "A") for s in (1, 2, 3)]
    calls = []

    class Recording:
        def update(self, service, slots, now, cluster, service_tasks=()):
            calls.append(sorted(t.id for slot in slots for t in slot))
            return []

    assert reconcile(svc, tasks, updater=Recording()) == []
    assert calls == []
    svc.spec.task.container.image = "busybox:2"
    tasks[0].spec.container.image = "busybox:2"  # slot 1 already runs the new spec
    reconcile(svc, tasks, updater=Recording())
    assert calls == [["t2", "t3"]]


def test_replicated_default_updater_replaces_dirty_tasks_stop_first():
    svc = service(replicas=2)
    tasks = [task("t1", svc, 1, "A"), task("t2", svc, 2, "B")]
    svc.spec.task.container.image = "busybox:2"
    supervisor = RestartSupervisor()
    plan = reconcile(svc, tasks, updater=ReplaceAllUpdater(supervisor))
    replaced = {d.old_task_id: d.new for d in plan if isinstance(d, ReplaceTask)}
    assert set(replaced) == {"t1", "t2"}
    for old_id, new in replaced.items():
        assert new.spec.container.image == "busybox:2"
        assert new.desired_state == READY  # started once the old task stopped
        assert new.slot == {"t1": 1, "t2": 2}[old_id]
    assert len(supervisor.delayed()) == 2


# -- the core against a store: restarts per policy ---------------------------------------


def started(policy=None, replicas=1, nodes=("n1",)):
    h = Harness(ReplicatedReconciler())
    h.put(*(node(n) for n in nodes))
    h.put(service(replicas=replicas, restart=policy or restart_policy()))
    h.start()
    h.settle()
    for i, t in enumerate(sorted(h.live(), key=lambda t: t.slot)):
        h.assign(t.id, nodes[i % len(nodes)])
    h.settle()
    return h


def test_replicated_failed_task_restarted_in_same_slot():
    h = started()
    (t1,) = h.live()
    h.set_status(t1.id, FAILED)
    h.settle()
    assert h.get(t1.id).desired_state == SHUTDOWN
    (new,) = h.live()
    assert new.slot == t1.slot
    assert new.id != t1.id
    assert new.desired_state == RUNNING  # no delay configured
    assert new.node_id == ""  # the scheduler picks a node again


@pytest.mark.parametrize(
    ("condition", "state", "restarted"),
    [
        (NONE, FAILED, False),
        (NONE, COMPLETE, False),
        (ON_FAILURE, COMPLETE, False),
        (ON_FAILURE, FAILED, True),
        (ON_FAILURE, S.TASK_STATE_REJECTED, True),
        (S.RestartPolicy.RESTART_CONDITION_ANY, COMPLETE, True),
    ],
)
def test_replicated_restart_condition(condition, state, restarted):
    h = started(restart_policy(condition))
    (t1,) = h.live()
    h.set_status(t1.id, state)
    h.settle()
    assert h.get(t1.id).desired_state == SHUTDOWN
    assert len(h.live()) == (1 if restarted else 0)
    assert len(h.tasks()) == (2 if restarted else 1)  # the slot is not refilled


def fail_current(h: Harness) -> None:
    (t,) = h.live()
    h.assign(t.id, "n1")
    h.settle()
    h.set_status(t.id, FAILED)
    h.settle()


def test_replicated_max_attempts_honoured():
    h = started(restart_policy(max_attempts=2))
    for _ in range(3):
        fail_current(h)
        h.now += 1
    assert h.live() == []
    assert len(h.tasks()) == 3  # the original and two restarts


def test_replicated_max_attempts_counted_within_window():
    h = started(restart_policy(max_attempts=1, window=10))
    fail_current(h)  # restart 1 at T0
    h.now = T0 + 5
    fail_current(h)  # within the window: no more attempts
    assert h.live() == []

    h = started(restart_policy(max_attempts=1, window=10))
    fail_current(h)
    h.now = T0 + 20
    fail_current(h)  # the earlier restart fell out of the window
    assert len(h.live()) == 1


def test_replicated_restart_delay_honoured():
    h = started(restart_policy(delay=5))
    (t1,) = h.live()
    h.set_status(t1.id, FAILED)
    h.settle()
    (new,) = h.live()
    assert new.desired_state == READY
    h.now = T0 + 4.9
    assert h.settle() == []
    h.now = T0 + 5
    assert h.settle() == [StartTask(new.id)]
    assert h.get(new.id).desired_state == RUNNING


def test_replicated_task_failing_during_its_delay_is_not_replaced_yet():
    h = started(restart_policy(delay=5))
    (t1,) = h.live()
    h.set_status(t1.id, FAILED)
    h.settle()
    (new,) = h.live()
    h.assign(new.id, "n1", S.TASK_STATE_REJECTED)  # e.g. the image is missing
    h.settle()
    assert [t.id for t in h.live()] == [new.id]
    h.now = T0 + 5
    h.settle()  # started, seen failed, replaced (with a new delay)
    assert h.get(new.id).desired_state == SHUTDOWN
    (third,) = h.live()
    assert third.id not in (t1.id, new.id)
    assert third.desired_state == READY


def test_replicated_replacement_waits_for_old_task_on_node_down_not():
    h = started(restart_policy(delay=0), nodes=("n1", "n2"))
    (t1,) = h.live()
    n1 = node("n1", state=DOWN_NODE)
    h.change(n1)
    h.settle()
    assert h.get(t1.id).desired_state == SHUTDOWN
    (new,) = h.live()
    assert new.desired_state == RUNNING  # nothing to wait for on a DOWN node


def test_replicated_drained_node_tasks_rescheduled_whatever_the_policy():
    h = started(restart_policy(NONE, delay=5, max_attempts=1), replicas=2, nodes=("n1", "n2"))
    on_n1 = [t for t in h.live() if t.node_id == "n1"]
    h.change(node("n1", availability=DRAIN))
    h.settle()
    assert all(h.get(t.id).desired_state == SHUTDOWN for t in on_n1)
    live = h.live()
    assert len(live) == 2
    new = [t for t in live if t.node_id == ""]
    assert len(new) == len(on_n1) == 1
    # No delay on a drained node, but the agent must stop the old task first.
    assert new[0].desired_state == READY
    h.set_status(on_n1[0].id, SHUTDOWN)
    assert h.settle() == [StartTask(new[0].id)]


def test_replicated_rescheduling_is_not_counted_as_a_failure():
    h = started(restart_policy(max_attempts=1), nodes=("n1", "n2"))
    (_t1,) = h.live()
    h.change(node("n1", state=DOWN_NODE))
    h.settle()
    (t2,) = h.live()
    h.assign(t2.id, "n2")
    h.settle()
    h.set_status(t2.id, FAILED)  # the first real failure: one attempt left
    h.settle()
    assert len(h.live()) == 1


def test_replicated_service_removal_removes_tasks():
    h = started(replicas=3)
    h.write(lambda tx: tx.services.delete("svc1"))
    h.settle()
    assert {t.desired_state for t in h.tasks()} == {REMOVE}


# -- start-up pass (taskinit) -------------------------------------------------------------


def test_replicated_taskinit_fixes_what_the_previous_leader_left():
    h = Harness(ReplicatedReconciler())
    svc = service(replicas=2, restart=restart_policy(delay=10))
    gone = service("gone", "old", replicas=1)
    h.put(node("n1"), svc)
    h.put(
        task("failed", svc, 1, "n1", state=FAILED),  # failed, never handled
        task("waiting", svc, 2, "", state=PENDING, desired=READY, at=T0 - 4),  # in its delay
        task("orphan", gone, 1, "n1"),  # its service was deleted
    )
    h.start()
    assert h.get("orphan").desired_state == REMOVE
    h.settle()
    assert h.get("failed").desired_state == SHUTDOWN
    assert slots_of(h.live()) == [1, 2]
    h.now = T0 + 6  # 4 s of the 10 s delay had passed before the leader changed
    h.settle()
    assert h.get("waiting").desired_state == RUNNING


# -- properties ---------------------------------------------------------------------------

placements = st.lists(st.sampled_from(["A", "B", "C", "D", ""]), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(placements, st.integers(min_value=0, max_value=30))
def test_replicated_victims_leave_the_most_even_spread_possible(nodes, keep):
    svc = service()
    slots = {i + 1: [task(f"t{i}", svc, i + 1, n)] for i, n in enumerate(nodes)}
    keep = min(keep, len(slots))
    victims = choose_victims(slots, len(slots) - keep)
    assert len(set(victims)) == len(slots) - keep
    left = [slots[s][0].node_id for s in slots if s not in victims]
    unplaced_left = left.count("")
    counts = Counter(n for n in left if n)
    # Unassigned tasks go first, so some remain only when every placed one was kept.
    assert unplaced_left == 0 or len(left) - unplaced_left == sum(1 for n in nodes if n)
    placed = Counter(n for n in nodes if n)
    target = len(left) - unplaced_left
    # The lowest possible maximum per node for `target` tasks given what each node had.
    best = next(m for m in range(31) if sum(min(c, m) for c in placed.values()) >= target)
    assert max(counts.values(), default=0) == best


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=12), max_size=12, unique=True),
    st.integers(min_value=0, max_value=12),
)
def test_replicated_reconcile_converges_to_the_replica_count(existing, replicas):
    svc = service(replicas=replicas)
    tasks = [task(f"t{s}", svc, s, "A") for s in existing]
    plan = reconcile(svc, tasks)
    live = (len(existing) - len(removed(plan))) + len(created_slots(plan))
    assert live == replicas
    # Nothing left to do once the plan is applied.
    kept = [t for t in tasks if t.id not in removed(plan)]
    kept += [d.task for d in plan if isinstance(d, CreateTask)]
    assert reconcile(svc, kept) == []
