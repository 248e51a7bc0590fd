"""Per-RPC authorisation on the cluster port: the peer certificate's OU against one role table.

RPC layer. `rpc.server.cluster_server` installs `AuthInterceptor`; handlers read the caller with
`current_peer()`. The identity is parsed from `auth_context()["x509_pem_cert"]` (CN = node id,
OU = role, O = cluster id), never from `peer_identities()`, which holds the SANs (measurements.md
section 3). grpc.aio interceptors only see the method name, not the TLS session, so the check runs
inside a wrapper around the real handler, before it; a refusal aborts the call with the status
`rpc.status` maps the error to.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc
import structlog
from cryptography import x509
from grpc import aio

from swarmd import errors, log
from swarmd.ca.certstore import identity_of
from swarmd.ca.peer import Peer, current_peer, reset_peer, set_peer
from swarmd.ca.rootca import Role
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

    async def _admit(self, context: aio.ServicerContext[Any, Any], method: str) -> Peer:
        """The peer, or abort the call with the status for the refusal."""
        try:
            peer = peer_from_context(context)
            authorize(peer, method, self._cluster_id)
        except errors.SwarmError as err:
            _log.warning("rpc refused", rpc=method, peer=context.peer(), reason=err.message)
            await context.abort(code_for(err), err.message)
        return peer


_Admit = Callable[[aio.ServicerContext[Any, Any], str], Awaitable[Peer]]


def _bind(peer: Peer, method: str) -> tuple[contextvars.Token[Peer | None], Mapping[str, Any]]:
    token = set_peer(peer)
    bound = structlog.contextvars.bind_contextvars(
        **{log.RPC: method, log.PEER_NODE_ID: peer.node_id}
    )
    return token, bound


def _unbind(token: contextvars.Token[Peer | None], bound: Mapping[str, Any]) -> None:
    structlog.contextvars.reset_contextvars(**bound)
    reset_peer(token)


def _wrap_call(behavior: Callable[..., Awaitable[Any]], method: str, admit: _Admit) -> Any:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        peer = await admit(context, method)
        token, bound = _bind(peer, method)
        try:
            return await behavior(request, context)
        finally:
            _unbind(token, bound)

    return handler


def _wrap_gen(behavior: Callable[..., AsyncIterator[Any]], method: str, admit: _Admit) -> Any:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        peer = await admit(context, method)
        token, bound = _bind(peer, method)
        try:
            async for item in behavior(request, context):
                yield item
        finally:
            _unbind(token, bound)

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
    "MANAGERS",
    "METHOD_ROLES",
    "NODES",
    "AuthInterceptor",
    "Peer",
    "allowed_roles",
    "authorize",
    "current_peer",
    "peer_from_context",
]
