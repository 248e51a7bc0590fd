"""DockerController and do() against the real engine: images, exits, kill, stop, health."""

from __future__ import annotations

import asyncio
import time

import pytest

from swarmd.agent.exec import TaskNoop, do
from swarmd.api import types_pb2 as t
from swarmd.dockerexec.container import LABEL_NODE_ID, LABEL_TASK_ID
from tests.component.dockerexec.conftest import containers_with, make_task

pytestmark = pytest.mark.docker


def name(state):
    return t.TaskState.Name(state).removeprefix("TASK_STATE_")


async def step(task, ctlr, limit=30):
    async with asyncio.timeout(limit):
        status = await do(task, ctlr)
    task.status.CopyFrom(status)
    return status


async def run_until_noop(task, ctlr, limit=30):
    seen = []
    async with asyncio.timeout(limit):
        while True:
            try:
                status = await do(task, ctlr)
            except TaskNoop:
                return seen
            task.status.CopyFrom(status)
            seen.append(name(status.state))


async def to_running(task, ctlr):
    seen = []
    while task.status.state < t.TASK_STATE_RUNNING:
        seen.append(name((await step(task, ctlr)).state))
    return seen


async def test_local_image_is_used_without_pull(executor, engine, monkeypatch):
    async def no_pull(ref):
        raise AssertionError(f"pulled {ref} although it is local")

    monkeypatch.setattr(executor.adapter, "pull", no_pull)
    task = make_task(executor.node_id, args=["exit 0"], slot=3, env=["GREETING=hi"])
    task.spec.container.labels["team"] = "a"
    ctlr = executor.controller(task)
    await ctlr.prepare()
    c = engine.containers.get(ctlr.container_id)
    assert c.name == f"svc.3.{task.id}"
    assert c.status == "created"
    assert {k: v for k, v in c.labels.items() if not k.startswith("org.opencontainers")} == {
        "team": "a",
        "swarmd.node.id": executor.node_id,
        "swarmd.service.id": "svc-id",
        "swarmd.service.name": "svc",
        "swarmd.task.id": task.id,
        "swarmd.task.slot": "3",
    }
    assert "GREETING=hi" in c.attrs["Config"]["Env"]
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"


async def test_missing_image_rejects_the_task_with_a_clear_message(executor):
    image = "swarmd-missing.invalid/nope:1"
    task = make_task(executor.node_id, args=["exit 0"], image=image)
    ctlr = executor.controller(task)
    seen = await run_until_noop(task, ctlr)
    assert seen == ["ACCEPTED", "PREPARING", "REJECTED"]
    assert task.status.err.startswith(
        f'image "{image}" not found locally and could not be pulled: '
    )
    assert len(task.status.err) > len(image) + 50  # the engine's reason follows
    assert await executor.list_task_ids() == frozenset()


async def test_task_runs_to_complete_on_exit_0(executor):
    task = make_task(executor.node_id, args=["exit 0"])
    ctlr = executor.controller(task)
    seen = await run_until_noop(task, ctlr)
    assert seen == ["ACCEPTED", "PREPARING", "READY", "STARTING", "RUNNING", "COMPLETE"]
    assert task.status.message == "finished"
    assert task.status.container.container_id == ctlr.container_id
    assert task.status.container.exit_code == 0


async def test_task_fails_on_exit_3_with_the_code(executor):
    task = make_task(executor.node_id, args=["exit 3"])
    ctlr = executor.controller(task)
    seen = await run_until_noop(task, ctlr)
    assert seen[-2:] == ["RUNNING", "FAILED"]
    assert task.status.err == "task: non-zero exit (3)"
    assert task.status.container.exit_code == 3
    # wait() on an already exited container answers at once, from one inspect.
    task.status.state = t.TASK_STATE_RUNNING
    status = await step(task, ctlr, limit=10)
    assert status.err == "task: non-zero exit (3)"


async def test_docker_kill_fails_the_waiting_task_promptly(executor, engine):
    task = make_task(executor.node_id, args=["sleep 1000"])
    ctlr = executor.controller(task)
    await to_running(task, ctlr)
    assert task.status.container.pid > 0
    waiting = asyncio.create_task(do(task, ctlr))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    killed_at = time.monotonic()
    engine.containers.get(ctlr.container_id).kill()
    async with asyncio.timeout(15):
        status = await waiting
    assert time.monotonic() - killed_at < 10
    assert name(status.state) == "FAILED"
    assert status.err == "task: non-zero exit (137)"
    assert status.container.exit_code == 137


async def test_shutdown_stops_with_grace_then_remove_deletes(executor, engine):
    task = make_task(executor.node_id, args=["sleep 1000"], grace_s=1)
    ctlr = executor.controller(task)
    await to_running(task, ctlr)
    cid = ctlr.container_id
    task.desired_state = t.TASK_STATE_SHUTDOWN
    started = time.monotonic()
    status = await step(task, ctlr)
    elapsed = time.monotonic() - started
    assert name(status.state) == "SHUTDOWN"
    # sh as PID 1 ignores SIGTERM: the engine kills it when the 1 s grace is over.
    assert 0.9 < elapsed < 15
    assert engine.containers.get(cid).status == "exited"
    with pytest.raises(TaskNoop):
        await do(task, ctlr)
    await ctlr.shutdown()  # idempotent
    await ctlr.remove()
    await ctlr.remove()
    assert await executor.list_task_ids() == frozenset()


