"""Where a call is served: the one table of leader-only methods, and each method's call shape.

RPC layer, pure (no I/O). `rpc.forward.ForwardInterceptor` asks `is_leader_only(method)` to
decide whether a follower forwards a call, and `method_shape(method)` for its cardinality. Shapes
come from the protobuf descriptor pool, filled by importing the generated `swarmd.api` modules,
so a method that no .proto declares is never forwarded.

Leader-only: everything that reads or writes state only the leader has or may change (Control,
Dispatcher sessions and task status, certificate issuance, the log broker). Served by every
manager: Watch (followers apply the same log), Health, CA/GetRootCACertificate, and Raft, whose
messages must reach the member they are addressed to.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

# Imported for their side effect: registering the services' descriptors in the default pool.
from swarmd.api import ca_pb2, control_pb2, dispatcher_pb2, logs_pb2, raft_pb2

_REGISTERED = (ca_pb2, control_pb2, dispatcher_pb2, logs_pb2, raft_pb2)

# The one table: a full method name, or a service prefix ending in "/", to whether only the
# leader serves it. Full names win over their service's prefix; anything absent is local.
LEADER_ONLY: Mapping[str, bool] = {
    "/swarmkit.v1.Control/": True,
    "/swarmkit.v1.Dispatcher/": True,
    "/swarmkit.v1.NodeCA/IssueNodeCertificate": True,
    "/swarmkit.v1.NodeCA/NodeCertificateStatus": True,
    "/swarmkit.v1.Logs/": True,
    "/swarmkit.v1.LogBroker/": True,
    # Joining and leaving change the raft configuration, which only the leader proposes.
    "/swarmkit.v1.RaftMembership/": True,
    "/swarmkit.v1.CA/GetRootCACertificate": False,
    "/swarmkit.v1.Raft/": False,
    "/swarmkit.v1.Health/": False,
    "/swarmkit.v1.Watch/": False,
}


def is_leader_only(method: str) -> bool:
    """Whether only the leader serves `method` (a full name like `/swarmkit.v1.Control/GetNode`)."""
    exact = LEADER_ONLY.get(method)
    if exact is not None:
        return exact
    service = method[: method.rfind("/") + 1]
    return LEADER_ONLY.get(service, False) if service else False


class Cardinality(enum.Enum):
    """How many messages each side of a call sends."""

    UNARY_UNARY = "unary-unary"
    UNARY_STREAM = "unary-stream"
    STREAM_UNARY = "stream-unary"
    STREAM_STREAM = "stream-stream"


@dataclass(frozen=True, slots=True)
class MethodShape:
    """A method as its .proto declares it."""

    method: str
    cardinality: Cardinality
    request_type: Descriptor
    response_type: Descriptor


def _cardinality(client_streaming: bool, server_streaming: bool) -> Cardinality:
    if client_streaming:
        return Cardinality.STREAM_STREAM if server_streaming else Cardinality.STREAM_UNARY
    return Cardinality.UNARY_STREAM if server_streaming else Cardinality.UNARY_UNARY


def method_shape(
    method: str, pool: descriptor_pool.DescriptorPool | None = None
) -> MethodShape | None:
    """The declared shape of `/package.Service/Method`, or None if no registered .proto has it.

    Args:
        method: the full method name as grpc reports it (`HandlerCallDetails.method`).
        pool: where to look; the default pool (every imported `_pb2` module) when None.
    """
    service, sep, name = method.lstrip("/").partition("/")
    if not method.startswith("/") or not sep or not service or not name or "/" in name:
        return None
    try:
        desc = (pool or descriptor_pool.Default()).FindMethodByName(f"{service}.{name}")
    except KeyError:
        return None
    return MethodShape(
        method=method,
        cardinality=_cardinality(desc.client_streaming, desc.server_streaming),
        request_type=desc.input_type,
        response_type=desc.output_type,
    )


__all__ = ["LEADER_ONLY", "Cardinality", "MethodShape", "is_leader_only", "method_shape"]
