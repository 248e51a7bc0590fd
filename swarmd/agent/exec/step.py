"""One step of a task's life on the agent: the pure plan_step() and the async do() that runs it.

The agent's task manager calls `do(task, controller)` in a loop: each call advances the task by
exactly one state (or raises `TaskNoop`/`TaskRetry`) and returns the new TaskStatus, which the
caller persists and reports before calling again. Retries, backoff and reporting are the
caller's, as in SwarmKit's `exec.Do` (`agent/exec/controller.go`).

The decision is `plan_step(desired, observed) -> Step`, a pure function (table-tested):

    observed               desired < SHUTDOWN                      desired >= SHUTDOWN
    NEW/PENDING/ASSIGNED   -> ACCEPTED                             -> SHUTDOWN (shutdown())
    ACCEPTED               -> PREPARING                            -> SHUTDOWN (shutdown())
    PREPARING              prepare() -> READY                      -> SHUTDOWN (shutdown())
    READY                  desired > READY: -> STARTING, else noop -> SHUTDOWN (shutdown())
    STARTING               start() -> RUNNING                      -> SHUTDOWN (shutdown())
    RUNNING                wait() -> COMPLETE                      -> SHUTDOWN (shutdown())
    COMPLETE and later     noop (terminal)                         noop (terminal)

READY is the pause point: a task staged with desired READY is prepared but not started.
Observed past desired (or a desired state below READY) is a noop. Desired REMOVE behaves like
SHUTDOWN here: REMOVE is never an observed state, and removing the container is the caller's
job (`controller.remove()`) once the task leaves the node's assignments.

A controller error that `is_temporary()` keeps the state (TaskRetry). Any other error is fatal:
REJECTED while observed < STARTING, FAILED from STARTING on, with `err` and `message` set to the
error text. The state never moves backwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

import structlog

from swarmd.agent.exec.controller import Controller
from swarmd.agent.exec.errors import (
    ExitError,
    TaskNoop,
    TaskPrepared,
    TaskRetry,
    TaskStarted,
    is_temporary,
    state_name,
)
from swarmd.agent.exec.executor import Executor
from swarmd.api import objects_pb2, types_pb2
from swarmd.clock import Clock, SystemClock

_log = structlog.get_logger(component="exec")

TaskState: TypeAlias = types_pb2.TaskState.ValueType

NEW = types_pb2.TASK_STATE_NEW
ASSIGNED = types_pb2.TASK_STATE_ASSIGNED
ACCEPTED = types_pb2.TASK_STATE_ACCEPTED
PREPARING = types_pb2.TASK_STATE_PREPARING
READY = types_pb2.TASK_STATE_READY
STARTING = types_pb2.TASK_STATE_STARTING
RUNNING = types_pb2.TASK_STATE_RUNNING
COMPLETE = types_pb2.TASK_STATE_COMPLETE
SHUTDOWN = types_pb2.TASK_STATE_SHUTDOWN
FAILED = types_pb2.TASK_STATE_FAILED
REJECTED = types_pb2.TASK_STATE_REJECTED


class Action(enum.Enum):
    """What a step asks of the controller before moving to its target state."""

    NOOP = "noop"  # nothing to do: do() raises TaskNoop
    NONE = "none"  # a bookkeeping transition, no controller call
    PREPARE = "prepare"
    START = "start"
    WAIT = "wait"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class Step:
    """One planned transition: call `action`, then move to `target` with `message`.

    `on_fatal` is the state a fatal controller error leads to instead. For a NOOP step,
    `target` is the unchanged observed state and `message` says why nothing happens.
    """

    action: Action
    target: TaskState
    message: str
    on_fatal: TaskState


def fatal_state(observed: TaskState) -> TaskState:
    """REJECTED for a task that never started, FAILED for one that did."""
    return REJECTED if observed < STARTING else FAILED


def plan_step(desired: TaskState, observed: TaskState) -> Step:
    """The next step for a task in `observed` state whose manager wants `desired`. Pure."""

    def noop(why: str) -> Step:
        return Step(Action.NOOP, observed, why, observed)

    def to(action: Action, target: TaskState, message: str) -> Step:
        return Step(action, target, message, fatal_state(observed))

    if observed >= COMPLETE:
        return noop(f"task is {state_name(observed)}")
    if desired >= SHUTDOWN:
        return to(Action.SHUTDOWN, SHUTDOWN, "shutdown")
    if desired < READY:
        return noop(f"desired state {state_name(desired)} is not runnable")
    if observed > desired:
        return noop(f"state {state_name(observed)} is past desired {state_name(desired)}")
    if observed <= ASSIGNED:
        return to(Action.NONE, ACCEPTED, "accepted")
    if observed == ACCEPTED:
        return to(Action.NONE, PREPARING, "preparing")
    if observed == PREPARING:
        return to(Action.PREPARE, READY, "prepared")
    if observed == READY:
        if desired <= READY:
            return noop("ready; waiting for desired state running")
        return to(Action.NONE, STARTING, "starting")
    if observed == STARTING:
        return to(Action.START, RUNNING, "started")
    if observed == RUNNING:
        return to(Action.WAIT, COMPLETE, "finished")
    return noop(f"unknown state {state_name(observed)}")


def is_transient(desired: TaskState, observed: TaskState) -> bool:
    """The next step leaves `observed` at once, without a controller call. Pure.

    ACCEPTED (on to PREPARING) and READY when the task is to run (on to STARTING). The task
    manager neither stores nor reports such a state: the next status supersedes it within
    milliseconds, and each report costs the manager a store write (benchmarks.md, "Workload
    path"). READY as the pause point (desired READY) is not transient.
    """
    return plan_step(desired, observed).action is Action.NONE


async def _run_action(action: Action, controller: Controller) -> None:
    try:
        if action is Action.PREPARE:
            await controller.prepare()
        elif action is Action.START:
            await controller.start()
        elif action is Action.WAIT:
            await controller.wait()
        elif action is Action.SHUTDOWN:
            await controller.shutdown()
    except (TaskPrepared, TaskStarted):
        pass  # idempotency markers: the work was already done


def _stamp(status: types_pb2.TaskStatus, clock: Clock) -> None:
    status.timestamp.FromNanoseconds(int(clock.now() * 1_000_000_000))


async def _attach_runtime(
    status: types_pb2.TaskStatus, controller: Controller, err: BaseException | None
) -> None:
    try:
        runtime = await controller.observe()
    except Exception as obs_err:  # noqa: BLE001 - the status is worth more than its details
        _log.warning("cannot observe task runtime", error=str(obs_err))
    else:
        if runtime.container is not None:
            status.container.CopyFrom(runtime.container)
        if runtime.ports:
            status.port_status.CopyFrom(types_pb2.PortStatus(ports=list(runtime.ports)))
        status.health = runtime.health
    if isinstance(err, ExitError):
        status.container.exit_code = err.exit_code


async def do(
    task: objects_pb2.Task, controller: Controller, *, clock: Clock | None = None
) -> types_pb2.TaskStatus:
    """Advance `task` by one step with `controller`; return its new status (a new message).

    `task` is not modified. For a RUNNING task this blocks in `controller.wait()` until the
    process exits; to act on a new desired state meanwhile, cancel the call and call do()
    again with the updated task (the cancelled step leaves the state unchanged).

    Raises:
        TaskNoop: nothing to do until the desired state changes.
        TaskRetry: a temporary controller error; `err.status` records it in the same state.
        asyncio.CancelledError: propagated as always.
    """
    clock = clock or SystemClock()
    observed = task.status.state
    step = plan_step(task.desired_state, observed)
    if step.action is Action.NOOP:
        raise TaskNoop(task.id, observed)
    status = types_pb2.TaskStatus()
    status.CopyFrom(task.status)
    failure: BaseException | None = None
    try:
        await _run_action(step.action, controller)
    # The one place controller failures become task statuses, whatever their type: a
    # controller bug must fail its task, not the agent.
    except Exception as err:
        if is_temporary(err):
            status.err = str(err)
            raise TaskRetry(status, err) from err
        failure = err
    if failure is None:
        status.state = step.target
        status.message = step.message
        status.err = ""
    else:
        status.state = step.on_fatal
        status.message = str(failure)
        status.err = str(failure)
    if not status.state > observed:
        raise AssertionError(f"task {task.id}: step would move state backwards")
    _stamp(status, clock)
    if status.state >= STARTING and status.state != REJECTED:
        await _attach_runtime(status, controller, failure)
    _log.info(
        "task transition",
        task_id=task.id,
        old=state_name(observed),
        new=state_name(status.state),
        message=status.message,
    )
    return status


def resolve(
    task: objects_pb2.Task, executor: Executor, *, clock: Clock | None = None
) -> tuple[Controller | None, types_pb2.TaskStatus]:
    """Make the controller for `task` and the status that goes with it (SwarmKit exec.Resolve).

    On success a task at or before ASSIGNED is ACCEPTED. When the executor refuses the task,
    the controller is None and the status is REJECTED (FAILED if the task had started) with
    the reason; a task already terminal keeps its status.
    """
    clock = clock or SystemClock()
    status = types_pb2.TaskStatus()
    status.CopyFrom(task.status)
    try:
        controller = executor.controller(task)
    except Exception as err:  # noqa: BLE001 - any refusal rejects the task
        if status.state < COMPLETE:
            status.state = fatal_state(status.state)
            status.message = str(err)
            status.err = str(err)
            _stamp(status, clock)
        return None, status
    if status.state <= ASSIGNED:
        status.state = ACCEPTED
        status.message = "accepted"
        status.err = ""
        _stamp(status, clock)
    return controller, status


__all__ = ["Action", "Step", "do", "fatal_state", "is_transient", "plan_step", "resolve"]
