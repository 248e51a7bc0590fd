"""The systems the workload benchmark compares, behind one small interface.

Used by bench/workload.py. `SwarmdSystem` drives swarmd through the Control API (grpc.aio, unix
socket); `DockerSwarmSystem` drives Docker Swarm mode in the local dockerd through the Docker
SDK's low-level client; `Engine` is the raw floor: the same containers created and started
straight on dockerd from as many threads as swarmd's engine pool has (DEFAULT_WORKERS of
swarmd/dockerexec/adapter.py), and the container reads every system's timings
share (running containers by label, created/started timestamps, forced removal).

Task states are normalised to SwarmKit's lowercase names so the benchmark can compare the
systems' task lifecycles (e.g. when every task was assigned versus when all ran).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf import duration_pb2

from bench.swarmd_cluster import SwarmdCluster
from swarmd.api import control_pb2, specs_pb2, types_pb2
from swarmd.dockerexec.adapter import DEFAULT_WORKERS

BENCH_LABEL = "swarmd.bench"
RAW_LABEL = "swarmd.bench.raw"
COMMAND = ["sleep", "100000"]
# SwarmKit's task state order; both systems' states map onto it.
STATE_ORDER = [
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
    "complete",
    "shutdown",
    "failed",
    "rejected",
    "remove",
    "orphaned",
]
RANK = {name: i for i, name in enumerate(STATE_ORDER)}


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task as the benchmark sees it, whatever the system."""

    id: str
    node_id: str
    desired_running: bool
    state: str

    @property
    def running(self) -> bool:
        return self.desired_running and self.state == "running"

    @property
    def assigned(self) -> bool:
        """Placed on a node and not yet finished (assigned ... running)."""
        rank = RANK.get(self.state, 0)
        return self.desired_running and RANK["assigned"] <= rank <= RANK["running"]


class System(Protocol):
    """A replicated-service orchestrator under test."""

    name: str

    async def create(self, name: str, replicas: int) -> str: ...
    async def scale(self, service_id: str, replicas: int) -> None: ...
    async def tasks(self, service_id: str) -> list[TaskView]: ...
    async def remove(self, service_id: str) -> None: ...
    def service_label(self, service_id: str) -> str: ...


def _docker_time(value: str) -> float:
    """Unix time of a dockerd RFC 3339 timestamp with nanoseconds ("...T08:42:29.123456789Z")."""
    stamp = value.rstrip("Z")
    base, _, frac = stamp.partition(".")
    parsed = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return parsed.timestamp() + (float("0." + frac) if frac else 0.0)


@dataclass(frozen=True, slots=True)
class ContainerTimes:
    """When dockerd created and started each container (unix time)."""

    created: list[float]
    started: list[float]


class Engine:
    """dockerd through the Docker SDK: the raw floor and the container reads of every system."""

    def __init__(self, image_id: str, threads: int = DEFAULT_WORKERS) -> None:
        import docker

        self.client = docker.from_env(timeout=120, max_pool_size=threads + 8)
        self.api: Any = self.client.api  # the SDK's low-level client is untyped
        self.image_id = image_id
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="bench-docker")

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, lambda: fn(*args, **kwargs)
        )

    # ---- the raw floor

    def _run_one(self, run_id: str) -> str:
        ctr = self.api.create_container(self.image_id, COMMAND, labels={RAW_LABEL: run_id})
        self.api.start(ctr["Id"])
        return str(ctr["Id"])

    async def run_containers(self, n: int, run_id: str) -> list[str]:
        """Create and start n containers in parallel on the pool; their ids."""
        return list(await asyncio.gather(*(self.call(self._run_one, run_id) for _ in range(n))))

    async def stop_containers(self, ids: Iterable[str]) -> None:
        """Stop with no grace (SIGKILL at once), in parallel on the pool."""
        await asyncio.gather(*(self.call(self.api.stop, i, timeout=0) for i in ids))

    async def kill(self, container_id: str) -> None:
        await self.call(self.api.kill, container_id)

    # ---- reads and clean-up shared by all systems

    async def running(self, label: str) -> list[str]:
        """Ids of the running containers carrying `label` (key=value)."""
        found = await asyncio.to_thread(
            self.api.containers, filters={"label": label, "status": "running"}, quiet=True
        )
        return [c["Id"] for c in found]

    async def times(self, label: str) -> ContainerTimes:
        ids = [
            c["Id"]
            for c in await asyncio.to_thread(
                self.api.containers, all=True, filters={"label": label}, quiet=True
            )
        ]
        created: list[float] = []
        started: list[float] = []
        for info in await asyncio.gather(*(self.call(self._inspect, i) for i in ids)):
            if info is None:
                continue
            created.append(_docker_time(info["Created"]))
            if not info["State"]["StartedAt"].startswith("0001"):
                started.append(_docker_time(info["State"]["StartedAt"]))
        return ContainerTimes(created, started)

    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = self.api.inspect_container(container_id)
        except Exception:  # removed meanwhile
            return None
        return info

    def _remove(self, container_id: str) -> None:
        with contextlib.suppress(Exception):
            self.api.remove_container(container_id, force=True)

    async def remove_labelled(self, label: str) -> int:
        """Force-remove every container with `label`, in parallel; how many there were."""
        ids = [
            c["Id"]
            for c in await asyncio.to_thread(
                self.api.containers, all=True, filters={"label": label}, quiet=True
            )
        ]
        await asyncio.gather(*(self.call(self._remove, i) for i in ids))
        return len(ids)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()


