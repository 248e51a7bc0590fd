"""The scheduler: assigns PENDING tasks to nodes (swarmkit manager/scheduler; README.md here).

Manager layer. Pure pieces: `NodeInfo`/`NodeSet` (the scheduler's view of nodes and their
tasks), the filters and `Pipeline` (which nodes fit, and why the others do not), `plan()` (the
decisions as a value). `Scheduler` is the async shell the manager runs on the leader.
"""

from swarmd.manager.scheduler.filters import (
    ConstraintFilter,
    Filter,
    HostPortFilter,
    MaxReplicasFilter,
    PlatformFilter,
    ReadyFilter,
    ResourceFilter,
    default_filters,
)
from swarmd.manager.scheduler.nodeinfo import NodeInfo
from swarmd.manager.scheduler.nodeset import NodeSet, holds_resources, is_cancelled, is_pending
from swarmd.manager.scheduler.pipeline import NO_SUITABLE_NODE, Evaluation, Pipeline
from swarmd.manager.scheduler.planner import Assignment, Plan, Unplaced, plan
from swarmd.manager.scheduler.scheduler import ASSIGNED_MESSAGE, CANCELLED_MESSAGE, Scheduler

__all__ = [
    "ASSIGNED_MESSAGE",
    "CANCELLED_MESSAGE",
    "NO_SUITABLE_NODE",
    "Assignment",
    "ConstraintFilter",
    "Evaluation",
    "Filter",
    "HostPortFilter",
    "MaxReplicasFilter",
    "NodeInfo",
    "NodeSet",
    "Pipeline",
    "Plan",
    "PlatformFilter",
    "ReadyFilter",
    "ResourceFilter",
    "Scheduler",
    "Unplaced",
    "default_filters",
    "holds_resources",
    "is_cancelled",
    "is_pending",
    "plan",
]
