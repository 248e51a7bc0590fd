"""DockerController against a scripted adapter: the paths a local engine cannot show
(pulls that succeed or half-succeed, name conflicts, lost events, engine outages)."""

from __future__ import annotations

import asyncio

import pytest

from swarmd.agent.exec import ExitError, ImageNotFound, TaskRetry, TemporaryError, do
from swarmd.api import objects_pb2, specs_pb2
from swarmd.api import types_pb2 as t
from swarmd.dockerexec.adapter import EngineConflict, PullError
from swarmd.dockerexec.controller import DockerController
from swarmd.dockerexec.events import RESYNC, EngineEvent, EventHub
from swarmd.errors import FailedPrecondition

NODE = "n1"


def make_task():
    return objects_pb2.Task(
        id="t1",
        slot=1,
        service_annotations=t.Annotations(name="web"),
        spec=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="app:1")),
        status=t.TaskStatus(state=t.TASK_STATE_PREPARING),
        desired_state=t.TASK_STATE_RUNNING,
    )


def container(cid="c1", running=False, started=False, code=0, task_id="t1", node=NODE):
    return {
        "Id": cid,
        "State": {
            "Running": running,
            "ExitCode": code,
            "Pid": 7 if running else 0,
            "StartedAt": "2026-01-01T00:00:00Z" if started else "0001-01-01T00:00:00Z",
        },
        "Config": {"Labels": {"swarmd.task.id": task_id, "swarmd.node.id": node}},
    }


class StubAdapter:
    """Records calls; images/containers/errors are scripted by the test."""

    def __init__(self):
        self.calls = []
        self.images = set()
        self.containers = {}  # id or name -> inspect dict
        self.pull_adds = True
        self.pull_error = None
        self.create_error = None
        self.down = False

    def _call(self, *what):
        self.calls.append(what)
        if self.down:
            raise TemporaryError("docker engine unreachable: connection refused")

    async def inspect_image(self, ref):
        self._call("inspect_image", ref)
        return {"Id": ref} if ref in self.images else None

    async def pull(self, ref):
        self._call("pull", ref)
        if self.pull_error:
            raise self.pull_error
        if self.pull_adds:
            self.images.add(ref)

    async def create(self, kwargs):
        self._call("create", kwargs["name"])
        if self.create_error:
            raise self.create_error
        self.containers["c1"] = container()
        return "c1"

    async def inspect(self, ref):
        self._call("inspect", ref)
        return self.containers.get(ref)

    async def list_by_labels(self, labels):
        self._call("list", labels["swarmd.task.id"])
        return [
            {"Id": cid}
            for cid, info in self.containers.items()
            if info["Config"]["Labels"]["swarmd.task.id"] == labels["swarmd.task.id"]
            and info["Config"]["Labels"]["swarmd.node.id"] == labels["swarmd.node.id"]
            and cid == info["Id"]
        ]

    async def start(self, ref):
        self._call("start", ref)

    async def stop(self, ref, grace):
        self._call("stop", ref, grace)

    async def kill(self, ref):
        self._call("kill", ref)

    async def remove(self, ref):
        self._call("remove", ref)


@pytest.fixture
def adapter():
    return StubAdapter()


@pytest.fixture
def hub():
    return EventHub()


def ctlr_for(adapter, hub, task=None):
    return DockerController(adapter, hub, task or make_task(), NODE)


def names(adapter):
    return [c[0] for c in adapter.calls]


async def test_missing_image_is_pulled_then_created(adapter, hub):
    ctlr = ctlr_for(adapter, hub)
    await ctlr.prepare()
    assert names(adapter) == ["list", "inspect_image", "pull", "inspect_image", "create"]
    assert ctlr.container_id == "c1"


async def test_pull_failure_rejects_with_the_registry_reason(adapter, hub):
    adapter.pull_error = PullError("docker pull app:1: manifest unknown")
    task = make_task()
    status = await do(task, ctlr_for(adapter, hub, task))
    assert t.TaskState.Name(status.state) == "TASK_STATE_REJECTED"
    assert status.err == 'image "app:1" not found locally and could not be pulled: manifest unknown'


async def test_pull_without_image_is_still_not_found(adapter, hub):
    adapter.pull_adds = False
    with pytest.raises(ImageNotFound, match="the pull finished but the image is not there"):
        await ctlr_for(adapter, hub).prepare()


async def test_name_conflict_with_our_own_container_adopts_it(adapter, hub):
    adapter.images.add("app:1")
    adapter.create_error = EngineConflict("docker create: name in use", 409)
    adapter.containers["web.1.t1"] = container(cid="c9")  # found by name, not by label list
    ctlr = ctlr_for(adapter, hub)
    await ctlr.prepare()
    assert ctlr.container_id == "c9"


async def test_name_conflict_with_a_stranger_is_an_error(adapter, hub):
    adapter.images.add("app:1")
    adapter.create_error = EngineConflict("docker create: name in use", 409)
    adapter.containers["web.1.t1"] = container(cid="c9", node="someone-else")
    with pytest.raises(FailedPrecondition, match=r"web\.1\.t1 is in use by a container that"):
        await ctlr_for(adapter, hub).prepare()


async def test_engine_outage_is_retried_not_failed(adapter, hub):
    adapter.down = True
    task = make_task()
    with pytest.raises(TaskRetry) as info:
        await do(task, ctlr_for(adapter, hub, task))
    assert info.value.status.state == t.TASK_STATE_PREPARING
    assert "connection refused" in info.value.status.err


async def test_start_never_restarts_a_container_that_already_ran(adapter, hub):
    adapter.containers["c1"] = container(started=True, code=0)
    ctlr = ctlr_for(adapter, hub)
    await ctlr.start()
    assert "start" not in names(adapter)


async def test_wait_reinspects_after_a_resync(adapter, hub):
    adapter.containers["c1"] = container(running=True, started=True)
    ctlr = ctlr_for(adapter, hub)
    waiting = asyncio.create_task(ctlr.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    # The die event was lost while the stream reconnected; the resync makes wait look again.
    adapter.containers["c1"] = container(started=True, code=2)
    hub.publish(RESYNC)
    with pytest.raises(ExitError, match=r"non-zero exit \(2\)"):
        await asyncio.wait_for(waiting, 5)
    assert hub.subscribers == 0


async def test_wait_reports_oom_and_a_removed_container(adapter, hub):
    adapter.containers["c1"] = container(running=True, started=True)
    ctlr = ctlr_for(adapter, hub)
    waiting = asyncio.create_task(ctlr.wait())
    await asyncio.sleep(0.01)
    hub.publish(EngineEvent("oom", "c1", "t1"))
    hub.publish(EngineEvent("die", "c1", "t1", exit_code=137))
    with pytest.raises(ExitError, match=r"\(137\): container ran out of memory"):
        await asyncio.wait_for(waiting, 5)

    waiting = asyncio.create_task(ctlr.wait())
    await asyncio.sleep(0.01)
    hub.publish(EngineEvent("destroy", "c1", "t1"))
    with pytest.raises(FailedPrecondition, match=r"task: container web\.1\.t1 was removed"):
        await asyncio.wait_for(waiting, 5)


async def test_shutdown_and_remove_are_noops_without_container(adapter, hub):
    ctlr = ctlr_for(adapter, hub)
    await ctlr.shutdown()
    await ctlr.terminate()
    await ctlr.remove()
    assert set(names(adapter)) == {"list"}
    assert (await ctlr.observe()).container is None
