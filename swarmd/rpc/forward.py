"""Follower-to-leader forwarding of leader-only calls, as a server interceptor.

RPC layer. The manager installs a `ForwardInterceptor` on its cluster port (after
`AuthInterceptor`, through `cluster_server(extra_interceptors=...)`), on its local control
socket (`principal=LOCAL_OPERATOR`) and on its join port (`principal=ANONYMOUS`). While this
manager leads, or for a method every manager serves (`rpc.routing`), calls go to the local
handler unchanged. On a follower, a leader-only call is
sent on to the leader over one cached mTLS channel (`LeaderChannels`), carrying the caller's
identity in metadata (`rpc.identity`); the leader's AuthInterceptor checks that the forwarder is a
manager, then authorises and binds the original caller. swarmkit's raftproxy does the same with
generated wrappers (swarmkit.md, Transport and per-RPC authorization).

Rules:
- One hop at most: a call that was itself forwarded, reaching a manager that does not lead
  either, is refused with UNAVAILABLE "leader changed; retry" (the caller picks a manager again).
- No known leader: UNAVAILABLE "no leader elected yet; retry".
- Messages pass as the bytes the caller sent, in both directions: nothing is decoded or
  re-encoded, so fields this manager does not know survive. The call's shape (which side
  streams) comes from the method's descriptor in the protobuf pool, never from the local handler.
- The caller's remaining deadline becomes the forwarded call's timeout (unary calls without one
  get `DEFAULT_UNARY_TIMEOUT`; streams without one stay open); a caller that cancels cancels the
  forwarded call; the leader's status code, details and trailing metadata come back unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import structlog
from grpc import aio

from swarmd import errors
from swarmd.ca.peer import current_peer
from swarmd.ca.security import SecurityConfig
from swarmd.rpc.channel import manager_channel
from swarmd.rpc.identity import (
    Caller,
    Metadata,
    Principal,
    current_forwarded,
    forwarded_metadata,
    is_forwarded_key,
)
from swarmd.rpc.routing import Cardinality, MethodShape, is_leader_only, method_shape
from swarmd.rpc.status import code_for, from_rpc_error

_log = structlog.get_logger(component="forward")

DEFAULT_UNARY_TIMEOUT = 60.0
# Closing a channel to a former leader cancels what still runs on it: those calls are doomed.
_CLOSE_GRACE: float | None = None
# Metadata grpc manages itself, never copied onto the forwarded call.
_RESERVED = ("grpc-", ":", "user-agent", "content-type", "te")

NO_LEADER = "no leader elected yet; retry"
LEADER_CHANGED = "leader changed; retry"


class LeaderView(Protocol):
    """What forwarding needs to know about leadership (`manager.leadership.Leadership` is one)."""

    def is_leader(self) -> bool:
        """This manager leads."""
        ...

    def leader_addr(self) -> str | None:
        """The leader's cluster-port address, None while unknown."""
        ...


class LeaderChannels:
    """One channel to the current leader, reused by every forwarded call; loop-confined.

    Asking for another address closes the old channel, and with it any call still on it.
    """

    def __init__(self, dial: Callable[[str], aio.Channel]) -> None:
        self._dial = dial
        self._addr: str | None = None
        self._channel: aio.Channel | None = None

    @classmethod
    def mtls(cls, security: SecurityConfig) -> LeaderChannels:
        """Channels that dial managers with this node's current certificate."""
        return cls(lambda addr: manager_channel(addr, security))

    @property
    def addr(self) -> str | None:
        """The address of the open channel, if any."""
        return self._addr

    async def channel(self, addr: str) -> aio.Channel:
        """The channel to `addr`, opened on first use; a channel elsewhere is closed."""
        if self._channel is not None and self._addr == addr:
            return self._channel
        # Swap before awaiting the close, so concurrent callers share the new channel.
        old, old_addr = self._channel, self._addr
        new = self._dial(addr)
        self._addr, self._channel = addr, new
        _log.info("leader channel opened", leader_addr=addr)
        if old is not None:
            _log.info("leader channel closed", leader_addr=old_addr)
            await old.close(_CLOSE_GRACE)
        return new

    async def retarget(self, addr: str | None) -> None:
        """Close the channel unless it goes to `addr` (None: close it whatever it goes to)."""
        if self._channel is None or self._addr == addr:
            return
        old, old_addr = self._channel, self._addr
        self._addr = self._channel = None
        _log.info("leader channel closed", leader_addr=old_addr)
        await old.close(_CLOSE_GRACE)

    async def close(self) -> None:
        """Close any open channel (manager shutdown)."""
        await self.retarget(None)


@dataclass(frozen=True, slots=True)
class _Outbound:
    """Where and how one forwarded call goes."""

    addr: str
    channel: aio.Channel
    metadata: tuple[tuple[str, str | bytes], ...]
    timeout: float | None


