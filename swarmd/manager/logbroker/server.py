"""The Logs and LogBroker servicers: thin gRPC shells over `broker.LogBroker`.

Manager layer; `swarmd.manager.manager.Manager` registers `LogsServicer` on the control socket
and the cluster port (managers only, rpc/auth.py) and `LogBrokerServicer` on the cluster port
(every node, which is identified by its certificate, never by what it sends). Errors are
swarmd errors; rpc/status.py turns them into status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from swarmd import errors
from swarmd.api import logs_pb2, logs_pb2_grpc
from swarmd.manager.logbroker.broker import LogBroker
from swarmd.rpc.auth import current_peer


def _caller() -> str:
    peer = current_peer()
    if peer is None:
        raise errors.Unauthenticated("the log broker serves nodes with a certificate only")
    return peer.node_id


class LogsServicer(logs_pb2_grpc.LogsServicer):
    """SubscribeLogs for operators (swarmctl)."""

    def __init__(self, broker: LogBroker) -> None:
        self._broker = broker

    async def SubscribeLogs(  # noqa: N802 - gRPC method name
        self,
        request: logs_pb2.SubscribeLogsRequest,
        context: aio.ServicerContext[logs_pb2.SubscribeLogsRequest, logs_pb2.SubscribeLogsMessage],
    ) -> AsyncIterator[logs_pb2.SubscribeLogsMessage]:
        async for msg in self._broker.subscribe(request):
            yield msg


class LogBrokerServicer(logs_pb2_grpc.LogBrokerServicer):
    """ListenSubscriptions and PublishLogs for agents."""

    def __init__(self, broker: LogBroker) -> None:
        self._broker = broker

    async def ListenSubscriptions(  # noqa: N802 - gRPC method name
        self,
        request: logs_pb2.ListenSubscriptionsRequest,
        context: aio.ServicerContext[
            logs_pb2.ListenSubscriptionsRequest, logs_pb2.SubscriptionMessage
        ],
    ) -> AsyncIterator[logs_pb2.SubscriptionMessage]:
        async for msg in self._broker.listen(_caller()):
            yield msg

    async def PublishLogs(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[logs_pb2.PublishLogsMessage],
        context: aio.ServicerContext[Any, Any],
    ) -> logs_pb2.PublishLogsResponse:
        await self._broker.publish(_caller(), request_iterator)
        return logs_pb2.PublishLogsResponse()


__all__ = ["LogBrokerServicer", "LogsServicer"]
