"""Fixtures for DockerExecutor tests against the real engine.

Each test gets executors with a fresh node id, so its containers (labelled with it) and its
event stream are its own; every container of those node ids is force-removed afterwards, even
when the test fails. Skipped (not passed) when no engine answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import docker
import pytest

from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.dockerexec import DockerExecutor
from swarmd.dockerexec.container import LABEL_NODE_ID

IMAGE = "swarmd-busybox:latest"


def _engine() -> docker.DockerClient:
    # `make test` starts the engine and builds the image, so their absence is a failure, never
    # a skip; `make test-unit` deselects these tests (marker `docker`) instead.
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as err:
        pytest.fail(f"no docker engine: {err}")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {IMAGE} missing (make image)")
    return client


def containers_with(engine: docker.DockerClient, label: str, value: str) -> list:
    """All containers (any state) whose `label` is `value`."""
    return engine.containers.list(all=True, filters={"label": f"{label}={value}"})


@pytest.fixture
def engine():
    client = _engine()
    yield client
    client.close()


@pytest.fixture
async def make_executor(engine) -> AsyncIterator[Callable[[], object]]:
    made: list[DockerExecutor] = []

    async def make() -> DockerExecutor:
        ex = DockerExecutor(f"test-{uuid.uuid4().hex[:12]}")
        made.append(ex)
        await ex.start()
        await asyncio.wait_for(ex.events.connected.wait(), 30)
        return ex

    yield make
    for ex in made:
        for c in engine.containers.list(
            all=True, filters={"label": f"{LABEL_NODE_ID}={ex.node_id}"}
        ):
            c.remove(force=True, v=True)
        await ex.close()


@pytest.fixture
async def executor(make_executor) -> DockerExecutor:
    return await make_executor()


def make_task(
    node_id: str,
    *,
    args: list[str],
    command: list[str] | None = None,
    image: str = IMAGE,
    slot: int = 1,
    state: int = types_pb2.TASK_STATE_ASSIGNED,
    desired: int = types_pb2.TASK_STATE_RUNNING,
    grace_s: int | None = 1,
    **container: object,
) -> objects_pb2.Task:
    """A task of service "svc" running `command` (default: the shell's `sh -c`) with args."""
    spec = specs_pb2.ContainerSpec(
        image=image,
        command=command if command is not None else ["sh", "-c"],
        args=args,
        **container,  # type: ignore[arg-type]
    )
    if grace_s is not None:
        spec.stop_grace_period.FromSeconds(grace_s)
    return objects_pb2.Task(
        id=uuid.uuid4().hex[:20],
        service_id="svc-id",
        slot=slot,
        node_id=node_id,
        service_annotations=types_pb2.Annotations(name="svc"),
        spec=specs_pb2.TaskSpec(container=spec),
        status=types_pb2.TaskStatus(state=state),
        desired_state=desired,
    )
