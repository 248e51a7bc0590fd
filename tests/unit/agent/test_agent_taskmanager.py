"""taskmanager.py: what a task manager stores and reports on the way to RUNNING."""

from __future__ import annotations

import asyncio

from swarmd.agent.taskmanager import TaskManager
from swarmd.api import objects_pb2, specs_pb2
from swarmd.api import types_pb2 as t
from swarmd.testing.fake_executor import FakeExecutor


def new_task(desired):
    return objects_pb2.Task(
        id="t1",
        service_id="s1",
        slot=1,
        spec=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="app:1")),
        status=t.TaskStatus(state=t.TASK_STATE_ASSIGNED),
        desired_state=desired,
    )


async def run_until(task, last_state):
    reported = []
    done = asyncio.Event()

    async def on_status(task_id, status):
        reported.append(t.TaskState.Name(status.state))
        if status.state == last_state:
            done.set()

    manager = TaskManager(task, FakeExecutor().controller(task), on_status)
    runner = asyncio.create_task(manager.run())
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return reported, manager


async def test_a_task_to_run_reports_preparing_starting_and_running_only():
    reported, manager = await run_until(new_task(t.TASK_STATE_RUNNING), t.TASK_STATE_RUNNING)
    # ACCEPTED and READY are left at once without a controller call: never reported.
    assert reported == ["TASK_STATE_PREPARING", "TASK_STATE_STARTING", "TASK_STATE_RUNNING"]
    assert manager.task.status.state == t.TASK_STATE_RUNNING


async def test_a_task_paused_at_ready_reports_ready():
    reported, manager = await run_until(new_task(t.TASK_STATE_READY), t.TASK_STATE_READY)
    assert reported == ["TASK_STATE_PREPARING", "TASK_STATE_READY"]
    assert manager.task.status.state == t.TASK_STATE_READY
