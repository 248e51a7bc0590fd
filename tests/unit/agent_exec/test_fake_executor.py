"""FakeExecutor: scripting, adoption and pruning behave like the Docker executor's."""

from __future__ import annotations

import pytest

from swarmd.agent.exec import ExitError, InvalidTask
from swarmd.api import objects_pb2, specs_pb2
from swarmd.api import types_pb2 as t
from swarmd.errors import FailedPrecondition
from swarmd.testing.fake_executor import Behaviour, FakeExecutor


def make_task(task_id, service="web", image="busybox:1"):
    return objects_pb2.Task(
        id=task_id,
        service_annotations=t.Annotations(name=service),
        spec=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image=image)),
    )


async def test_fake_scripts_by_task_then_service_then_default():
    ex = FakeExecutor(default=Behaviour(exit_code=0))
    ex.script_service("db", Behaviour(exit_code=1))
    ex.script_task("t3", Behaviour(exit_code=2))
    assert ex.behaviour_for(make_task("t1")).exit_code == 0
    assert ex.behaviour_for(make_task("t2", service="db")).exit_code == 1
    assert ex.behaviour_for(make_task("t3", service="db")).exit_code == 2


async def test_fake_exit_from_outside_ends_wait_with_the_code():
    ex = FakeExecutor()
    ctlr = ex.controller(make_task("t1"))
    await ctlr.prepare()
    await ctlr.start()
    ex.exit("t1", 9)
    with pytest.raises(ExitError, match=r"non-zero exit \(9\)"):
        await ctlr.wait()
    with pytest.raises(FailedPrecondition, match="not running"):
        ex.exit("t1", 1)


async def test_fake_adopts_existing_container_and_prunes_unknown_ones():
    ex = FakeExecutor()
    ex.add_container("old")
    ex.add_container("keep")
    ctlr = ex.controller(make_task("keep"))
    await ctlr.prepare()
    assert ctlr.adopted
    await ctlr.start()  # already running: not started twice
    assert (await ctlr.observe()).container.pid > 0
    assert await ex.list_task_ids() == {"old", "keep"}
    assert await ex.prune(["keep"]) == ["old"]
    assert await ex.list_task_ids() == {"keep"}


async def test_fake_refuses_tasks_without_image():
    with pytest.raises(InvalidTask, match="task t1: the task has no container image"):
        FakeExecutor().controller(make_task("t1", image=""))


async def test_fake_lifecycle_methods_are_idempotent():
    ex = FakeExecutor()
    ctlr = ex.controller(make_task("t1"))
    await ctlr.shutdown()
    await ctlr.terminate()
    await ctlr.remove()
    await ctlr.prepare()
    await ctlr.start()
    await ctlr.terminate()
    await ctlr.terminate()
    assert (await ctlr.observe()).container.exit_code == 137
    await ctlr.remove()
    await ctlr.remove()
    await ctlr.close()
    assert await ex.list_task_ids() == frozenset()
    assert ctlr.calls[-3:] == ["remove", "remove", "close"]
    assert (await ex.describe()).hostname == "fake-host"
