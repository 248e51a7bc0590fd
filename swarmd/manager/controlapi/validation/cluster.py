"""Validation of ClusterSpec and NodeSpec updates.

Manager layer, pure. Cluster durations left unset mean "use the default" (consumers fall back to
`controlapi.defaults`); set ones must clear the floors below which a cluster stops working.
"""

from __future__ import annotations

from swarmd.api import specs_pb2, types_pb2
from swarmd.manager.controlapi import defaults
from swarmd.manager.controlapi.validation.fieldrules import duration_nanos, invalid, show

_NANOS = 1_000_000_000


def validate_cluster_spec(spec: specs_pb2.ClusterSpec, name: str) -> None:
    """Check a ClusterSpec for UpdateCluster; `name` is the cluster's current (fixed) name.

    Raises:
        errors.InvalidArgument: naming the first bad field and the rule it breaks.
    """
    if spec.annotations.name != name:
        raise invalid("cluster name", spec.annotations.name, f"cannot be changed from {show(name)}")
    limit = spec.orchestration.task_history_retention_limit
    if limit > defaults.MAX_TASK_HISTORY_RETENTION:
        raise invalid(
            "orchestration.task_history_retention_limit",
            limit,
            f"must be at most {defaults.MAX_TASK_HISTORY_RETENTION} (negative keeps all)",
        )
    _validate_raft(spec.raft)
    if spec.dispatcher.HasField("heartbeat_period"):
        period = spec.dispatcher.heartbeat_period
        if duration_nanos("dispatcher.heartbeat_period", period) < (
            defaults.MIN_HEARTBEAT_PERIOD_NANOS
        ):
            raise invalid("dispatcher.heartbeat_period", period, "must be at least 100ms")
    if spec.ca_config.HasField("node_cert_expiry"):
        expiry = spec.ca_config.node_cert_expiry
        if duration_nanos("ca_config.node_cert_expiry", expiry) < (
            defaults.MIN_NODE_CERT_EXPIRY_SECONDS * _NANOS
        ):
            raise invalid("ca_config.node_cert_expiry", expiry, "must be at least 1h")
    revisions = spec.service_history.revisions
    if not 1 <= revisions <= defaults.MAX_SERVICE_HISTORY_REVISIONS:
        raise invalid(
            "service_history.revisions",
            revisions,
            f"must be between 1 and {defaults.MAX_SERVICE_HISTORY_REVISIONS}",
        )


def _validate_raft(r: specs_pb2.RaftConfig) -> None:
    if r.snapshot_interval < 1:
        raise invalid("raft.snapshot_interval", r.snapshot_interval, "must be at least 1")
    if r.heartbeat_tick < 1:
        raise invalid("raft.heartbeat_tick", r.heartbeat_tick, "must be at least 1")
    if r.election_tick <= r.heartbeat_tick:
        raise invalid(
            "raft.election_tick",
            r.election_tick,
            f"must be greater than raft.heartbeat_tick ({r.heartbeat_tick})",
        )
    if r.HasField("tick_interval"):
        nanos = duration_nanos("raft.tick_interval", r.tick_interval)
        if nanos < defaults.MIN_TICK_INTERVAL_NANOS:
            raise invalid("raft.tick_interval", r.tick_interval, "must be at least 1ms")


def validate_node_spec(spec: specs_pb2.NodeSpec) -> None:
    """Check a NodeSpec for UpdateNode: every enum must be a declared value."""
    if spec.desired_role not in types_pb2.NodeRole.values():
        raise invalid("desired_role", spec.desired_role, "must be worker or manager")
    if spec.membership not in specs_pb2.NodeSpec.Membership.values():
        raise invalid("membership", spec.membership, "must be pending or accepted")
    if spec.availability not in specs_pb2.NodeSpec.Availability.values():
        raise invalid("availability", spec.availability, "must be active, pause or drain")


__all__ = ["validate_cluster_spec", "validate_node_spec"]
