"""The scheduler's node filters: one small class per placement rule (swarmkit scheduler/filter.go).

Manager layer, pure: no store, no I/O. The `Pipeline` (pipeline.py) runs them in order over the
candidate nodes of a task and joins their explanations into the reason a user reads
("no suitable node (insufficient memory on 2 nodes; ...)").

The contract of a `Filter`:
- `set_task(task)` is called first, for every task (or group of identical tasks) to place. It
  says whether the rule applies at all (a task without reservations skips the resource rule)
  and forgets what earlier `check` calls saw.
- `check(node)` answers for one node; it may be called many times per task, also for the same
  node (the planner re-checks a node after placing a task of the group on it).
- `explain(n)` describes the failures: n is how many nodes the pipeline counted against this
  filter since `set_task`. Filters that tell causes apart (cpu or memory, which constraint)
  remember the cause per node id, so re-checking a node never counts it twice, and render
  `<cause> on <k> node(s)` per cause, most frequent first.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from swarmd.api import objects_pb2, specs_pb2
from swarmd.manager import constraint
from swarmd.manager.scheduler.nodeinfo import (
    HostPort,
    NodeInfo,
    format_host_port,
    host_ports,
    reservations,
)


class Filter(Protocol):
    """One placement rule: does it apply to the task, does a node pass, why nodes failed."""

    def set_task(self, task: objects_pb2.Task) -> bool:
        """Prepare for task; False when the rule does not apply to it (then never checked)."""
        ...

    def check(self, node: NodeInfo) -> bool:
        """Whether the node passes the rule for the task given to set_task."""
        ...

    def explain(self, nodes: int) -> str:
        """Why `nodes` nodes failed, in words ("insufficient memory on 2 nodes")."""
        ...


def count_nodes(n: int) -> str:
    """`1 node`, `3 nodes`."""
    return f"{n} node" if n == 1 else f"{n} nodes"


class _Causes:
    """The cause of failure recorded per node id since the last reset."""

    __slots__ = ("_by_node",)

    def __init__(self) -> None:
        self._by_node: dict[str, str] = {}

    def reset(self) -> None:
        self._by_node.clear()

    def passed(self, node_id: str) -> bool:
        self._by_node.pop(node_id, None)
        return True

    def failed(self, node_id: str, cause: str) -> bool:
        self._by_node[node_id] = cause
        return False

    def render(self, nodes: int, fallback: str) -> str:
        if not self._by_node:
            return f"{fallback} on {count_nodes(nodes)}"
        counts = Counter(self._by_node.values())
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return "; ".join(f"{cause} on {count_nodes(n)}" for cause, n in ranked)


class ReadyFilter:
    """The node is READY and ACTIVE: not down or disconnected, not paused, not drained."""

    def __init__(self) -> None:
        self._causes = _Causes()

    def set_task(self, task: objects_pb2.Task) -> bool:
        self._causes.reset()
        return True

    def check(self, node: NodeInfo) -> bool:
        n = node.node
        if n.status.state != objects_pb2.NodeStatus.STATE_READY:
            return self._causes.failed(node.id, "node not ready")
        if n.spec.availability == specs_pb2.NodeSpec.AVAILABILITY_PAUSE:
            return self._causes.failed(node.id, "node paused")
        if n.spec.availability == specs_pb2.NodeSpec.AVAILABILITY_DRAIN:
            return self._causes.failed(node.id, "node drained")
        return self._causes.passed(node.id)

    def explain(self, nodes: int) -> str:
        return self._causes.render(nodes, "node not ready")


class ResourceFilter:
    """The node's CPUs and memory, minus what its tasks reserve, cover the task's reservations.

    Only reservations count, never actual usage (as in swarmkit); a node that reports no
    resources has none to give.
    """

    def __init__(self) -> None:
        self._cpu = 0
        self._memory = 0
        self._causes = _Causes()

    def set_task(self, task: objects_pb2.Task) -> bool:
        self._causes.reset()
        self._cpu, self._memory = reservations(task)
        return bool(self._cpu or self._memory)

    def check(self, node: NodeInfo) -> bool:
        short_cpu = self._cpu > node.available_cpu
        short_memory = self._memory > node.available_memory
        if short_cpu and short_memory:
            return self._causes.failed(node.id, "insufficient cpu and memory")
        if short_memory:
            return self._causes.failed(node.id, "insufficient memory")
        if short_cpu:
            return self._causes.failed(node.id, "insufficient cpu")
        return self._causes.passed(node.id)

    def explain(self, nodes: int) -> str:
        return self._causes.render(nodes, "insufficient resources")


class ConstraintFilter:
    """The node satisfies every placement constraint of the task (AND)."""

    def __init__(self) -> None:
        self._constraints: tuple[constraint.Constraint, ...] = ()
        self._invalid: constraint.ConstraintError | None = None
        self._causes = _Causes()

    def set_task(self, task: objects_pb2.Task) -> bool:
        self._causes.reset()
        exprs = task.spec.placement.constraints
        self._invalid = None
        try:
            self._constraints = constraint.parse_constraints(exprs)
        except constraint.ConstraintError as err:
            # The control API rejects these; a task that still has one (written by an older
            # version, or directly) must not land anywhere its owner did not mean.
            self._constraints = ()
            self._invalid = err
        return bool(exprs)

    def check(self, node: NodeInfo) -> bool:
        if self._invalid is not None:
            return self._causes.failed(node.id, str(self._invalid))
        for c in self._constraints:
            if not c.matches(node.node):
                return self._causes.failed(node.id, f"constraint {c} unmet")
        return self._causes.passed(node.id)

    def explain(self, nodes: int) -> str:
        return self._causes.render(nodes, "constraints unmet")


# The engine reports `uname -m` names, images and specs use Go's GOARCH names.
_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "armv7l": "arm",
    "i386": "386",
    "i686": "386",
}


def _arch(name: str) -> str:
    folded = name.casefold()
    return _ARCH_ALIASES.get(folded, folded)


class PlatformFilter:
    """The node's OS and architecture are among the platforms the task names (if it names any).

    An empty os or architecture in a wanted platform matches any.
    """

    def __init__(self) -> None:
        self._wanted: tuple[tuple[str, str], ...] = ()
        self._causes = _Causes()

    def set_task(self, task: objects_pb2.Task) -> bool:
        self._causes.reset()
        self._wanted = tuple(
            (p.os.casefold(), _arch(p.architecture)) for p in task.spec.placement.platforms
        )
        return bool(self._wanted)

    def check(self, node: NodeInfo) -> bool:
        platform = node.node.description.platform
        os, arch = platform.os.casefold(), _arch(platform.architecture)
        for want_os, want_arch in self._wanted:
            if (not want_os or want_os == os) and (not want_arch or want_arch == arch):
                return self._causes.passed(node.id)
        shown = f"{platform.os or 'unknown'}/{platform.architecture or 'unknown'}"
        return self._causes.failed(node.id, f"unsupported platform {shown}")

    def explain(self, nodes: int) -> str:
        return self._causes.render(nodes, "unsupported platform")


class HostPortFilter:
    """None of the task's host-mode published ports is already published on the node."""

    def __init__(self) -> None:
        self._ports: tuple[HostPort, ...] = ()
        self._causes = _Causes()

    def set_task(self, task: objects_pb2.Task) -> bool:
        self._causes.reset()
        self._ports = host_ports(task)
        return bool(self._ports)

    def check(self, node: NodeInfo) -> bool:
        for port in self._ports:
            if node.uses_host_port(port):
                return self._causes.failed(node.id, f"host port {format_host_port(port)} in use")
        return self._causes.passed(node.id)

    def explain(self, nodes: int) -> str:
        return self._causes.render(nodes, "host ports in use")


class MaxReplicasFilter:
    """The node runs fewer than placement.max_replicas tasks of the task's service."""

    def __init__(self) -> None:
        self._max = 0
        self._service_id = ""

    def set_task(self, task: objects_pb2.Task) -> bool:
        self._max = task.spec.placement.max_replicas
        self._service_id = task.service_id
        return self._max > 0

    def check(self, node: NodeInfo) -> bool:
        return node.service_tasks(self._service_id) < self._max

    def explain(self, nodes: int) -> str:
        return f"max replicas per node ({self._max}) reached on {count_nodes(nodes)}"


def default_filters() -> list[Filter]:
    """The filters in swarmkit's order: availability first, then resources, constraints,
    platform, host ports, and the per-node replica cap."""
    return [
        ReadyFilter(),
        ResourceFilter(),
        ConstraintFilter(),
        PlatformFilter(),
        HostPortFilter(),
        MaxReplicasFilter(),
    ]


__all__ = [
    "ConstraintFilter",
    "Filter",
    "HostPortFilter",
    "MaxReplicasFilter",
    "PlatformFilter",
    "ReadyFilter",
    "ResourceFilter",
    "count_nodes",
    "default_filters",
]