class ForwardInterceptor(aio.ServerInterceptor):
    """On a follower, hands leader-only calls to the leader; otherwise changes nothing."""

    def __init__(
        self,
        leadership: LeaderView,
        channels: LeaderChannels,
        *,
        principal: Principal | None = None,
        unary_timeout: float = DEFAULT_UNARY_TIMEOUT,
    ) -> None:
        """Create the interceptor for one server.

        Args:
            leadership: read at each call.
            channels: the shared channel cache (one per manager, for all its servers).
            principal: who every caller of this server is when it has no certificate:
                `LOCAL_OPERATOR` on the unix control socket, `ANONYMOUS` on the join port; None
                on the cluster port, whose callers are the peers `AuthInterceptor` bound.
            unary_timeout: the forwarded deadline of a unary call that came without one.
        """
        self._leadership = leadership
        self._channels = channels
        self._principal = principal
        self._unary_timeout = unary_timeout

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if not is_leader_only(method) or self._leadership.is_leader():
            return await continuation(handler_call_details)
        shape = method_shape(method)
        if shape is None:  # declared leader-only but in no .proto: let grpc say UNIMPLEMENTED
            return await continuation(handler_call_details)
        return _forwarding_handler(shape, self._outbound)

    async def _outbound(
        self, context: aio.ServicerContext[Any, Any], shape: MethodShape
    ) -> _Outbound:
        """Decide where the call goes and with what metadata.

        Raises:
            Unavailable: no leader is known, or the call was already forwarded once.
            Unauthenticated: no caller is bound (the interceptor sits before authorisation).
        """
        if current_forwarded() is not None:
            raise errors.Unavailable(LEADER_CHANGED)
        addr = self._leadership.leader_addr()
        if not addr:
            raise errors.Unavailable(NO_LEADER)
        caller: Caller | None = self._principal or current_peer()
        if caller is None:
            raise errors.Unauthenticated(f"no authenticated caller to forward {shape.method}")
        peer_addr = "" if caller is Principal.LOCAL_OPERATOR else context.peer() or ""
        metadata = (
            *_copied_metadata(context.invocation_metadata()),
            *forwarded_metadata(caller, peer_addr),
        )
        # None without a deadline, whatever the stubs say.
        remaining: float | None = context.time_remaining()
        if remaining is None and shape.cardinality is Cardinality.UNARY_UNARY:
            remaining = self._unary_timeout
        channel = await self._channels.channel(addr)
        _log.debug("rpc forwarded", rpc=shape.method, leader_addr=addr)
        return _Outbound(addr, channel, metadata, remaining)


def _copied_metadata(metadata: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's own metadata, without grpc's entries and any forwarded identity it claimed."""
    return tuple(
        (key, value)
        for key, value in metadata or ()
        if not is_forwarded_key(key) and not key.lower().startswith(_RESERVED)
    )


_Prepare = Callable[[aio.ServicerContext[Any, Any], MethodShape], Awaitable[_Outbound]]


async def _refuse(
    context: aio.ServicerContext[Any, Any], err: errors.SwarmError, method: str
) -> None:
    _log.debug("rpc not forwarded", rpc=method, reason=err.message)
    await context.abort(code_for(err), err.message)


async def _relay_failure(
    context: aio.ServicerContext[Any, Any], err: aio.AioRpcError, out: _Outbound
) -> None:
    """Answer with the leader's status; a leader we could not reach is said so."""
    details = err.details() or ""
    # from_rpc_error recognises a failed connection (as opposed to the leader's own UNAVAILABLE).
    if err.code() == grpc.StatusCode.UNAVAILABLE and from_rpc_error(err).message.startswith(
        "TLS handshake failed"
    ):
        details = f"leader {out.addr} unreachable; retry ({details})"
    await context.abort(err.code(), details, err.trailing_metadata() or ())


def _forwarding_handler(shape: MethodShape, prepare: _Prepare) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler (raw bytes in and out) that forwards every call of `shape`."""
    if shape.cardinality is Cardinality.UNARY_UNARY:
        return grpc.unary_unary_rpc_method_handler(_unary_response(shape, prepare))
    if shape.cardinality is Cardinality.STREAM_UNARY:
        return grpc.stream_unary_rpc_method_handler(_unary_response(shape, prepare))
    if shape.cardinality is Cardinality.UNARY_STREAM:
        return grpc.unary_stream_rpc_method_handler(_stream_response(shape, prepare))
    return grpc.stream_stream_rpc_method_handler(_stream_response(shape, prepare))


def _start(shape: MethodShape, out: _Outbound, request: Any) -> Any:
    """Start the outbound call (bytes through: no serializers)."""
    kwargs: dict[str, Any] = {"timeout": out.timeout, "metadata": out.metadata}
    if shape.cardinality is Cardinality.UNARY_UNARY:
        return out.channel.unary_unary(shape.method)(request, **kwargs)
    if shape.cardinality is Cardinality.STREAM_UNARY:
        return out.channel.stream_unary(shape.method)(request, **kwargs)
    if shape.cardinality is Cardinality.UNARY_STREAM:
        return out.channel.unary_stream(shape.method)(request, **kwargs)
    return out.channel.stream_stream(shape.method)(request, **kwargs)


def _unary_response(shape: MethodShape, prepare: _Prepare) -> Any:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            out = await prepare(context, shape)
        except errors.SwarmError as err:
            await _refuse(context, err, shape.method)
            raise  # not reached: abort raises
        call = _start(shape, out, request)
        try:
            return await call
        except aio.AioRpcError as err:
            await _relay_failure(context, err, out)
            raise  # not reached: abort raises
        finally:
            # The caller went away (our task is cancelled): take the leader's call down too.
            call.cancel()

    return handler


def _stream_response(shape: MethodShape, prepare: _Prepare) -> Any:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            out = await prepare(context, shape)
        except errors.SwarmError as err:
            await _refuse(context, err, shape.method)
            raise  # not reached: abort raises
        call = _start(shape, out, request)
        try:
            async for item in call:
                yield item
        except aio.AioRpcError as err:
            await _relay_failure(context, err, out)
        finally:
            call.cancel()

    return handler


__all__ = [
    "DEFAULT_UNARY_TIMEOUT",
    "LEADER_CHANGED",
    "NO_LEADER",
    "ForwardInterceptor",
    "LeaderChannels",
    "LeaderView",
]
