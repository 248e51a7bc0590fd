"""`swarmctl cluster inspect|update`.

swarmctl layer; registered by `swarmctl.cli`. There is one cluster (named `default`), so the
cluster argument may be left out. `cluster inspect` adds the join tokens at the top level
(`JoinTokens.Worker`, `JoinTokens.Manager`), as `docker swarm inspect` does. `cluster update` is
a read-modify-write of the ClusterSpec against the version read; `--rotate-join-token` alone
sends no spec.
"""

from __future__ import annotations

import argparse

from swarmctl import flags, resolve
from swarmctl.client import Client
from swarmctl.command import Parser, add_group, add_verb
from swarmctl.output import render_json
from swarmctl.protojson import to_dict
from swarmd import errors
from swarmd.api import control_pb2, objects_pb2, specs_pb2

_TOKEN_ROLES = ("worker", "manager")
# (flag, RaftConfig field, converter)
_RAFT_FLAGS = (
    ("snapshot-interval", "snapshot_interval", flags.parse_non_negative_int),
    ("keep-old-snapshots", "keep_old_snapshots", flags.parse_non_negative_int),
    (
        "log-entries-for-slow-followers",
        "log_entries_for_slow_followers",
        flags.parse_non_negative_int,
    ),
    ("heartbeat-tick", "heartbeat_tick", flags.parse_non_negative_int),
    ("election-tick", "election_tick", flags.parse_non_negative_int),
)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `cluster` and its verbs to the top-level subparsers."""
    verbs = add_group(sub, "cluster", "inspect and change cluster settings")
    p = add_verb(verbs, "inspect", inspect, "show the cluster as JSON")
    p.add_argument("cluster", nargs="?", default="", help="name or id (default: the cluster)")
    p = add_verb(verbs, "update", update, "change cluster settings")
    p.add_argument("cluster", nargs="?", default="", help="name or id (default: the cluster)")
    p.add_argument(
        "--rotate-join-token",
        action="append",
        type=flags.choice("join token role", {r: i for i, r in enumerate(_TOKEN_ROLES)}),
        metavar="worker|manager",
        help="replace the worker or manager join token (repeatable)",
    )
    p.add_argument(
        "--task-history",
        type=flags.parse_int,
        help="tasks kept per slot for history (negative keeps all)",
    )
    p.add_argument(
        "--heartbeat-period", type=flags.parse_duration, help="how often agents heartbeat"
    )
    p.add_argument("--cert-expiry", type=flags.parse_duration, help="node certificate validity")
    p.add_argument(
        "--service-history",
        type=flags.parse_non_negative_int,
        help="previous specs kept per service for rollback",
    )
    for flag, field, kind in _RAFT_FLAGS:
        p.add_argument(f"--{flag}", type=kind, dest=field, help=f"raft {field.replace('_', ' ')}")
    p.add_argument("--tick-interval", type=flags.parse_duration, help="raft tick interval")
    p.add_argument("--log-driver", help="default log driver of tasks")
    p.add_argument(
        "--log-opt",
        action="append",
        type=flags.parse_key_value,
        metavar="KEY=VALUE",
        help="default log driver option (repeatable)",
    )
    p.add_argument("--label-add", action="append", type=flags.parse_key_value, metavar="KEY=VALUE")
    p.add_argument("--label-rm", action="append", metavar="KEY")


async def _find(client: Client, ref: str) -> objects_pb2.Cluster:
    if ref:
        return await resolve.resolve(client, resolve.CLUSTER, ref)
    clusters = await resolve.list_all(client, resolve.CLUSTER)
    if not clusters:
        raise errors.NotFound("cluster", "default")
    return clusters[0]


def cluster_document(cluster: objects_pb2.Cluster) -> dict[str, object]:
    """The cluster as JSON, with its join tokens also at the top level."""
    doc: dict[str, object] = to_dict(cluster)
    tokens = cluster.root_ca.join_tokens
    doc["JoinTokens"] = {"Worker": tokens.worker, "Manager": tokens.manager}
    return doc


async def inspect(client: Client, ns: argparse.Namespace) -> str:
    """The cluster as JSON."""
    return render_json(cluster_document(await _find(client, ns.cluster)))


def _edit(ns: argparse.Namespace, spec: specs_pb2.ClusterSpec) -> bool:
    """Apply the flags to `spec`; True when any spec flag was given."""
    changed = False
    if ns.task_history is not None:
        spec.orchestration.task_history_retention_limit = ns.task_history
        changed = True
    for flag, target in (
        ("heartbeat_period", spec.dispatcher.heartbeat_period),
        ("cert_expiry", spec.ca_config.node_cert_expiry),
        ("tick_interval", spec.raft.tick_interval),
    ):
        value = getattr(ns, flag)
        if value is not None:
            target.CopyFrom(value)
            changed = True
    for _, field, _ in _RAFT_FLAGS:
        value = getattr(ns, field)
        if value is not None:
            setattr(spec.raft, field, value)
            changed = True
    if ns.service_history is not None:
        spec.service_history.revisions = ns.service_history
        changed = True
    if ns.log_driver is not None or ns.log_opt:
        if ns.log_driver is not None:
            spec.task_defaults_log_driver.name = ns.log_driver
        for key, value in ns.log_opt or ():
            spec.task_defaults_log_driver.options[key] = value
        changed = True
    for key, value in ns.label_add or ():
        spec.annotations.labels[key] = value
        changed = True
    for key in ns.label_rm or ():
        spec.annotations.labels.pop(key, None)
        changed = True
    return changed


async def update(client: Client, ns: argparse.Namespace) -> str:
    """Change cluster settings and/or rotate join tokens; prints the cluster id."""
    cluster = await _find(client, ns.cluster)
    rotate = {_TOKEN_ROLES[i] for i in ns.rotate_join_token or ()}
    spec = specs_pb2.ClusterSpec()
    spec.CopyFrom(cluster.spec)
    changed = _edit(ns, spec)
    if not changed and not rotate:
        raise errors.InvalidArgument("nothing to update: give a setting or --rotate-join-token")
    req = control_pb2.UpdateClusterRequest(
        cluster_id=cluster.id,
        cluster_version=cluster.meta.version,
        rotation=control_pb2.KeyRotation(
            worker_join_token="worker" in rotate, manager_join_token="manager" in rotate
        ),
    )
    if changed:
        req.spec.CopyFrom(spec)
    resp = await client.control.UpdateCluster(req, timeout=client.timeout)
    return f"{resp.cluster.id}\n"


__all__ = ["cluster_document", "inspect", "register", "update"]
