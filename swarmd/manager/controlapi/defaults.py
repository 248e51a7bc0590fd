"""Default specs and the limits the control API enforces: the one place these numbers live.

Manager layer. `default_cluster_spec()` is what bootstrap writes into the cluster object when a
swarm is created; the service defaults are what `GetService(insert_defaults=True)` shows and
what the orchestrator/updater assume when a spec leaves a section unset (swarmkit
api/defaults/service.go).
Every function returns a fresh message the caller may mutate.
"""

from __future__ import annotations

from google.protobuf import duration_pb2

from swarmd.api import specs_pb2, types_pb2

DEFAULT_CLUSTER_NAME = "default"

# Cluster spec defaults (swarmkit manager.go, raft.go DefaultRaftConfig; tick interval shortened
# from swarmkit's 1 s because our elections should settle in about a second).
TASK_HISTORY_RETENTION = 5
# SwarmKit: 5 s. Ours is shorter so a dead node is noticed in seconds: a node whose session
# breaks gets one period to come back, a silent one three (dispatcher.py).
HEARTBEAT_PERIOD_SECONDS = 2
NODE_CERT_EXPIRY_SECONDS = 2160 * 3600
SNAPSHOT_INTERVAL = 10_000
KEEP_OLD_SNAPSHOTS = 0
LOG_ENTRIES_FOR_SLOW_FOLLOWERS = 500
HEARTBEAT_TICK = 1
ELECTION_TICK = 10
TICK_INTERVAL_NANOS = 100_000_000
SERVICE_HISTORY_REVISIONS = 5

# Service defaults (swarmkit api/defaults/service.go).
STOP_GRACE_SECONDS = 10
RESTART_DELAY_SECONDS = 5
UPDATE_MONITOR_SECONDS = 5

# Limits: floors below which a setting breaks the cluster, ceilings that catch typos and garbage.
MAX_REPLICAS = 100_000
MIN_MEMORY_BYTES = 4 * 1024 * 1024  # swarmkit validateResources; the engine refuses less
MIN_NANO_CPUS = 1_000_000  # 0.001 CPU, swarmkit validateResources
MIN_HEALTHCHECK_NANOS = 1_000_000  # 1 ms, swarmkit validateHealthCheck
MAX_SECRET_BYTES = 500 * 1024  # secrets must be strictly smaller (swarmkit MaxSecretSize)
MAX_CONFIG_BYTES = 500 * 1024  # configs may be exactly this large
MIN_HEARTBEAT_PERIOD_NANOS = 100_000_000  # 100 ms
MIN_NODE_CERT_EXPIRY_SECONDS = 3600  # 1 h, swarmkit ca.MinNodeCertExpiration
MIN_TICK_INTERVAL_NANOS = 1_000_000  # 1 ms
MAX_SERVICE_HISTORY_REVISIONS = 100
MAX_TASK_HISTORY_RETENTION = 10_000
# Changes per store transaction (swarmkit MaxChangesPerTransaction; the store batches at it).
TX_CHANGES = 200


def default_cluster_spec() -> specs_pb2.ClusterSpec:
    """The spec of a new swarm's cluster object."""
    return specs_pb2.ClusterSpec(
        annotations=types_pb2.Annotations(name=DEFAULT_CLUSTER_NAME),
        orchestration=specs_pb2.OrchestrationConfig(
            task_history_retention_limit=TASK_HISTORY_RETENTION
        ),
        raft=specs_pb2.RaftConfig(
            snapshot_interval=SNAPSHOT_INTERVAL,
            keep_old_snapshots=KEEP_OLD_SNAPSHOTS,
            log_entries_for_slow_followers=LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
            heartbeat_tick=HEARTBEAT_TICK,
            election_tick=ELECTION_TICK,
            tick_interval=duration_pb2.Duration(nanos=TICK_INTERVAL_NANOS),
        ),
        dispatcher=specs_pb2.DispatcherConfig(
            heartbeat_period=duration_pb2.Duration(seconds=HEARTBEAT_PERIOD_SECONDS)
        ),
        ca_config=specs_pb2.CAConfig(
            node_cert_expiry=duration_pb2.Duration(seconds=NODE_CERT_EXPIRY_SECONDS)
        ),
        service_history=specs_pb2.ServiceHistoryConfig(revisions=SERVICE_HISTORY_REVISIONS),
    )


def default_update_config() -> types_pb2.UpdateConfig:
    """Update (and rollback) behaviour of a service whose spec leaves `update` unset."""
    return types_pb2.UpdateConfig(
        parallelism=1,
        delay=duration_pb2.Duration(),
        failure_action=types_pb2.UpdateConfig.FAILURE_ACTION_PAUSE,
        monitor=duration_pb2.Duration(seconds=UPDATE_MONITOR_SECONDS),
        max_failure_ratio=0.0,
        order=types_pb2.UpdateConfig.UPDATE_ORDER_STOP_FIRST,
    )


def default_restart_policy() -> types_pb2.RestartPolicy:
    """Restart policy of a task whose spec leaves `restart` unset: always, after 5 s."""
    return types_pb2.RestartPolicy(
        condition=types_pb2.RestartPolicy.RESTART_CONDITION_ANY,
        delay=duration_pb2.Duration(seconds=RESTART_DELAY_SECONDS),
        max_attempts=0,
        window=duration_pb2.Duration(),
    )


def default_stop_grace_period() -> duration_pb2.Duration:
    """Time a container gets between the stop signal and SIGKILL."""
    return duration_pb2.Duration(seconds=STOP_GRACE_SECONDS)


def with_defaults(spec: specs_pb2.ServiceSpec) -> specs_pb2.ServiceSpec:
    """A copy of `spec` with every unset section that has a default filled in (insert_defaults)."""
    out = specs_pb2.ServiceSpec()
    out.CopyFrom(spec)
    if out.WhichOneof("mode") is None:
        out.replicated.replicas = 1
    if not out.HasField("update"):
        out.update.CopyFrom(default_update_config())
    if not out.HasField("rollback"):
        out.rollback.CopyFrom(default_update_config())
    if not out.task.HasField("restart"):
        out.task.restart.CopyFrom(default_restart_policy())
    if not out.task.container.HasField("stop_grace_period"):
        out.task.container.stop_grace_period.CopyFrom(default_stop_grace_period())
    return out


__all__ = [
    "DEFAULT_CLUSTER_NAME",
    "MAX_CONFIG_BYTES",
    "MAX_REPLICAS",
    "MAX_SECRET_BYTES",
    "SERVICE_HISTORY_REVISIONS",
    "default_cluster_spec",
    "default_restart_policy",
    "default_stop_grace_period",
    "default_update_config",
    "with_defaults",
]