async def test_shutdown_with_init_delivers_the_stop_signal(executor):
    task = make_task(executor.node_id, args=["sleep 1000"], grace_s=30, init=2)
    ctlr = executor.controller(task)
    await to_running(task, ctlr)
    task.desired_state = t.TASK_STATE_SHUTDOWN
    started = time.monotonic()
    await step(task, ctlr)
    assert time.monotonic() - started < 15  # well before the 30 s grace: SIGTERM worked
    assert (await ctlr.observe()).container.exit_code == 143


async def test_prepare_adopts_the_existing_container_of_the_task(executor, engine):
    task = make_task(executor.node_id, args=["sleep 1000"])
    first = executor.controller(task)
    await to_running(task, first)
    # A restarted agent: a new controller for the same task, replaying from PREPARING.
    again = executor.controller(task)
    await again.prepare()
    assert again.container_id == first.container_id
    await again.start()  # already running: not started twice
    assert (await again.observe()).container.pid == task.status.container.pid
    assert len(containers_with(engine, LABEL_TASK_ID, task.id)) == 1


async def test_prune_never_touches_other_nodes_containers(make_executor, engine):
    mine = await make_executor()
    theirs = await make_executor()
    keep = make_task(mine.node_id, args=["sleep 1000"])
    drop = make_task(mine.node_id, args=["sleep 1000"])
    other = make_task(theirs.node_id, args=["sleep 1000"])
    for ex, task in ((mine, keep), (mine, drop), (theirs, other)):
        await ex.controller(task).prepare()
    assert await mine.list_task_ids() == {keep.id, drop.id}
    assert await mine.prune([keep.id]) == [drop.id]
    assert await mine.list_task_ids() == {keep.id}
    assert await theirs.list_task_ids() == {other.id}
    assert await mine.prune([]) == [keep.id]
    left = containers_with(engine, LABEL_NODE_ID, theirs.node_id)
    assert [c.labels[LABEL_TASK_ID] for c in left] == [other.id]


def health(test, retries=1):
    hc = t.HealthConfig(test=test, retries=retries)
    hc.interval.FromMilliseconds(200)
    hc.timeout.FromSeconds(2)
    return hc


async def test_start_returns_once_healthy(executor):
    task = make_task(
        executor.node_id,
        args=["sleep 0.5; touch /ok; sleep 1000"],
        healthcheck=health(["CMD-SHELL", "test -f /ok"], retries=30),
    )
    ctlr = executor.controller(task)
    seen = await to_running(task, ctlr)
    assert seen[-1] == "RUNNING"
    assert task.status.health == t.HEALTH_STATE_HEALTHY


async def test_unhealthy_at_start_fails_the_task(executor):
    task = make_task(executor.node_id, args=["sleep 1000"], healthcheck=health(["CMD", "false"]))
    ctlr = executor.controller(task)
    seen = await run_until_noop(task, ctlr)
    assert seen[-2:] == ["STARTING", "FAILED"]
    assert task.status.err == "task: container unhealthy"


async def test_unhealthy_while_running_fails_the_waiting_task(executor, engine):
    task = make_task(
        executor.node_id,
        args=["touch /ok; sleep 1000"],
        healthcheck=health(["CMD-SHELL", "test -f /ok"], retries=30),
    )
    ctlr = executor.controller(task)
    await to_running(task, ctlr)
    waiting = asyncio.create_task(do(task, ctlr))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    engine.containers.get(ctlr.container_id).exec_run(["rm", "/ok"])
    async with asyncio.timeout(30):
        status = await waiting
    assert name(status.state) == "FAILED"
    assert status.err == "task: container unhealthy"
    assert engine.containers.get(ctlr.container_id).status == "exited"


async def test_host_published_port_is_reported(executor, engine):
    task = make_task(executor.node_id, args=["sleep 1000"])
    task.endpoint.spec.ports.add(
        name="web", target_port=8080, publish_mode=t.PortConfig.PUBLISH_MODE_HOST
    )
    ctlr = executor.controller(task)
    await to_running(task, ctlr)
    ports = list(task.status.port_status.ports)
    assert [(p.name, p.target_port) for p in ports] == [("web", 8080)]
    assert ports[0].published_port > 0
    binding = engine.containers.get(ctlr.container_id).ports["8080/tcp"]
    assert str(ports[0].published_port) in {b["HostPort"] for b in binding}


async def test_describe_reports_the_engine(executor, engine):
    desc = await executor.describe()
    info = engine.info()
    assert desc.hostname == info["Name"]
    assert desc.platform.os == "linux"
    assert desc.resources.nano_cpus == info["NCPU"] * 1_000_000_000
    assert desc.resources.memory_bytes == info["MemTotal"]
    assert desc.engine.engine_version == info["ServerVersion"]
