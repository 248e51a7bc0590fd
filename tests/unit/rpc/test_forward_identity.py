"""Forwarded-identity metadata: encoding, decoding, and the leader's admission rules."""

from __future__ import annotations

import pytest

from swarmd import errors
from swarmd.ca.peer import Peer
from swarmd.ca.rootca import Role
from swarmd.rpc.auth import admit_forwarded
from swarmd.rpc.identity import (
    ANONYMOUS,
    CLUSTER_ID_KEY,
    LOCAL_OPERATOR,
    NODE_ID_KEY,
    PEER_ADDR_KEY,
    ROLE_KEY,
    Forwarded,
    caller_address,
    current_forwarded,
    forwarded_metadata,
    has_forwarded,
    read_forwarded,
    reset_forwarded,
    set_forwarded,
)

CLUSTER = "c" * 25
WORKER = Peer(node_id="w" * 25, role=Role.WORKER, cluster_id=CLUSTER)
MANAGER = Peer(node_id="m" * 25, role=Role.MANAGER, cluster_id=CLUSTER)
FOLLOWER = Peer(node_id="f" * 25, role=Role.MANAGER, cluster_id=CLUSTER)
SESSION = "/swarmkit.v1.Dispatcher/Session"
CONTROL = "/swarmkit.v1.Control/CreateService"


def test_node_identity_round_trips() -> None:
    md = forwarded_metadata(WORKER, "ipv4:10.0.0.7:51000")
    assert dict(md) == {
        NODE_ID_KEY: WORKER.node_id,
        ROLE_KEY: "swarm-worker",
        CLUSTER_ID_KEY: CLUSTER,
        PEER_ADDR_KEY: "ipv4:10.0.0.7:51000",
    }
    assert read_forwarded(md) == (WORKER, "ipv4:10.0.0.7:51000")


def test_local_operator_round_trips_without_node_fields() -> None:
    md = forwarded_metadata(LOCAL_OPERATOR, "")
    assert md == ((ROLE_KEY, "local-operator"),)
    assert read_forwarded(md) == (LOCAL_OPERATOR, "")


def test_anonymous_round_trips_with_its_address() -> None:
    md = forwarded_metadata(ANONYMOUS, "ipv4:10.0.0.9:40000")
    assert md == ((ROLE_KEY, "anonymous"), (PEER_ADDR_KEY, "ipv4:10.0.0.9:40000"))
    assert read_forwarded(md) == (ANONYMOUS, "ipv4:10.0.0.9:40000")


def test_keys_are_matched_case_insensitively_and_other_metadata_ignored() -> None:
    md = [
        ("x-request-id", "abc"),
        (NODE_ID_KEY.upper(), MANAGER.node_id),
        (ROLE_KEY, "swarm-manager"),
        (CLUSTER_ID_KEY, CLUSTER),
    ]
    assert read_forwarded(md) == (MANAGER, "")


def test_no_forwarded_keys_means_not_forwarded() -> None:
    assert read_forwarded([("x-request-id", "abc")]) is None
    assert read_forwarded(None) is None
    assert not has_forwarded([("x-request-id", "abc")])
    assert has_forwarded([(PEER_ADDR_KEY, "ipv4:1.2.3.4:5")])


@pytest.mark.parametrize(
    ("md", "message"),
    [
        ([(ROLE_KEY, "swarm-worker"), (CLUSTER_ID_KEY, CLUSTER)], "node id or cluster id missing"),
        ([(ROLE_KEY, "swarm-worker"), (NODE_ID_KEY, "n")], "node id or cluster id missing"),
        (
            [(ROLE_KEY, "root"), (NODE_ID_KEY, "n"), (CLUSTER_ID_KEY, CLUSTER)],
            "forwarded identity has unknown role 'root'",
        ),
        (
            [(ROLE_KEY, "local-operator"), (NODE_ID_KEY, "n")],
            "local-operator caller with a node identity",
        ),
        (
            [(ROLE_KEY, "anonymous"), (CLUSTER_ID_KEY, CLUSTER)],
            "anonymous caller with a node identity",
        ),
        (
            [(ROLE_KEY, "swarm-worker"), (ROLE_KEY, "swarm-manager")],
            "bad entry swarmd-forwarded-role",
        ),
        ([("swarmd-forwarded-admin", "yes")], "bad entry swarmd-forwarded-admin"),
        ([(NODE_ID_KEY, b"bytes")], "bad entry swarmd-forwarded-node-id"),
    ],
)
def test_malformed_identity_is_unauthenticated(md, message: str) -> None:
    with pytest.raises(errors.Unauthenticated, match=message):
        read_forwarded(md)


