"""NodeInfo: one node as the scheduler sees it, with the tasks that hold resources on it.

Manager layer, pure. `NodeSet` (nodeset.py) keeps one NodeInfo per node from store events; the
planner clones them to try placements; the filters read them. A NodeInfo does not decide which
tasks count (NodeSet does: tasks from ASSIGNED to RUNNING); it keeps its sums right as tasks
are added, replaced and removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from swarmd.api import objects_pb2, types_pb2

# swarmkit scheduler.go: a node where a service failed this often recently is tried last for it.
FAULTY_FAILURES = 5
FAULTY_WINDOW = 300.0  # seconds

HostPort = tuple[int, int]
"""(PortConfig.Protocol value, published port) of a host-mode port."""

_PROTOCOL_NAMES: dict[int, str] = {
    types_pb2.PortConfig.PROTOCOL_TCP: "tcp",
    types_pb2.PortConfig.PROTOCOL_UDP: "udp",
    types_pb2.PortConfig.PROTOCOL_SCTP: "sctp",
}


def host_ports(task: objects_pb2.Task) -> tuple[HostPort, ...]:
    """The host-mode ports a task publishes on its node, in spec order, without duplicates.

    Ports published in ingress mode, and host-mode ports without a published port (the engine
    picks a free one), claim nothing. Both the allocated endpoint and the endpoint spec are
    read, since the (inert) allocator may not have copied the spec's ports yet.
    """
    seen: dict[HostPort, None] = {}
    for port in (*task.endpoint.ports, *task.endpoint.spec.ports):
        if port.publish_mode == types_pb2.PortConfig.PUBLISH_MODE_HOST and port.published_port:
            seen[(int(port.protocol), port.published_port)] = None
    return tuple(seen)


def format_host_port(port: HostPort) -> str:
    """`8080/tcp`."""
    protocol, number = port
    return f"{number}/{_PROTOCOL_NAMES.get(protocol, str(protocol))}"


def reservations(task: objects_pb2.Task) -> tuple[int, int]:
    """(nano CPUs, memory bytes) the task reserves."""
    r = task.spec.resources.reservations
    return max(0, r.nano_cpus), max(0, r.memory_bytes)


class NodeInfo:
    """A node plus the tasks holding resources on it: per-service counts, reservations, ports.

    Not loop-aware, not thread-safe; owned by one NodeSet or one planning pass.
    """

    __slots__ = (
        "_failures",
        "_host_ports",
        "_node",
        "_reserved_cpu",
        "_reserved_memory",
        "_services",
        "_tasks",
    )

    def __init__(self, node: objects_pb2.Node, tasks: Iterable[objects_pb2.Task] = ()) -> None:
        self._node = node
        self._tasks: dict[str, objects_pb2.Task] = {}
        self._services: Counter[str] = Counter()
        self._reserved_cpu = 0
        self._reserved_memory = 0
        self._host_ports: Counter[HostPort] = Counter()
        # service id -> failed task id -> when it failed (seconds since the epoch).
        self._failures: dict[str, dict[str, float]] = {}
        for task in tasks:
            self.add_task(task)

    @property
    def id(self) -> str:
        """The node id."""
        return self._node.id

    @property
    def node(self) -> objects_pb2.Node:
        """The node object (read-only: shared with clones)."""
        return self._node

    def set_node(self, node: objects_pb2.Node) -> None:
        """Replace the node object (an update event); the tasks stay."""
        self._node = node

    @property
    def tasks(self) -> Mapping[str, objects_pb2.Task]:
        """The tasks counted on the node, by id."""
        return self._tasks

    @property
    def total_tasks(self) -> int:
        """Number of tasks on the node."""
        return len(self._tasks)

    def service_tasks(self, service_id: str) -> int:
        """Number of the service's tasks on the node."""
        return self._services[service_id]

    @property
    def reserved_cpu(self) -> int:
        """Nano CPUs reserved by the node's tasks."""
        return self._reserved_cpu

    @property
    def reserved_memory(self) -> int:
        """Memory bytes reserved by the node's tasks."""
        return self._reserved_memory

    @property
    def available_cpu(self) -> int:
        """Nano CPUs the node reports minus those reserved (may be negative if over-committed
        by something other than the scheduler, such as a node that shrank)."""
        return self._node.description.resources.nano_cpus - self._reserved_cpu

    @property
    def available_memory(self) -> int:
        """Memory bytes the node reports minus those reserved."""
        return self._node.description.resources.memory_bytes - self._reserved_memory

    def uses_host_port(self, port: HostPort) -> bool:
        """Whether a task on the node already publishes this host-mode port."""
        return self._host_ports[port] > 0

    def add_task(self, task: objects_pb2.Task) -> None:
        """Count the task on the node; a task already counted (same id) is replaced."""
        self.remove_task(task.id)
        self._tasks[task.id] = task
        self._account(task, 1)

    def remove_task(self, task_id: str) -> objects_pb2.Task | None:
        """Stop counting the task; returns it, or None if it was not counted."""
        task = self._tasks.pop(task_id, None)
        if task is not None:
            self._account(task, -1)
        return task

    def record_failure(self, task: objects_pb2.Task, at: float) -> None:
        """Remember that the task failed here at `at`; recording a task again changes nothing.

        Failures older than FAULTY_WINDOW before the newest one are forgotten.
        """
        failed = self._failures.setdefault(task.service_id, {})
        failed.setdefault(task.id, at)
        horizon = max(failed.values()) - FAULTY_WINDOW
        for task_id in [t for t, when in failed.items() if when < horizon]:
            del failed[task_id]

    def is_faulty(self, service_id: str, now: float) -> bool:
        """Whether the service failed at least FAULTY_FAILURES times here in the last
        FAULTY_WINDOW seconds."""
        failed = self._failures.get(service_id)
        if not failed:
            return False
        return sum(1 for when in failed.values() if when >= now - FAULTY_WINDOW) >= FAULTY_FAILURES

    def clone(self) -> NodeInfo:
        """An independent copy of the counts (task and node messages are shared, not copied;
        so is the failure history, which planning only reads)."""
        other = NodeInfo.__new__(NodeInfo)
        other._node = self._node
        other._tasks = dict(self._tasks)
        other._services = self._services.copy()
        other._reserved_cpu = self._reserved_cpu
        other._reserved_memory = self._reserved_memory
        other._host_ports = self._host_ports.copy()
        other._failures = self._failures
        return other

    def _account(self, task: objects_pb2.Task, sign: int) -> None:
        cpu, memory = reservations(task)
        self._reserved_cpu += sign * cpu
        self._reserved_memory += sign * memory
        self._services[task.service_id] += sign
        if self._services[task.service_id] <= 0:
            del self._services[task.service_id]
        for port in host_ports(task):
            self._host_ports[port] += sign
            if self._host_ports[port] <= 0:
                del self._host_ports[port]

    def __repr__(self) -> str:
        return (
            f"NodeInfo({self.id!r}, tasks={self.total_tasks}, cpu={self.available_cpu}, "
            f"memory={self.available_memory})"
        )


__all__ = [
    "FAULTY_FAILURES",
    "FAULTY_WINDOW",
    "HostPort",
    "NodeInfo",
    "format_host_port",
    "host_ports",
    "reservations",
]
