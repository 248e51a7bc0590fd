"""Builders shared by the scheduler tests: nodes and tasks the way the cluster would hold them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.manager.scheduler import NodeInfo

CPU = 1_000_000_000  # nano CPUs in one CPU
MIB = 1 << 20
GIB = 1 << 30

READY = objects_pb2.NodeStatus.STATE_READY
DOWN = objects_pb2.NodeStatus.STATE_DOWN
ACTIVE = specs_pb2.NodeSpec.AVAILABILITY_ACTIVE
PAUSE = specs_pb2.NodeSpec.AVAILABILITY_PAUSE
DRAIN = specs_pb2.NodeSpec.AVAILABILITY_DRAIN
HOST = types_pb2.PortConfig.PUBLISH_MODE_HOST
INGRESS = types_pb2.PortConfig.PUBLISH_MODE_INGRESS
TCP = types_pb2.PortConfig.PROTOCOL_TCP
UDP = types_pb2.PortConfig.PROTOCOL_UDP


def node(
    nid: str,
    *,
    cpus: float = 4,
    memory: int = 8 * GIB,
    state: int = READY,
    availability: int = ACTIVE,
    labels: Mapping[str, str] | None = None,
    engine_labels: Mapping[str, str] | None = None,
    manager: bool = False,
    hostname: str | None = None,
    addr: str = "",
    os: str = "linux",
    arch: str = "x86_64",
) -> objects_pb2.Node:
    n = objects_pb2.Node(id=nid)
    n.status.state = state  # type: ignore[assignment]
    n.status.addr = addr
    n.spec.availability = availability  # type: ignore[assignment]
    n.spec.annotations.labels.update(labels or {})
    n.description.hostname = hostname if hostname is not None else f"host-{nid}"
    n.description.engine.labels.update(engine_labels or {})
    n.description.resources.nano_cpus = int(cpus * CPU)
    n.description.resources.memory_bytes = memory
    n.description.platform.os = os
    n.description.platform.architecture = arch
    n.role = types_pb2.NODE_ROLE_MANAGER if manager else types_pb2.NODE_ROLE_WORKER
    return n


def task(
    tid: str,
    service: str = "svc",
    *,
    node_id: str = "",
    state: int = types_pb2.TASK_STATE_PENDING,
    desired: int = types_pb2.TASK_STATE_RUNNING,
    cpus: float = 0,
    memory: int = 0,
    constraints: Iterable[str] = (),
    spread: Iterable[str] = (),
    platforms: Iterable[tuple[str, str]] = (),
    max_replicas: int = 0,
    host_ports: Iterable[int] = (),
    slot: int = 0,
    spec_version: int = 1,
) -> objects_pb2.Task:
    t = objects_pb2.Task(id=tid, service_id=service, node_id=node_id, slot=slot)
    t.status.state = state  # type: ignore[assignment]
    t.desired_state = desired  # type: ignore[assignment]
    t.spec_version.index = spec_version
    t.spec.container.image = "swarmd-busybox:latest"
    t.spec.resources.reservations.nano_cpus = int(cpus * CPU)
    t.spec.resources.reservations.memory_bytes = memory
    placement = t.spec.placement
    placement.constraints.extend(constraints)
    for descriptor in spread:
        placement.preferences.add().spread.spread_descriptor = descriptor
    for os, arch in platforms:
        placement.platforms.add(os=os, architecture=arch)
    placement.max_replicas = max_replicas
    for port in host_ports:
        t.endpoint.spec.ports.add(
            protocol=TCP, target_port=80, published_port=port, publish_mode=HOST
        )
    return t


def running(tid: str, service: str, node_id: str, **kw: object) -> objects_pb2.Task:
    """A task already placed and running on node_id."""
    return task(tid, service, node_id=node_id, state=types_pb2.TASK_STATE_RUNNING, **kw)  # type: ignore[arg-type]


def infos(
    nodes: Iterable[objects_pb2.Node], tasks: Iterable[objects_pb2.Task] = ()
) -> dict[str, NodeInfo]:
    """NodeInfos by id, each with the given tasks whose node_id names it."""
    by_id = {n.id: NodeInfo(n) for n in nodes}
    for t in tasks:
        by_id[t.node_id].add_task(t)
    return by_id
