"""Per-RPC authorisation on the cluster port: the peer certificate's OU against one role table.

RPC layer. `rpc.server.cluster_server` installs `AuthInterceptor`; handlers read the caller with
`current_peer()`. The identity is parsed from `auth_context()["x509_pem_cert"]` (CN = node id,
OU = role, O = cluster id), never from `peer_identities()`, which holds the SANs (measurements.md
section 3). grpc.aio interceptors only see the method name, not the TLS session, so the check runs
inside a wrapper around the real handler, before it; a refusal aborts the call with the status
`rpc.status` maps the error to.

Forwarded calls (`rpc.forward`): a call carrying `swarmd-forwarded-*` metadata is accepted only
from a direct peer that is a manager of this cluster; the forwarded caller is then authorised
against the same table and bound as `current_peer()`. A forwarded local operator has a
manager's rights and an anonymous joiner may only make the `JOIN_METHODS` calls; both are bound as
None, as on the control socket and the join port. `rpc.identity.current_forwarded()` names the
forwarding manager.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import structlog
from cryptography import x509
from grpc import aio

from swarmd import errors, log
from swarmd.ca.certstore import identity_of
from swarmd.ca.peer import Peer, current_peer, reset_peer, set_peer
from swarmd.ca.rootca import Role
from swarmd.rpc.identity import (
    LOCAL_OPERATOR,
    Forwarded,
    Metadata,
    Principal,
    has_forwarded,
    read_forwarded,
    reset_forwarded,
    set_forwarded,
)
from swarmd.rpc.status import code_for

_log = structlog.get_logger(component="rpc")

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

MANAGERS: frozenset[Role] = frozenset({Role.MANAGER})
NODES: frozenset[Role] = frozenset({Role.MANAGER, Role.WORKER})

# The one table: a full method name, or a service prefix ending in "/", to the roles allowed to
# call it. Full names win over their service's prefix. Anything not here is refused.
METHOD_ROLES: Mapping[str, frozenset[Role]] = {
    "/swarmkit.v1.Control/": MANAGERS,
    "/swarmkit.v1.Dispatcher/": NODES,
    "/swarmkit.v1.CA/GetRootCACertificate": NODES,
    "/swarmkit.v1.NodeCA/": NODES,
    "/swarmkit.v1.Raft/": MANAGERS,
    "/swarmkit.v1.RaftMembership/": MANAGERS,
    "/swarmkit.v1.Health/": MANAGERS,
    "/swarmkit.v1.Logs/": MANAGERS,
    "/swarmkit.v1.Watch/": MANAGERS,
    "/swarmkit.v1.LogBroker/": NODES,
}


# Calls a node without a certificate may make (the join port serves only these). A forwarded
# anonymous caller is held to the same list.
JOIN_METHODS: frozenset[str] = frozenset(
    {
        "/swarmkit.v1.CA/GetRootCACertificate",
        "/swarmkit.v1.NodeCA/IssueNodeCertificate",
        "/swarmkit.v1.NodeCA/NodeCertificateStatus",
    }
)


def allowed_roles(method: str) -> frozenset[Role]:
    """Roles that may call `method` (a full name like `/swarmkit.v1.Control/ListNodes`)."""
    exact = METHOD_ROLES.get(method)
    if exact is not None:
        return exact
    service = method[: method.rfind("/") + 1]
    return METHOD_ROLES.get(service, frozenset()) if service else frozenset()


@functools.lru_cache(maxsize=4096)
def _parse_peer(pem: bytes) -> Peer:
    # Cached: a node makes many calls with one certificate; parsing costs ~60 us.
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise errors.Unauthenticated("peer certificate does not parse") from err
    node_id, role, cluster_id = identity_of(cert)
    return Peer(node_id=node_id, role=role, cluster_id=cluster_id)


def peer_from_context(context: aio.ServicerContext[Any, Any]) -> Peer:
    """Parse the caller's identity from its TLS certificate.

    Raises:
        Unauthenticated: no certificate, or one without a swarm identity.
    """
    pem = next(iter(context.auth_context().get("x509_pem_cert") or ()), None)
    if not pem:
        raise errors.Unauthenticated("no client certificate on this connection")
    return _parse_peer(bytes(pem))


def authorize(peer: Peer, method: str, cluster_id: str) -> None:
    """Refuse a peer from another cluster or whose role the table does not allow.

    Raises:
        PermissionDenied: with a message naming the role (or cluster) and the method.
    """
    if peer.cluster_id != cluster_id:
        raise errors.PermissionDenied(
            f"node {peer.node_id} belongs to cluster {peer.cluster_id}, not to this cluster"
        )
    if peer.role not in allowed_roles(method):
        raise errors.PermissionDenied(f"role {peer.role.value} may not call {method}")


def admit_forwarded(
    direct: Peer, metadata: Metadata | None, method: str, cluster_id: str
) -> Forwarded | None:
    """Authorise a call that may carry a forwarded identity; None if it carries none.

    Args:
        direct: the TLS peer of the call (already authenticated).
        metadata: the call's invocation metadata.
        method: the full method name.
        cluster_id: this cluster.

    Raises:
        PermissionDenied: the direct peer is not a manager of this cluster, or the forwarded
            caller may not call `method`.
        Unauthenticated: the forwarded identity is malformed.
    """
    if not has_forwarded(metadata):
        return None
    if direct.cluster_id != cluster_id or direct.role is not Role.MANAGER:
        raise errors.PermissionDenied(
            f"node {direct.node_id} ({direct.role.value}) may not forward calls; "
            "only managers of this cluster may"
        )
    claim = read_forwarded(metadata)
    if claim is None:  # has_forwarded said otherwise; kept for the type checker
        return None
    caller, addr = claim
    if isinstance(caller, Peer):
        authorize(caller, method, cluster_id)
    elif caller is LOCAL_OPERATOR:
        # The operator of a manager's control socket has that manager's rights.
        if Role.MANAGER not in allowed_roles(method):
            raise errors.PermissionDenied(f"the local operator may not call {method}")
    elif method not in JOIN_METHODS:  # ANONYMOUS
        raise errors.PermissionDenied(f"a caller without a certificate may not call {method}")
    return Forwarded(caller=caller, peer_addr=addr, forwarder=direct)


class AuthInterceptor(aio.ServerInterceptor):
    """Authenticates and authorises every call on the cluster port; binds `current_peer()`."""

    def __init__(self, cluster_id: str) -> None:
        self._cluster_id = cluster_id

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED
            return handler
        return _wrap(handler, handler_call_details.method, self._admit)

    async def _admit(self, context: aio.ServicerContext[Any, Any], method: str) -> _Admitted:
        """The caller (and its forwarding), or abort the call with the status for the refusal."""
        try:
            peer = peer_from_context(context)
            forwarded = admit_forwarded(
                peer, context.invocation_metadata(), method, self._cluster_id
            )
            if forwarded is None:
                authorize(peer, method, self._cluster_id)
        except errors.SwarmError as err:
            _log.warning("rpc refused", rpc=method, peer=context.peer(), reason=err.message)
            await context.abort(code_for(err), err.message)
        if forwarded is None:
            return _Admitted(peer, None)
        caller = None if isinstance(forwarded.caller, Principal) else forwarded.caller
        return _Admitted(caller, forwarded)


@dataclass(frozen=True, slots=True)
class _Admitted:
    """Who the handler sees as its caller and any forwarding.

    The caller is None for a forwarded local operator or anonymous joiner, as it is on the
    control socket and the join port themselves.
    """

    caller: Peer | None
    forwarded: Forwarded | None


_Admit = Callable[[aio.ServicerContext[Any, Any], str], Awaitable[_Admitted]]
_FORWARDED_BY = "forwarded_by"


def _principal(admitted: _Admitted) -> str:
    forwarded = admitted.forwarded
    if forwarded is not None and isinstance(forwarded.caller, Principal):
        return forwarded.caller.value
    return ""


@dataclass(frozen=True, slots=True)
class _Binding:
    peer: contextvars.Token[Peer | None]
    forwarded: contextvars.Token[Forwarded | None]
    log: Mapping[str, Any]


def _bind(admitted: _Admitted, method: str) -> _Binding:
    fields: dict[str, Any] = {
        log.RPC: method,
        log.PEER_NODE_ID: admitted.caller.node_id if admitted.caller else _principal(admitted),
    }
    if admitted.forwarded is not None:
        fields[_FORWARDED_BY] = admitted.forwarded.forwarder.node_id
    return _Binding(
        set_peer(admitted.caller),
        set_forwarded(admitted.forwarded),
        structlog.contextvars.bind_contextvars(**fields),
    )


def _unbind(binding: _Binding) -> None:
    structlog.contextvars.reset_contextvars(**binding.log)
    reset_forwarded(binding.forwarded)
    reset_peer(binding.peer)


def _wrap_call(behavior: Callable[..., Awaitable[Any]], method: str, admit: _Admit) -> Any:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        binding = _bind(await admit(context, method), method)
        try:
            return await behavior(request, context)
        finally:
            _unbind(binding)

    return handler


def _wrap_gen(behavior: Callable[..., AsyncIterator[Any]], method: str, admit: _Admit) -> Any:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        binding = _bind(await admit(context, method), method)
        try:
            async for item in behavior(request, context):
                yield item
        finally:
            _unbind(binding)

    return handler


def _wrap_any(behavior: Callable[..., Any], method: str, admit: _Admit) -> Any:
    # Streaming handlers may be async generators or coroutines that call context.write().
    if inspect.isasyncgenfunction(behavior):
        return _wrap_gen(behavior, method, admit)
    return _wrap_call(behavior, method, admit)


def _wrap(
    handler: grpc.RpcMethodHandler[_Req, _Resp], method: str, admit: _Admit
) -> grpc.RpcMethodHandler[_Req, _Resp]:
    de, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_any(handler.unary_unary, method, admit), de, ser
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_any(handler.unary_stream, method, admit), de, ser
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_any(handler.stream_unary, method, admit), de, ser
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _wrap_any(handler.stream_stream, method, admit), de, ser
        )
    return handler


__all__ = [
    "JOIN_METHODS",
    "MANAGERS",
    "METHOD_ROLES",
    "NODES",
    "AuthInterceptor",
    "Peer",
    "admit_forwarded",
    "allowed_roles",
    "authorize",
    "current_peer",
    "peer_from_context",
]