class SwarmdSystem:
    """swarmd through its Control API."""

    name = "swarmd"

    def __init__(self, cluster: SwarmdCluster, image: str) -> None:
        self.cluster = cluster
        self.image = image

    def spec(self, name: str, replicas: int) -> specs_pb2.ServiceSpec:
        zero = duration_pb2.Duration()
        return specs_pb2.ServiceSpec(
            annotations=types_pb2.Annotations(name=name, labels={BENCH_LABEL: "1"}),
            task=specs_pb2.TaskSpec(
                container=specs_pb2.ContainerSpec(
                    image=self.image, command=COMMAND, stop_grace_period=zero
                ),
                restart=types_pb2.RestartPolicy(
                    condition=types_pb2.RestartPolicy.RESTART_CONDITION_ANY,
                    delay=zero,
                    window=zero,
                ),
            ),
            replicated=specs_pb2.ReplicatedService(replicas=replicas),
        )

    async def create(self, name: str, replicas: int) -> str:
        resp = await self.cluster.stub.CreateService(
            control_pb2.CreateServiceRequest(spec=self.spec(name, replicas)), timeout=30
        )
        return str(resp.service.id)

    async def scale(self, service_id: str, replicas: int) -> None:
        stub = self.cluster.stub
        svc = (
            await stub.GetService(control_pb2.GetServiceRequest(service_id=service_id), timeout=30)
        ).service
        spec = specs_pb2.ServiceSpec()
        spec.CopyFrom(svc.spec)
        spec.replicated.replicas = replicas
        await stub.UpdateService(
            control_pb2.UpdateServiceRequest(
                service_id=service_id, service_version=svc.meta.version, spec=spec
            ),
            timeout=30,
        )

    async def tasks(self, service_id: str) -> list[TaskView]:
        req = control_pb2.ListTasksRequest(service_ids=[service_id])
        resp = await self.cluster.stub.ListTasks(req, timeout=30)
        return [
            TaskView(
                t.id,
                t.node_id,
                t.desired_state <= types_pb2.TASK_STATE_RUNNING,
                types_pb2.TaskState.Name(t.status.state).removeprefix("TASK_STATE_").lower(),
            )
            for t in resp.tasks
        ]

    async def remove(self, service_id: str) -> None:
        await self.cluster.stub.RemoveService(
            control_pb2.RemoveServiceRequest(service_id=service_id), timeout=30
        )

    def service_label(self, service_id: str) -> str:
        return f"swarmd.service.id={service_id}"


class DockerSwarmSystem:
    """Docker Swarm mode of the local dockerd, through the Docker SDK."""

    name = "docker-swarm"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.api = engine.api

    async def create(self, name: str, replicas: int) -> str:
        from docker.types import ContainerSpec, RestartPolicy, ServiceMode, TaskTemplate

        template = TaskTemplate(
            container_spec=ContainerSpec(
                image=self.engine.image_id, command=COMMAND, stop_grace_period=0
            ),
            restart_policy=RestartPolicy(condition="any", delay=0),
        )
        resp = await asyncio.to_thread(
            self.api.create_service,
            template,
            name=name,
            labels={BENCH_LABEL: "1"},
            mode=ServiceMode("replicated", replicas=replicas),
        )
        return str(resp["ID"])

    async def scale(self, service_id: str, replicas: int) -> None:
        from docker.types import ServiceMode

        def update() -> None:
            svc = self.api.inspect_service(service_id)
            self.api.update_service(
                service_id,
                svc["Version"]["Index"],
                mode=ServiceMode("replicated", replicas=replicas),
                fetch_current_spec=True,
            )

        await asyncio.to_thread(update)

    async def tasks(self, service_id: str) -> list[TaskView]:
        raw = await asyncio.to_thread(self.api.tasks, filters={"service": service_id})
        return [
            TaskView(
                t["ID"],
                t.get("NodeID", ""),
                t.get("DesiredState") == "running",
                t["Status"]["State"],
            )
            for t in raw
        ]

    async def remove(self, service_id: str) -> None:
        await asyncio.to_thread(self.api.remove_service, service_id)

    def service_label(self, service_id: str) -> str:
        return f"com.docker.swarm.service.id={service_id}"
