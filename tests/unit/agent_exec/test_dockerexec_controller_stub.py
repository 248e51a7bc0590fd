"""DockerController against a scripted adapter: the paths a local engine cannot show
(pulls that succeed or half-succeed, name conflicts, lost events, engine outages)."""

from __future__ import annotations

import asyncio

import pytest

from swarmd.agent.exec import ExitError, ImageNotFound, TaskRetry, TemporaryError, do
from swarmd.api import objects_pb2, specs_pb2
from swarmd.api import types_pb2 as t
from swarmd.dockerexec.adapter import EngineConflict, EngineError, PullError
from swarmd.dockerexec.admission import AdmissionGate
from swarmd.dockerexec.controller import DockerController
from swarmd.dockerexec.events import RESYNC, EngineEvent, EventHub
from swarmd.dockerexec.images import PresentImages
from swarmd.errors import FailedPrecondition, NotFound

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


# -- the engine calls of a new task ------------------------------------------------------------


def new_task(state=t.TASK_STATE_ASSIGNED):
    task = make_task()
    task.status.state = state
    return task


class StartingAdapter(StubAdapter):
    """A stub whose start really makes the container run, as the engine would."""

    async def start(self, ref):
        await super().start(ref)
        self.containers[ref] = container(cid=ref, running=True, started=True)


async def run_to_running(ctlr, task):
    """do() from the task's state until it is RUNNING; returns the statuses."""
    statuses = []
    while task.status.state < t.TASK_STATE_RUNNING:
        status = await do(task, ctlr)
        task.status.CopyFrom(status)
        statuses.append(status)
    return statuses


async def test_a_new_task_costs_create_start_and_one_inspect(hub):
    adapter = StartingAdapter()
    adapter.images.add("app:1")
    images = PresentImages()
    images.seen("app:1")
    task = new_task()
    ctlr = DockerController(adapter, hub, task, NODE, images=images)
    statuses = await run_to_running(ctlr, task)
    assert names(adapter) == ["create", "start", "inspect"]
    by_state = {t.TaskState.Name(s.state): s for s in statuses}
    assert by_state["TASK_STATE_STARTING"].container.container_id == "c1"
    assert by_state["TASK_STATE_RUNNING"].container.pid == 7
    # wait() uses the inspect made after the start and the subscription opened before it.
    waiting = asyncio.create_task(ctlr.wait())
    await asyncio.sleep(0.01)
    assert names(adapter) == ["create", "start", "inspect"]
    hub.publish(EngineEvent("die", "c1", "t1", exit_code=3))
    with pytest.raises(ExitError, match=r"non-zero exit \(3\)"):
        await asyncio.wait_for(waiting, 5)
    assert hub.subscribers == 0


async def test_an_exit_between_start_and_wait_is_not_missed(hub):
    adapter = StartingAdapter()
    adapter.images.add("app:1")
    task = new_task(t.TASK_STATE_PREPARING)
    ctlr = DockerController(adapter, hub, task, NODE)
    await run_to_running(ctlr, task)
    hub.publish(EngineEvent("die", "c1", "t1", exit_code=0))  # before wait() is called
    await asyncio.wait_for(ctlr.wait(), 5)
    assert hub.subscribers == 0


async def test_close_releases_the_subscription_kept_for_wait(hub):
    adapter = StartingAdapter()
    adapter.images.add("app:1")
    task = new_task()
    ctlr = DockerController(adapter, hub, task, NODE)
    await run_to_running(ctlr, task)
    assert hub.subscribers == 1
    await ctlr.close()
    assert hub.subscribers == 0


async def test_shutdown_instead_of_wait_releases_the_subscription(hub):
    adapter = StartingAdapter()
    adapter.images.add("app:1")
    task = new_task()
    ctlr = DockerController(adapter, hub, task, NODE)
    await run_to_running(ctlr, task)
    assert hub.subscribers == 1
    await ctlr.shutdown()  # desired state moved on: no wait() comes
    assert hub.subscribers == 0
    assert "stop" in names(adapter)


async def test_a_task_seen_preparing_looks_for_its_container_first(adapter, hub):
    adapter.images.add("app:1")
    adapter.containers["c1"] = container(running=True, started=True)
    ctlr = DockerController(adapter, hub, new_task(t.TASK_STATE_PREPARING), NODE)
    await ctlr.prepare()
    assert names(adapter) == ["list", "inspect"]
    assert ctlr.container_id == "c1"


async def test_a_new_task_whose_container_exists_adopts_it_through_the_name(adapter, hub):
    # A create whose answer was lost before the agent recorded PREPARING.
    adapter.images.add("app:1")
    adapter.create_error = EngineConflict("docker create: name in use", 409)
    adapter.containers["web.1.t1"] = container(cid="c9", running=True, started=True)
    adapter.containers["c9"] = adapter.containers["web.1.t1"]
    ctlr = DockerController(adapter, hub, new_task(), NODE)
    await ctlr.prepare()
    assert ctlr.container_id == "c9"
    await ctlr.start()
    assert "start" not in names(adapter)  # it already runs: never started twice


