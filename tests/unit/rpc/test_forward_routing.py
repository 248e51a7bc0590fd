"""The leader-only method table and method shapes from the descriptor pool."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pool

from swarmd.api import ca_pb2, control_pb2, dispatcher_pb2, health_pb2, logs_pb2, watch_pb2
from swarmd.rpc.auth import METHOD_ROLES
from swarmd.rpc.routing import LEADER_ONLY, Cardinality, is_leader_only, method_shape


@pytest.mark.parametrize(
    "method",
    [
        "/swarmkit.v1.Control/CreateService",
        "/swarmkit.v1.Control/ListNodes",
        "/swarmkit.v1.Dispatcher/Session",
        "/swarmkit.v1.Dispatcher/UpdateTaskStatus",
        "/swarmkit.v1.NodeCA/IssueNodeCertificate",
        "/swarmkit.v1.NodeCA/NodeCertificateStatus",
        "/swarmkit.v1.Logs/SubscribeLogs",
        "/swarmkit.v1.LogBroker/PublishLogs",
        "/swarmkit.v1.LogBroker/ListenSubscriptions",
        "/swarmkit.v1.RaftMembership/Join",
    ],
)
def test_leader_only_methods(method: str) -> None:
    assert is_leader_only(method)


@pytest.mark.parametrize(
    "method",
    [
        "/swarmkit.v1.Watch/Watch",
        "/swarmkit.v1.Health/Check",
        "/swarmkit.v1.CA/GetRootCACertificate",
        "/swarmkit.v1.Raft/ProcessRaftMessage",
        "/swarmkit.v1.Raft/StreamRaftMessage",
        "/swarmkit.v1.Raft/ResolveAddress",
        "/swarmkit.v1.Unknown/Method",
        "/swarmkit.v1.Control",  # no method part
        "",
    ],
)
def test_locally_served_methods(method: str) -> None:
    assert not is_leader_only(method)


def test_every_table_entry_names_a_declared_service_or_method() -> None:
    # Locally served services are not imported by rpc.routing; register them here.
    assert "Health" in health_pb2.DESCRIPTOR.services_by_name
    assert "Watch" in watch_pb2.DESCRIPTOR.services_by_name
    pool = descriptor_pool.Default()
    for key in LEADER_ONLY:
        service, _, name = key.strip("/").partition("/")
        if name:
            assert method_shape(key) is not None, key
        else:
            assert pool.FindServiceByName(service).methods, key


def test_every_leader_only_method_has_roles_in_the_auth_table() -> None:
    # A method forwarded but refused by every role would be dead weight (or a typo).
    for key, leader_only in LEADER_ONLY.items():
        if leader_only:
            service = key[: key.rfind("/") + 1]
            assert key in METHOD_ROLES or service in METHOD_ROLES, key


def test_shapes_come_from_the_descriptors() -> None:
    unary = method_shape("/swarmkit.v1.Control/GetNode")
    assert unary is not None
    assert unary.cardinality is Cardinality.UNARY_UNARY
    assert unary.request_type is control_pb2.GetNodeRequest.DESCRIPTOR
    assert unary.response_type is control_pb2.GetNodeResponse.DESCRIPTOR

    session = method_shape("/swarmkit.v1.Dispatcher/Session")
    assert session is not None
    assert session.cardinality is Cardinality.UNARY_STREAM
    assert session.response_type is dispatcher_pb2.SessionMessage.DESCRIPTOR

    publish = method_shape("/swarmkit.v1.LogBroker/PublishLogs")
    assert publish is not None
    assert publish.cardinality is Cardinality.STREAM_UNARY
    assert publish.request_type is logs_pb2.PublishLogsMessage.DESCRIPTOR

    issue = method_shape("/swarmkit.v1.NodeCA/IssueNodeCertificate")
    assert issue is not None
    assert issue.request_type is ca_pb2.IssueNodeCertificateRequest.DESCRIPTOR


@pytest.mark.parametrize(
    "method",
    [
        "/swarmkit.v1.Control/NoSuchMethod",
        "/swarmkit.v1.NoSuchService/GetNode",
        "swarmkit.v1.Control/GetNode",
        "/swarmkit.v1.Control/GetNode/extra",
        "/swarmkit.v1.Control/",
        "/",
        "",
    ],
)
def test_unknown_or_malformed_methods_have_no_shape(method: str) -> None:
    assert method_shape(method) is None
