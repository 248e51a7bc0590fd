"""Tasks as the orchestrators see them: creation from a service, slots, dirtiness, restart policy.

Manager layer, pure. The replicated and global orchestrators, the restart supervisor and the
default updater build new tasks with `new_task` and ask the questions the task model
(swarmkit design/task_model.md) needs answered: which service mode, which slot or node a task
fills, whether its spec is out of date, which restart policy applies, which task is newest.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from swarmd.api import objects_pb2, types_pb2
from swarmd.identity import new_id
from swarmd.manager.controlapi import defaults
from swarmd.manager.store import ReadTx

PENDING_MESSAGE = "pending task scheduling"

RUNNING = types_pb2.TASK_STATE_RUNNING
READY = types_pb2.TASK_STATE_READY
SHUTDOWN = types_pb2.TASK_STATE_SHUTDOWN
REMOVE = types_pb2.TASK_STATE_REMOVE
COMPLETE = types_pb2.TASK_STATE_COMPLETE
ASSIGNED = types_pb2.TASK_STATE_ASSIGNED
ORPHANED = types_pb2.TASK_STATE_ORPHANED
FAILED = types_pb2.TASK_STATE_FAILED
REJECTED = types_pb2.TASK_STATE_REJECTED
PENDING = types_pb2.TASK_STATE_PENDING

# A slot (replicated services) or a node (global services) of one service: swarmkit SlotTuple.
SlotKey = tuple[str, int, str]


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp for a Clock.now() value."""
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1_000_000_000))
    return ts


def seconds(ts: timestamp_pb2.Timestamp) -> float:
    """A Timestamp as float seconds since the epoch (0.0 when unset)."""
    return ts.seconds + ts.nanos / 1e9


def is_replicated(service: objects_pb2.Service | None) -> bool:
    """Whether the service exists and runs a fixed number of replicas."""
    return service is not None and service.spec.WhichOneof("mode") == "replicated"


def is_global(service: objects_pb2.Service | None) -> bool:
    """Whether the service exists and runs one task per eligible node."""
    return service is not None and service.spec.WhichOneof("mode") == "global"


def new_task(
    service: objects_pb2.Service,
    slot: int,
    node_id: str,
    now: float,
    cluster: objects_pb2.Cluster | None = None,
) -> objects_pb2.Task:
    """A new task of the service, PENDING and desired RUNNING, not yet in the store.

    Replicated tasks carry their slot (1..N) and no node; global tasks carry slot 0 and the node
    they must run on. There is no allocator stage, so tasks start in PENDING, waiting for the
    scheduler (which validates pre-assigned global tasks as well).

    Args:
        service: the service, as read from the store (its meta version is the spec version).
        slot: the replica slot, or 0 for a global task.
        node_id: the node of a global task, or "" for a replicated one.
        now: Clock.now() of the caller; the status timestamp.
        cluster: gives the default log driver when the task spec names none.
    """
    task = objects_pb2.Task(
        id=new_id(),
        service_id=service.id,
        slot=slot,
        node_id=node_id,
        service_revision=service.revision,
    )
    task.spec.CopyFrom(service.spec.task)
    if service.HasField("spec_version"):
        task.spec_version.CopyFrom(service.spec_version)
    else:
        task.spec_version.CopyFrom(service.meta.version)
    task.service_annotations.CopyFrom(service.spec.annotations)
    name = service.spec.annotations.name
    task.annotations.name = f"{name}.{node_id}" if node_id else f"{name}.{slot}"
    if service.HasField("endpoint"):
        task.endpoint.CopyFrom(service.endpoint)
    if service.spec.task.HasField("log_driver"):
        task.log_driver.CopyFrom(service.spec.task.log_driver)
    elif cluster is not None and cluster.spec.HasField("task_defaults_log_driver"):
        task.log_driver.CopyFrom(cluster.spec.task_defaults_log_driver)
    task.desired_state = RUNNING
    task.status.state = PENDING
    task.status.message = PENDING_MESSAGE
    task.status.timestamp.CopyFrom(timestamp(now))
    return task


def current_cluster(tx: ReadTx) -> objects_pb2.Cluster | None:
    """The cluster object (named "default"), if bootstrap created it."""
    found = tx.clusters.get_by_name(defaults.DEFAULT_CLUSTER_NAME)
    if found is not None:
        return found
    clusters = tx.clusters.list()
    return clusters[0] if clusters else None


def slot_key(task: objects_pb2.Task, service: objects_pb2.Service | None = None) -> SlotKey:
    """The slot a task fills: (service, slot, "") for replicated, (service, 0, node) for global.

    Without the service, a task with slot 0 is taken to be global.
    """
    glob = is_global(service) if service is not None else task.slot == 0
    if glob:
        return (task.service_id, 0, task.node_id)
    return (task.service_id, task.slot, "")


def is_dirty(service: objects_pb2.Service, task: objects_pb2.Task) -> bool:
    """Whether the task runs an older spec than the service's (it must be replaced).

    Compares the specs, not versions: a service update that leaves the task spec alone (a scale,
    a label on the service) does not replace tasks (swarmkit orchestrator.IsTaskDirty).
    """
    return task.spec != service.spec.task


def restart_policy(task: objects_pb2.Task) -> types_pb2.RestartPolicy:
    """The task's restart policy, with swarmkit's defaults when the spec leaves it unset."""
    if task.spec.HasField("restart"):
        return task.spec.restart
    return defaults.default_restart_policy()


def restart_delay(task: objects_pb2.Task) -> float:
    """Seconds to wait before starting a replacement of the task."""
    if task.spec.HasField("restart") and task.spec.restart.HasField("delay"):
        d = task.spec.restart.delay
        return max(0.0, d.seconds + d.nanos / 1e9)
    return float(defaults.RESTART_DELAY_SECONDS)


def status_time(task: objects_pb2.Task) -> float:
    """When the task's current status was reached: the manager's applied_at, else the agent's
    timestamp (manager clocks are more trustworthy, swarmkit restart.go); 0.0 when unknown."""
    if task.status.HasField("applied_at"):
        return seconds(task.status.applied_at)
    return seconds(task.status.timestamp)


def newest(tasks: Iterable[objects_pb2.Task]) -> objects_pb2.Task | None:
    """The task with the latest status time (ties: latest created, then highest id)."""
    best: objects_pb2.Task | None = None
    best_key: tuple[float, float, str] | None = None
    for t in tasks:
        key = (status_time(t), seconds(t.meta.created_at), t.id)
        if best_key is None or key > best_key:
            best, best_key = t, key
    return best


def stopped_on_its_own(task: objects_pb2.Task) -> bool:
    """Whether the task ended by itself (COMPLETE, FAILED, REJECTED), not by being shut down.

    Only such a task can fill a slot for good when its restart policy says not to restart it;
    a task the orchestrator shut down (a drained node) leaves its slot to be filled again.
    """
    return task.status.state in (COMPLETE, FAILED, REJECTED)


def is_live(task: objects_pb2.Task) -> bool:
    """Whether the task is meant to run (desired state at most RUNNING)."""
    return task.desired_state <= RUNNING


__all__ = [
    "PENDING_MESSAGE",
    "SlotKey",
    "current_cluster",
    "is_dirty",
    "is_global",
    "is_live",
    "is_replicated",
    "new_task",
    "newest",
    "restart_delay",
    "restart_policy",
    "seconds",
    "slot_key",
    "status_time",
    "stopped_on_its_own",
    "timestamp",
]
