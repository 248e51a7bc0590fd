"""The role table, authorize(), the renewal schedule and the bootstrap bundle."""

from __future__ import annotations

import random

import pytest

from swarmd import errors
from swarmd.api import types_pb2
from swarmd.ca import bootstrap
from swarmd.ca.peer import Peer
from swarmd.ca.renewer import renewal_delay
from swarmd.ca.rootca import Role
from swarmd.ca.tokens import parse_join_token
from swarmd.rpc.auth import MANAGERS, NODES, allowed_roles, authorize


@pytest.mark.parametrize(
    ("method", "roles"),
    [
        ("/swarmkit.v1.Control/ListNodes", MANAGERS),
        ("/swarmkit.v1.Dispatcher/Session", NODES),
        ("/swarmkit.v1.CA/GetRootCACertificate", NODES),
        ("/swarmkit.v1.NodeCA/IssueNodeCertificate", NODES),
        ("/swarmkit.v1.Raft/ProcessRaftMessage", MANAGERS),
        ("/swarmkit.v1.RaftMembership/Join", MANAGERS),
        ("/swarmkit.v1.Health/Check", MANAGERS),
        ("/swarmkit.v1.Logs/SubscribeLogs", MANAGERS),
        ("/swarmkit.v1.Watch/Watch", MANAGERS),
        ("/swarmkit.v1.LogBroker/PublishLogs", NODES),
        ("/swarmkit.v1.CA/GetUnlockKey", frozenset()),
        ("/other.Service/Method", frozenset()),
        ("garbage", frozenset()),
    ],
)
def test_allowed_roles(method, roles):
    assert allowed_roles(method) == roles


def test_authorize_checks_cluster_then_role():
    worker = Peer("n1", Role.WORKER, "c1")
    authorize(worker, "/swarmkit.v1.Dispatcher/Heartbeat", "c1")
    with pytest.raises(errors.PermissionDenied, match="role swarm-worker may not call"):
        authorize(worker, "/swarmkit.v1.Control/ListNodes", "c1")
    with pytest.raises(errors.PermissionDenied, match="belongs to cluster c1"):
        authorize(worker, "/swarmkit.v1.Dispatcher/Heartbeat", "c2")
    with pytest.raises(errors.PermissionDenied):
        authorize(Peer("m", Role.MANAGER, "c1"), "/unknown/Method", "c1")


def test_renewal_delay_is_within_50_to_80_percent():
    boot = bootstrap.init_cluster_ca("h")
    creds = boot.credentials
    start = creds.not_before.timestamp()
    life = creds.not_after.timestamp() - start
    rng = random.Random(1)
    for _ in range(200):
        d = renewal_delay(creds, start, rng)
        assert 0.5 * life <= d <= 0.8 * life
    assert renewal_delay(creds, creds.not_after.timestamp(), rng) == 0.0


def test_bootstrap_bundle():
    boot = bootstrap.init_cluster_ca("mgr-1", "10.0.0.1:4242")
    assert boot.credentials.role is Role.MANAGER
    assert boot.credentials.cluster_id == boot.cluster_id
    cluster = boot.cluster_object()
    assert cluster.id == boot.cluster_id
    assert cluster.root_ca.ca_cert == boot.root_ca.cert_pem
    assert cluster.root_ca.ca_key == boot.root_ca.key_pem
    assert cluster.root_ca.ca_cert_hash == boot.root_ca.digest
    for token in (cluster.root_ca.join_tokens.worker, cluster.root_ca.join_tokens.manager):
        assert parse_join_token(token).digest == boot.root_ca.digest
    assert cluster.root_ca.join_tokens.worker != cluster.root_ca.join_tokens.manager
    node = boot.node_object()
    assert node.id == boot.credentials.node_id
    assert node.role == types_pb2.NODE_ROLE_MANAGER
    assert node.manager_status.addr == "10.0.0.1:4242"
    assert "manager_token" not in repr(boot) or boot.manager_token not in repr(boot)
