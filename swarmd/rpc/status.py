"""The only table between swarmd errors and gRPC status codes, used by servers and clients.

Servers: `StatusInterceptor` turns a SwarmError raised by any handler into the matching status
with the error's message (no traceback crosses the wire); any other exception becomes INTERNAL with
a generic text and is logged. Clients: `from_rpc_error` turns an AioRpcError back into a SwarmError.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from grpc import aio

from swarmd import errors

_log = structlog.get_logger(component="rpc")

# Order matters: subclasses before their bases.
_TO_CODE: tuple[tuple[type[errors.SwarmError], grpc.StatusCode], ...] = (
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotLeader, grpc.StatusCode.UNAVAILABLE),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)

_FROM_CODE: dict[grpc.StatusCode, Callable[[str], errors.SwarmError]] = {
    grpc.StatusCode.NOT_FOUND: lambda m: errors.NotFound("object", "", m),
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.ABORTED: errors.FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
}


def code_for(err: errors.SwarmError) -> grpc.StatusCode:
    """The gRPC status code for a swarmd error."""
    for kind, code in _TO_CODE:
        if isinstance(err, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def from_rpc_error(err: grpc.RpcError) -> errors.SwarmError:
    """Turn a client-side RPC failure into a SwarmError whose message is fit for a user."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else "") or ""
    if code == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in details
        or "Socket closed" in details
        or "handshake" in details.lower()
    ):
        return errors.Unavailable(
            "TLS handshake failed or manager unreachable" + (f" ({details})" if details else "")
        )
    make = _FROM_CODE.get(code)
    if make is None:
        return errors.SwarmError(details or f"rpc failed: {code.name.lower()}")
    return make(details)


async def _abort(context: aio.ServicerContext[Any, Any], exc: BaseException, method: str) -> None:
    if isinstance(exc, errors.SwarmError):
        await context.abort(code_for(exc), exc.message)
    _log.exception("rpc handler failed", rpc=method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}")


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Any]:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the one place handler errors become statuses
            await _abort(context, exc, method)

    return handler


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., Any]:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request, context):
                yield item
        except aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the one place handler errors become statuses
            await _abort(context, exc, method)

    return handler


def _wrap_method_handler(
    handler: grpc.RpcMethodHandler[Any, Any], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream(handler.unary_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary(handler.stream_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class StatusInterceptor(aio.ServerInterceptor):
    """Server interceptor mapping SwarmError (and unexpected errors) to gRPC statuses."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _wrap_method_handler(handler, handler_call_details.method)


__all__ = ["StatusInterceptor", "code_for", "from_rpc_error"]
