"""do() and resolve(): one step at a time against the FakeController (no Docker)."""

from __future__ import annotations

import asyncio

import pytest

from swarmd.agent.exec import (
    ImageNotFound,
    TaskNoop,
    TaskRetry,
    TemporaryError,
    do,
    make_temporary,
    resolve,
)
from swarmd.api import objects_pb2, specs_pb2
from swarmd.api import types_pb2 as t
from swarmd.testing.fake_clock import FakeClock
from swarmd.testing.fake_executor import Behaviour, FakeExecutor


def make_task(state=t.TASK_STATE_ASSIGNED, desired=t.TASK_STATE_RUNNING, task_id="task1"):
    return objects_pb2.Task(
        id=task_id,
        service_id="svc1",
        slot=1,
        node_id="node1",
        service_annotations=t.Annotations(name="web"),
        spec=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="busybox:1")),
        status=t.TaskStatus(state=state, message="assigned"),
        desired_state=desired,
    )


def name(state):
    return t.TaskState.Name(state).removeprefix("TASK_STATE_")


async def run_until_noop(task, ctlr, clock=None):
    """Drive do() like a task manager would; returns the visited states."""
    seen = []
    while True:
        try:
            status = await do(task, ctlr, clock=clock)
        except TaskNoop:
            return seen
        task.status.CopyFrom(status)
        seen.append(name(status.state))


async def test_do_runs_a_task_to_complete_one_step_at_a_time():
    clock = FakeClock(start=1000.0)
    ex = FakeExecutor(default=Behaviour(exit_code=0))
    task = make_task()
    ctlr = ex.controller(task)
    seen = await run_until_noop(task, ctlr, clock)
    assert seen == ["ACCEPTED", "PREPARING", "READY", "STARTING", "RUNNING", "COMPLETE"]
    assert ctlr.calls == ["prepare", "start", "wait"]
    assert task.status.message == "finished"
    assert task.status.err == ""
    assert task.status.container.container_id == "fake-task1"
    assert task.status.timestamp.ToNanoseconds() == 1000 * 10**9


async def test_do_attaches_container_status_from_starting_on():
    ex = FakeExecutor(default=Behaviour(ports=(t.PortConfig(target_port=80, published_port=8080),)))
    task = make_task(state=t.TASK_STATE_STARTING)
    ctlr = ex.controller(task)
    ex.add_container(task.id, running=False).state = "created"
    status = await do(task, ctlr)
    assert name(status.state) == "RUNNING"
    assert status.container.container_id == "fake-task1"
    assert status.container.pid > 0
    assert [(p.target_port, p.published_port) for p in status.port_status.ports] == [(80, 8080)]


async def test_do_rejects_a_task_whose_image_is_missing():
    err = ImageNotFound("nosuch:1", "pull access denied")
    ex = FakeExecutor(default=Behaviour(prepare_error=err))
    task = make_task(state=t.TASK_STATE_PREPARING)
    status = await do(task, ex.controller(task))
    assert name(status.state) == "REJECTED"
    expected = 'image "nosuch:1" not found locally and could not be pulled: pull access denied'
    assert status.err == expected
    assert status.message == expected
    assert not status.HasField("container")


async def test_do_fails_a_task_that_exits_non_zero():
    ex = FakeExecutor(default=Behaviour(exit_code=3))
    task = make_task()
    ctlr = ex.controller(task)
    seen = await run_until_noop(task, ctlr)
    assert seen[-2:] == ["RUNNING", "FAILED"]
    assert task.status.err == "task: non-zero exit (3)"
    assert task.status.container.exit_code == 3


async def test_do_fails_a_task_whose_start_fails():
    ex = FakeExecutor(default=Behaviour(unhealthy=True))
    task = make_task(state=t.TASK_STATE_STARTING)
    ctlr = ex.controller(task)
    ex.add_container(task.id, running=False).state = "created"
    status = await do(task, ctlr)
    assert name(status.state) == "FAILED"
    assert status.err == "task: container unhealthy: fake health check failed"


async def test_do_retries_temporary_errors_without_moving():
    ex = FakeExecutor(default=Behaviour(prepare_temporary_failures=1))
    task = make_task(state=t.TASK_STATE_PREPARING)
    ctlr = ex.controller(task)
    with pytest.raises(TaskRetry) as info:
        await do(task, ctlr)
    assert name(info.value.status.state) == "PREPARING"
    assert info.value.status.err == "fake engine unavailable for task task1"
    status = await do(task, ctlr)
    assert name(status.state) == "READY"
    assert status.err == ""
    assert ctlr.calls == ["prepare", "prepare"]


