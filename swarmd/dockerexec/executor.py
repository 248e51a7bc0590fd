"""DockerExecutor: the swarmd.agent.exec.Executor of a node, backed by the local Docker Engine.

`swarmd.node` makes one per node once the node id is known, `await start()`s it (that starts
the engine event thread) and hands it to the agent; `await close()` on the way out. Besides the
protocol (describe, controller, list_task_ids, prune) it offers list_containers() for
inspection, and keeps what its controllers share: PresentImages (images.py) and the
AdmissionGate of new tasks between create and start (admission.py). Every list and
removal is restricted to containers labelled with this node's id: other nodes sharing the
engine (tests, several swarmd on one host) are never touched.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from swarmd.agent.exec import Controller, Executor
from swarmd.api import objects_pb2, types_pb2
from swarmd.dockerexec.adapter import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_PULL_TIMEOUT,
    DEFAULT_WORKERS,
    DockerAdapter,
)
from swarmd.dockerexec.admission import AdmissionGate
from swarmd.dockerexec.container import LABEL_NODE_ID, LABEL_TASK_ID
from swarmd.dockerexec.controller import DockerController
from swarmd.dockerexec.events import EventHub, EventStream
from swarmd.dockerexec.images import PresentImages
from swarmd.errors import FailedPrecondition

_log = structlog.get_logger(component="dockerexec")

_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """A container of this node, as `docker ps -a` lists it."""

    container_id: str
    name: str
    task_id: str
    state: str  # created, running, exited, dead, ...


def describe_engine(info: dict[str, Any]) -> types_pb2.NodeDescription:
    """A NodeDescription from `docker info` (hostname, platform, resources, engine). Pure."""
    labels: dict[str, str] = {}
    for item in info.get("Labels") or []:
        key, _, value = str(item).partition("=")
        if key:
            labels[key] = value
    arch = str(info.get("Architecture") or "").lower()
    return types_pb2.NodeDescription(
        hostname=str(info.get("Name") or ""),
        platform=types_pb2.Platform(
            os=str(info.get("OSType") or "").lower(), architecture=_ARCH.get(arch, arch)
        ),
        resources=types_pb2.Resources(
            nano_cpus=int(info.get("NCPU") or 0) * 1_000_000_000,
            memory_bytes=int(info.get("MemTotal") or 0),
        ),
        engine=types_pb2.EngineDescription(
            engine_version=str(info.get("ServerVersion") or ""), labels=labels
        ),
    )


class DockerExecutor:
    """Runs this node's tasks as Docker containers. Loop-confined; start() before use."""

    def __init__(
        self,
        node_id: str,
        *,
        base_url: str | None = None,
        workers: int = DEFAULT_WORKERS,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        pull_timeout: float = DEFAULT_PULL_TIMEOUT,
    ) -> None:
        if not node_id:
            raise FailedPrecondition("docker executor needs the node id")
        self.node_id = node_id
        self.adapter = DockerAdapter(
            base_url, workers=workers, call_timeout=call_timeout, pull_timeout=pull_timeout
        )
        self.hub = EventHub()
        self.images = PresentImages()
        # As many new tasks between create and start as the pool has threads (admission.py).
        self.admission = AdmissionGate(window=workers)
        self.events = EventStream(self.hub, node_id, lambda: self.adapter.new_client(timeout=None))
        self._started = False

    async def start(self) -> None:
        """Start following the engine's events for this node's containers."""
        if not self._started:
            self.events.start()
            self._started = True
            _log.info("docker executor started", node_id=self.node_id)

    async def close(self) -> None:
        """Stop the event thread and the engine call pool. Containers keep running."""
        if self._started:
            await self.events.stop()
            self._started = False
        await self.adapter.close()

    async def __aenter__(self) -> DockerExecutor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the Executor protocol -------------------------------------------------------------

    async def describe(self) -> types_pb2.NodeDescription:
        """From `docker info`: engine hostname, OS/arch, CPUs x 1e9, memory, labels, version."""
        return describe_engine(await self.adapter.info())

    def controller(self, task: objects_pb2.Task) -> DockerController:
        """A DockerController for `task`; raises InvalidTask for a task it cannot run."""
        if not self._started:
            raise FailedPrecondition("docker executor is not started")
        return DockerController(
            self.adapter,
            self.hub,
            task,
            self.node_id,
            images=self.images,
            admission=self.admission,
        )

    async def list_containers(self) -> list[ContainerRecord]:
        """Every container of this node (any state), sorted by task id."""
        rows = await self.adapter.list_by_labels({LABEL_NODE_ID: self.node_id})
        out = []
        for row in rows:
            labels = row.get("Labels") or {}
            names = row.get("Names") or [""]
            out.append(
                ContainerRecord(
                    container_id=str(row.get("Id", "")),
                    name=str(names[0]).lstrip("/"),
                    task_id=str(labels.get(LABEL_TASK_ID, "")),
                    state=str(row.get("State", "")),
                )
            )
        out.sort(key=lambda r: (r.task_id, r.container_id))
        return out

    async def list_task_ids(self) -> frozenset[str]:
        """Ids of the tasks that have a container on this node."""
        return frozenset(r.task_id for r in await self.list_containers() if r.task_id)

    async def prune(self, keep: Collection[str]) -> list[str]:
        """Force-remove this node's containers whose task is not in `keep`."""
        keep_set = set(keep)
        removed: set[str] = set()
        for record in await self.list_containers():
            if record.task_id in keep_set:
                continue
            await self.adapter.remove(record.container_id)
            if record.task_id:
                removed.add(record.task_id)
            _log.info(
                "removed container of unknown task",
                task_id=record.task_id,
                container=record.name,
            )
        return sorted(removed)


if TYPE_CHECKING:

    def _conforms(e: DockerExecutor, c: DockerController) -> tuple[Executor, Controller]:
        return e, c  # mypy checks both protocols here


__all__ = ["ContainerRecord", "DockerExecutor", "describe_engine"]
