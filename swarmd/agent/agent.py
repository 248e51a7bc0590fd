"""The agent: one dispatcher session at a time, with heartbeats, backoff and manager failover.

`swarmd.node.Node` runs one Agent on every node (managers included, as in SwarmKit). It opens a
Session stream to a manager's cluster port over mTLS, heartbeats at the period the dispatcher asks
for, and on any failure closes the channel, backs off and tries the next known manager.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import structlog
from grpc import aio

from swarmd.agent.remotes import Remotes
from swarmd.api import dispatcher_pb2, dispatcher_pb2_grpc, types_pb2
from swarmd.rpc.backoff import Backoff
from swarmd.rpc.status import from_rpc_error

_log = structlog.get_logger(component="agent")

RPC_TIMEOUT = 5.0
ChannelFactory = Callable[[str], aio.Channel]


class SessionLostError(Exception):
    """The current session ended; the agent reconnects."""


class Agent:
    """Keeps this node registered with the cluster's dispatcher."""

    def __init__(
        self,
        remotes: Remotes,
        channel_factory: ChannelFactory,
        describe: Callable[[], types_pb2.NodeDescription],
    ) -> None:
        self._remotes = remotes
        self._channel_factory = channel_factory
        self._describe = describe
        self._backoff = Backoff(0.1, 8.0)
        self.connected = asyncio.Event()
        self.session_id = ""

    async def run(self) -> None:
        """Run sessions until cancelled."""
        while True:
            addr = self._remotes.pick()
            if addr is None:
                _log.warning("no manager known; waiting")
                await asyncio.sleep(self._backoff.next())
                continue
            try:
                await self._session(addr)
            except (grpc.RpcError, SessionLostError) as err:
                reason = str(from_rpc_error(err)) if isinstance(err, grpc.RpcError) else str(err)
                _log.info("session ended", manager=addr, reason=reason)
            finally:
                self.connected.clear()
                self.session_id = ""
            await asyncio.sleep(self._backoff.next())

    async def _session(self, addr: str) -> None:
        channel = self._channel_factory(addr)
        try:
            stub = dispatcher_pb2_grpc.DispatcherStub(channel)
            stream = stub.Session(
                dispatcher_pb2.SessionRequest(description=self._describe()),
            )
            first = await asyncio.wait_for(stream.read(), timeout=RPC_TIMEOUT)
            if not isinstance(first, dispatcher_pb2.SessionMessage):
                raise SessionLostError("dispatcher closed the session")
            self.session_id = first.session_id
            self._remotes.update([m.addr for m in first.managers])
            self._backoff.reset()
            self.connected.set()
            _log.info("session established", manager=addr, session_id=self.session_id)
            beats = asyncio.create_task(self._heartbeats(stub))
            listen = asyncio.create_task(self._listen(stream))
            try:
                done, _ = await asyncio.wait({beats, listen}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
                raise SessionLostError("session ended")
            finally:
                beats.cancel()
                listen.cancel()
                await asyncio.gather(beats, listen, return_exceptions=True)
        finally:
            await channel.close(grace=None)

    async def _listen(
        self,
        stream: aio.UnaryStreamCall[dispatcher_pb2.SessionRequest, dispatcher_pb2.SessionMessage],
    ) -> None:
        while True:
            msg = await stream.read()
            if not isinstance(msg, dispatcher_pb2.SessionMessage):
                raise SessionLostError("dispatcher closed the session")
            if msg.managers:
                self._remotes.update([m.addr for m in msg.managers])

    async def _heartbeats(self, stub: dispatcher_pb2_grpc.DispatcherAsyncStub) -> None:
        while True:
            resp = await stub.Heartbeat(
                dispatcher_pb2.HeartbeatRequest(session_id=self.session_id), timeout=RPC_TIMEOUT
            )
            period = resp.period.ToNanoseconds() / 1e9 or 1.0
            await asyncio.sleep(period)


__all__ = ["Agent", "SessionLostError"]