async def test_do_treats_wrapped_temporary_errors_as_retry():
    ex = FakeExecutor(default=Behaviour(prepare_error=make_temporary(OSError("socket gone"))))
    task = make_task(state=t.TASK_STATE_PREPARING)
    with pytest.raises(TaskRetry) as info:
        await do(task, ex.controller(task))
    assert info.value.status.err == "socket gone"


async def test_do_shuts_down_a_running_task_when_desired_shutdown():
    ex = FakeExecutor()
    task = make_task(state=t.TASK_STATE_RUNNING, desired=t.TASK_STATE_SHUTDOWN)
    ex.add_container(task.id)
    ctlr = ex.controller(task)
    status = await do(task, ctlr)
    assert name(status.state) == "SHUTDOWN"
    assert status.message == "shutdown"
    assert ctlr.calls == ["shutdown"]
    assert status.container.exit_code == 143
    task.status.CopyFrom(status)
    with pytest.raises(TaskNoop):
        await do(task, ctlr)


async def test_do_shutdown_before_prepare_needs_no_container():
    ex = FakeExecutor()
    task = make_task(state=t.TASK_STATE_ACCEPTED, desired=t.TASK_STATE_REMOVE)
    status = await do(task, ex.controller(task))
    assert name(status.state) == "SHUTDOWN"
    assert not status.HasField("container")


async def test_do_keeps_a_ready_task_staged_while_desired_ready():
    ex = FakeExecutor()
    task = make_task(desired=t.TASK_STATE_READY)
    ctlr = ex.controller(task)
    seen = await run_until_noop(task, ctlr)
    assert seen == ["ACCEPTED", "PREPARING", "READY"]
    assert ctlr.calls == ["prepare"]
    task.desired_state = t.TASK_STATE_RUNNING
    assert name((await do(task, ctlr)).state) == "STARTING"


@pytest.mark.parametrize("state", [t.TASK_STATE_COMPLETE, t.TASK_STATE_FAILED])
async def test_do_raises_noop_for_finished_tasks(state):
    ex = FakeExecutor()
    task = make_task(state=state)
    with pytest.raises(TaskNoop, match=f"nothing to do in state {name(state)}"):
        await do(task, ex.controller(task))


async def test_do_contains_a_controller_bug_as_a_failed_task():
    ex = FakeExecutor(default=Behaviour(start_error=RuntimeError("boom")))
    task = make_task(state=t.TASK_STATE_STARTING)
    status = await do(task, ex.controller(task))
    assert name(status.state) == "FAILED"
    assert status.err == "boom"


async def test_do_propagates_cancellation_of_wait():
    ex = FakeExecutor()
    task = make_task(state=t.TASK_STATE_RUNNING)
    ex.add_container(task.id)
    step = asyncio.create_task(do(task, ex.controller(task)))
    await asyncio.sleep(0.01)
    assert not step.done()
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert task.status.state == t.TASK_STATE_RUNNING


async def test_do_wait_returns_when_the_process_exits_later():
    clock = FakeClock()
    ex = FakeExecutor(default=Behaviour(exit_code=0, run_seconds=30), clock=clock)
    task = make_task(state=t.TASK_STATE_STARTING)
    ctlr = ex.controller(task)
    await ctlr.prepare()
    task.status.CopyFrom(await do(task, ctlr, clock=clock))
    step = asyncio.create_task(do(task, ctlr, clock=clock))
    await clock.advance(29)
    assert not step.done()
    await clock.advance(1)
    assert name((await step).state) == "COMPLETE"


def test_resolve_accepts_and_rejects():
    ex = FakeExecutor()
    ctlr, status = resolve(make_task(), ex)
    assert ctlr is not None
    assert (name(status.state), status.message) == ("ACCEPTED", "accepted")

    ex.refuse("task2", "no such runtime")
    ctlr, status = resolve(make_task(task_id="task2"), ex)
    assert ctlr is None
    assert name(status.state) == "REJECTED"
    assert status.err == "task task2: no such runtime"

    ctlr, status = resolve(make_task(state=t.TASK_STATE_RUNNING, task_id="task2"), ex)
    assert name(status.state) == "FAILED"


def test_temporary_error_is_unavailable():
    from swarmd.errors import Unavailable

    assert isinstance(TemporaryError("x"), Unavailable)
