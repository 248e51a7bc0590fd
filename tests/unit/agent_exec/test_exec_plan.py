"""plan_step(): the pure decision table of the agent's one-step state machine."""

from __future__ import annotations

import pytest

from swarmd.agent.exec import Action, is_transient, plan_step
from swarmd.api import types_pb2 as t

S = t.TaskState
ALL_STATES = list(S.values())
TERMINAL = [
    t.TASK_STATE_COMPLETE,
    t.TASK_STATE_SHUTDOWN,
    t.TASK_STATE_FAILED,
    t.TASK_STATE_REJECTED,
    t.TASK_STATE_ORPHANED,
]

# (desired, observed) -> (action, target, state on a fatal error), states by short name
TABLE = [
    # Accepting: from anything the manager hands over.
    ("RUNNING", "NEW", Action.NONE, "ACCEPTED", "REJECTED"),
    ("RUNNING", "PENDING", Action.NONE, "ACCEPTED", "REJECTED"),
    ("RUNNING", "ASSIGNED", Action.NONE, "ACCEPTED", "REJECTED"),
    ("RUNNING", "ACCEPTED", Action.NONE, "PREPARING", "REJECTED"),
    ("RUNNING", "PREPARING", Action.PREPARE, "READY", "REJECTED"),
    ("RUNNING", "READY", Action.NONE, "STARTING", "REJECTED"),
    ("RUNNING", "STARTING", Action.START, "RUNNING", "FAILED"),
    ("RUNNING", "RUNNING", Action.WAIT, "COMPLETE", "FAILED"),
    # Desired READY stages the task: prepared, not started.
    ("READY", "ASSIGNED", Action.NONE, "ACCEPTED", "REJECTED"),
    ("READY", "PREPARING", Action.PREPARE, "READY", "REJECTED"),
    ("READY", "READY", Action.NOOP, "READY", "READY"),
    # Jobs: desired COMPLETE runs to completion like RUNNING.
    ("COMPLETE", "READY", Action.NONE, "STARTING", "REJECTED"),
    ("COMPLETE", "RUNNING", Action.WAIT, "COMPLETE", "FAILED"),
    # Shutdown from every live state, REMOVE like SHUTDOWN.
    ("SHUTDOWN", "ASSIGNED", Action.SHUTDOWN, "SHUTDOWN", "REJECTED"),
    ("SHUTDOWN", "READY", Action.SHUTDOWN, "SHUTDOWN", "REJECTED"),
    ("SHUTDOWN", "STARTING", Action.SHUTDOWN, "SHUTDOWN", "FAILED"),
    ("SHUTDOWN", "RUNNING", Action.SHUTDOWN, "SHUTDOWN", "FAILED"),
    ("REMOVE", "RUNNING", Action.SHUTDOWN, "SHUTDOWN", "FAILED"),
    ("REMOVE", "NEW", Action.SHUTDOWN, "SHUTDOWN", "REJECTED"),
    # Observed past desired, or a desired state that is not runnable: nothing to do.
    ("READY", "RUNNING", Action.NOOP, "RUNNING", "RUNNING"),
    ("ASSIGNED", "ASSIGNED", Action.NOOP, "ASSIGNED", "ASSIGNED"),
]


@pytest.mark.parametrize(("desired", "observed", "action", "target", "fatal"), TABLE)
def test_plan_step_table(desired, observed, action, target, fatal):
    step = plan_step(S.Value(f"TASK_STATE_{desired}"), S.Value(f"TASK_STATE_{observed}"))
    assert (step.action, S.Name(step.target)) == (action, f"TASK_STATE_{target}")
    assert S.Name(step.on_fatal) == f"TASK_STATE_{fatal}"


@pytest.mark.parametrize("desired", ALL_STATES)
@pytest.mark.parametrize("observed", TERMINAL)
def test_plan_step_terminal_states_are_final(desired, observed):
    step = plan_step(desired, observed)
    assert step.action is Action.NOOP
    assert step.target == observed
    assert S.Name(observed).removeprefix("TASK_STATE_") in step.message


@pytest.mark.parametrize("desired", ALL_STATES)
@pytest.mark.parametrize("observed", ALL_STATES)
def test_plan_step_never_moves_backwards(desired, observed):
    step = plan_step(desired, observed)
    if step.action is Action.NOOP:
        assert step.target == observed
    else:
        assert step.target > observed
        assert step.on_fatal > observed
        assert step.on_fatal in (t.TASK_STATE_REJECTED, t.TASK_STATE_FAILED)


def test_plan_step_noop_messages_say_why():
    assert (
        "waiting for desired state running"
        in plan_step(t.TASK_STATE_READY, t.TASK_STATE_READY).message
    )
    assert "past desired READY" in plan_step(t.TASK_STATE_READY, t.TASK_STATE_RUNNING).message


def test_plan_step_walks_a_task_to_completion():
    """Applying the plan repeatedly visits every state of the happy path, in order."""
    state = t.TASK_STATE_NEW
    seen = []
    while (step := plan_step(t.TASK_STATE_RUNNING, state)).action is not Action.NOOP:
        state = step.target
        seen.append(S.Name(state).removeprefix("TASK_STATE_"))
    assert seen == ["ACCEPTED", "PREPARING", "READY", "STARTING", "RUNNING", "COMPLETE"]


@pytest.mark.parametrize(
    ("desired", "observed", "transient"),
    [
        ("RUNNING", "ACCEPTED", True),
        ("RUNNING", "READY", True),
        ("READY", "READY", False),  # the pause point is reported
        ("READY", "ACCEPTED", True),
        ("RUNNING", "PREPARING", False),
        ("RUNNING", "STARTING", False),
        ("RUNNING", "RUNNING", False),
        ("SHUTDOWN", "ACCEPTED", False),  # the next step stops it: a controller call
        ("RUNNING", "COMPLETE", False),
    ],
)
def test_only_states_left_without_a_controller_call_are_transient(desired, observed, transient):
    assert is_transient(S.Value(f"TASK_STATE_{desired}"), S.Value(f"TASK_STATE_{observed}")) is (
        transient
    )