async def test_the_image_is_inspected_once_per_executor(hub):
    adapter = StubAdapter()
    adapter.images.add("app:1")
    images = PresentImages()
    for i in range(3):
        task = new_task()
        task.id = f"t{i}"
        await DockerController(adapter, hub, task, NODE, images=images).prepare()
    assert names(adapter) == ["inspect_image", "create", "create", "create"]


async def test_an_image_gone_since_it_was_seen_is_pulled_again(hub):
    adapter = StubAdapter()
    images = PresentImages()
    images.seen("app:1")  # but the engine no longer has it: create answers 404
    real_create = adapter.create
    refusals = []

    async def create(kwargs):
        if "app:1" not in adapter.images:
            refusals.append(kwargs["name"])
            raise NotFound("docker object", "create", "docker create: no such image: app:1")
        return await real_create(kwargs)

    adapter.create = create
    ctlr = DockerController(adapter, hub, new_task(), NODE, images=images)
    await ctlr.prepare()
    assert refusals == ["web.1.t1"]
    assert names(adapter) == ["inspect_image", "pull", "inspect_image", "create"]
    assert ctlr.container_id == "c1"


# -- tasks arriving together -------------------------------------------------------------------


def numbered_task(i):
    task = new_task()
    task.id = f"t{i}"
    task.slot = i
    return task


async def test_tasks_preparing_together_share_one_image_check(hub):
    adapter = StubAdapter()
    adapter.images.add("app:1")
    gate = asyncio.Event()
    real_inspect_image = adapter.inspect_image

    async def slow_inspect_image(ref):
        await gate.wait()
        return await real_inspect_image(ref)

    adapter.inspect_image = slow_inspect_image
    images = PresentImages()
    ctlrs = [
        DockerController(adapter, hub, numbered_task(i), NODE, images=images) for i in range(5)
    ]
    preparing = [asyncio.create_task(c.prepare()) for c in ctlrs]
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait_for(asyncio.gather(*preparing), 5)
    assert names(adapter) == ["inspect_image"] + ["create"] * 5


async def test_tasks_preparing_together_share_one_failed_pull(hub):
    adapter = StubAdapter()
    adapter.pull_error = PullError("docker pull app:1: manifest unknown")
    images = PresentImages()
    ctlrs = [
        DockerController(adapter, hub, numbered_task(i), NODE, images=images) for i in range(3)
    ]
    results = await asyncio.gather(*(c.prepare() for c in ctlrs), return_exceptions=True)
    assert all(isinstance(r, ImageNotFound) for r in results)
    assert names(adapter) == ["inspect_image", "pull"]


async def test_new_tasks_beyond_the_admission_window_create_once_a_start_returned(hub):
    adapter = StartingAdapter()
    adapter.images.add("app:1")
    admission = AdmissionGate(window=1)
    first, second = (
        DockerController(adapter, hub, numbered_task(i), NODE, admission=admission) for i in (1, 2)
    )
    await first.prepare()
    waiting = asyncio.create_task(second.prepare())
    await asyncio.sleep(0.01)
    assert names(adapter).count("create") == 1  # the second waits for the first's start
    await first.start()
    await asyncio.wait_for(waiting, 5)
    assert names(adapter)[-2:] == ["inspect", "create"]
    await first.close()


async def test_a_failed_create_or_a_shutdown_gives_the_slot_back(hub):
    adapter = StartingAdapter()
    adapter.images.add("app:1")
    admission = AdmissionGate(window=1)
    adapter.create_error = EngineError("docker create: invalid mount", 400)
    failing = DockerController(adapter, hub, numbered_task(1), NODE, admission=admission)
    with pytest.raises(EngineError):
        await failing.prepare()
    assert not admission.holds("t1")
    adapter.create_error = None
    paused = DockerController(adapter, hub, numbered_task(2), NODE, admission=admission)
    await paused.prepare()
    assert admission.holds("t2")
    await paused.shutdown()  # shut down before it was ever started
    assert not admission.holds("t2")
    await asyncio.wait_for(
        DockerController(adapter, hub, numbered_task(3), NODE, admission=admission).prepare(), 5
    )


async def test_a_task_that_is_not_to_run_or_is_adopted_takes_no_slot(hub):
    adapter = StartingAdapter()
    adapter.images.add("app:1")
    admission = AdmissionGate(window=1)
    staged = numbered_task(1)
    staged.desired_state = t.TASK_STATE_READY  # prepared now, started later (or never)
    await DockerController(adapter, hub, staged, NODE, admission=admission).prepare()
    seen = numbered_task(2)
    seen.status.state = t.TASK_STATE_PREPARING  # an earlier run may have created it
    await DockerController(adapter, hub, seen, NODE, admission=admission).prepare()
    assert not admission.holds("t1")
    assert not admission.holds("t2")
