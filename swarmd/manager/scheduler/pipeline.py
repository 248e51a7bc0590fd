"""The filter pipeline: which nodes can take a task, and in words why the others cannot.

Manager layer, pure (swarmkit scheduler/pipeline.go). The planner evaluates each group of
identical tasks once over all nodes, re-checks single nodes as it places tasks on them, and
evaluates again for the tasks left over, so their reason reflects the nodes as they were filled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarmd.api import objects_pb2
from swarmd.manager.scheduler.filters import Filter, default_filters
from swarmd.manager.scheduler.nodeinfo import NodeInfo

NO_SUITABLE_NODE = "no suitable node"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of running the pipeline over some nodes for one task.

    Attributes:
        passing: the nodes that passed every applicable filter, in the order given.
        failures: (explanation, node count) per filter that rejected nodes, in filter order;
            each node is counted once, against the first filter it failed.
    """

    passing: tuple[NodeInfo, ...]
    failures: tuple[tuple[str, int], ...]

    @property
    def reason(self) -> str:
        """`no suitable node (insufficient memory on 2 nodes; node not ready on 1 node)`."""
        if not self.failures:
            if self.passing:
                return NO_SUITABLE_NODE
            return f"{NO_SUITABLE_NODE} (no nodes in the cluster)"
        return f"{NO_SUITABLE_NODE} ({'; '.join(text for text, _ in self.failures)})"


class Pipeline:
    """Runs filters in order; a node passes when every filter that applies to the task passes.

    Stateful like its filters: `evaluate()` (or `set_task()`) binds a task, `check()` then
    answers for that task.
    """

    def __init__(self, filters: Sequence[Filter] | None = None) -> None:
        self._filters: list[Filter] = list(default_filters() if filters is None else filters)
        self._active: list[Filter] = []

    def set_task(self, task: objects_pb2.Task) -> None:
        """Bind a task: select the filters that apply to it and reset what they remember."""
        self._active = [f for f in self._filters if f.set_task(task)]

    def first_failure(self, node: NodeInfo) -> Filter | None:
        """The first applicable filter the node fails, or None when it passes them all."""
        at = self._failing_index(node)
        return None if at < 0 else self._active[at]

    def check(self, node: NodeInfo) -> bool:
        """Whether the node passes every filter for the bound task."""
        return self._failing_index(node) < 0

    def evaluate(self, task: objects_pb2.Task, nodes: Iterable[NodeInfo]) -> Evaluation:
        """Bind task, then check each node, counting failures per filter."""
        self.set_task(task)
        passing: list[NodeInfo] = []
        counts = [0] * len(self._active)
        for node in nodes:
            at = self._failing_index(node)
            if at < 0:
                passing.append(node)
            else:
                counts[at] += 1
        failures = tuple((f.explain(n), n) for f, n in zip(self._active, counts, strict=True) if n)
        return Evaluation(tuple(passing), failures)

    def _failing_index(self, node: NodeInfo) -> int:
        for at, f in enumerate(self._active):
            if not f.check(node):
                return at
        return -1


__all__ = ["NO_SUITABLE_NODE", "Evaluation", "Pipeline"]