def test_direct_call_without_forwarding_is_not_admitted_here() -> None:
    assert admit_forwarded(WORKER, [("x", "y")], SESSION, CLUSTER) is None


def test_manager_forwarding_a_worker_is_admitted_as_the_worker() -> None:
    md = forwarded_metadata(WORKER, "ipv4:10.0.0.7:51000")
    assert admit_forwarded(FOLLOWER, md, SESSION, CLUSTER) == Forwarded(
        caller=WORKER, peer_addr="ipv4:10.0.0.7:51000", forwarder=FOLLOWER
    )


def test_worker_claiming_to_forward_is_denied() -> None:
    md = forwarded_metadata(MANAGER, "")
    with pytest.raises(errors.PermissionDenied, match="may not forward calls"):
        admit_forwarded(WORKER, md, CONTROL, CLUSTER)


def test_worker_with_even_a_partial_claim_is_denied_before_parsing() -> None:
    with pytest.raises(errors.PermissionDenied):
        admit_forwarded(WORKER, [(ROLE_KEY, "nonsense")], CONTROL, CLUSTER)


def test_manager_of_another_cluster_may_not_forward() -> None:
    stranger = Peer(node_id="s" * 25, role=Role.MANAGER, cluster_id="x" * 25)
    with pytest.raises(errors.PermissionDenied, match="only managers of this cluster"):
        admit_forwarded(stranger, forwarded_metadata(LOCAL_OPERATOR, ""), CONTROL, CLUSTER)


def test_forwarded_caller_is_held_to_the_role_table() -> None:
    with pytest.raises(errors.PermissionDenied, match="role swarm-worker may not call"):
        admit_forwarded(FOLLOWER, forwarded_metadata(WORKER, ""), CONTROL, CLUSTER)


def test_forwarded_caller_from_another_cluster_is_denied() -> None:
    alien = Peer(node_id="a" * 25, role=Role.WORKER, cluster_id="x" * 25)
    with pytest.raises(errors.PermissionDenied, match="belongs to cluster"):
        admit_forwarded(FOLLOWER, forwarded_metadata(alien, ""), SESSION, CLUSTER)


def test_local_operator_has_manager_rights_only() -> None:
    md = forwarded_metadata(LOCAL_OPERATOR, "")
    admitted = admit_forwarded(FOLLOWER, md, CONTROL, CLUSTER)
    assert admitted == Forwarded(caller=LOCAL_OPERATOR, peer_addr="", forwarder=FOLLOWER)
    with pytest.raises(errors.PermissionDenied, match="the local operator may not call"):
        admit_forwarded(FOLLOWER, md, "/swarmkit.v1.Unlisted/Method", CLUSTER)


def test_anonymous_may_only_make_join_calls() -> None:
    md = forwarded_metadata(ANONYMOUS, "ipv4:10.0.0.9:40000")
    for method in (
        "/swarmkit.v1.NodeCA/IssueNodeCertificate",
        "/swarmkit.v1.NodeCA/NodeCertificateStatus",
    ):
        admitted = admit_forwarded(FOLLOWER, md, method, CLUSTER)
        assert admitted == Forwarded(ANONYMOUS, "ipv4:10.0.0.9:40000", FOLLOWER)
    with pytest.raises(errors.PermissionDenied, match="without a certificate may not call"):
        admit_forwarded(FOLLOWER, md, SESSION, CLUSTER)


class _Context:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer


def test_caller_address_prefers_the_forwarded_address() -> None:
    context = _Context("ipv4:10.0.0.2:40000")  # the follower
    assert caller_address(context) == "ipv4:10.0.0.2:40000"  # type: ignore[arg-type]
    token = set_forwarded(Forwarded(WORKER, "ipv4:10.0.0.7:51000", FOLLOWER))
    try:
        assert current_forwarded() is not None
        assert caller_address(context) == "ipv4:10.0.0.7:51000"  # type: ignore[arg-type]
    finally:
        reset_forwarded(token)
    assert current_forwarded() is None
