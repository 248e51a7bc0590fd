"""The agent: one dispatcher session at a time, with heartbeats, assignments and status reports.

`swarmd.node.Node` runs one Agent on every node (managers included, as in SwarmKit). It opens a
Session stream to a manager's cluster port over mTLS, heartbeats at the period the dispatcher asks
for, follows the Assignments stream into the `Worker`, and sends task statuses through the
`StatusReporter`. On any failure it closes the channel, backs off and tries the next known
manager; after reconnecting it re-reports every task's status. It re-reads the node description
every `DESCRIBE_INTERVAL` and starts a new session when it changed (new engine labels, resources).
Each session also serves the manager's log subscriptions (`swarmd.agent.logs`) on its channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import grpc
import structlog
from grpc import aio

from swarmd import errors
from swarmd.agent.logs import LogPublisher
from swarmd.agent.remotes import Remotes
from swarmd.agent.reporter import StatusReporter
from swarmd.agent.worker import Worker
from swarmd.api import dispatcher_pb2, dispatcher_pb2_grpc, logs_pb2_grpc, objects_pb2, types_pb2
from swarmd.rpc.backoff import Backoff
from swarmd.rpc.status import from_rpc_error

_log = structlog.get_logger(component="agent")

RPC_TIMEOUT = 5.0
DESCRIBE_INTERVAL = 20.0
ChannelFactory = Callable[[str], aio.Channel]
Describe = Callable[[], Awaitable[types_pb2.NodeDescription]]

_INCREMENTAL = dispatcher_pb2.AssignmentsMessage.TYPE_INCREMENTAL


class SessionLostError(Exception):
    """The current session ended; the agent reconnects."""


class Agent:
    """Keeps this node registered with the cluster's dispatcher and runs its tasks."""

    def __init__(
        self,
        remotes: Remotes,
        channel_factory: ChannelFactory,
        describe: Describe,
        worker: Worker | None = None,
        reporter: StatusReporter | None = None,
        on_node: Callable[[objects_pb2.Node], None] | None = None,
    ) -> None:
        self._remotes = remotes
        self._channel_factory = channel_factory
        self._describe = describe
        self._worker = worker
        self._reporter = reporter or StatusReporter()
        # Told of this node's own object (its desired role) from the dispatcher.
        self._on_node = on_node
        self._logs = LogPublisher(worker.controllers) if worker is not None else None
        self._backoff = Backoff(0.1, 8.0)
        self._description: types_pb2.NodeDescription | None = None
        self.connected = asyncio.Event()
        self.session_id = ""

    async def run(self) -> None:
        """Run sessions until cancelled."""
        reporter = asyncio.get_running_loop().create_task(self._reporter.run(), name="reporter")
        try:
            if self._worker is not None:
                await self._worker.start()
            await self._sessions()
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            if self._worker is not None:
                await self._worker.close()

    async def _sessions(self) -> None:
        while True:
            addr = self._remotes.pick()
            if addr is None:
                _log.warning("no manager known; waiting")
                await asyncio.sleep(self._backoff.next())
                continue
            try:
                await self._session(addr)
            except (grpc.RpcError, SessionLostError, errors.SwarmError) as err:
                reason = str(from_rpc_error(err)) if isinstance(err, grpc.RpcError) else str(err)
                _log.info("session ended", manager=addr, reason=reason)
            finally:
                self.connected.clear()
                self.session_id = ""
                self._reporter.set_sender(None)
            await asyncio.sleep(self._backoff.next())

    async def _session(self, addr: str) -> None:
        channel = self._channel_factory(addr)
        try:
            self._description = await self._describe()
            stub = dispatcher_pb2_grpc.DispatcherStub(channel)
            stream = stub.Session(dispatcher_pb2.SessionRequest(description=self._description))
            first = await asyncio.wait_for(stream.read(), timeout=RPC_TIMEOUT)
            if not isinstance(first, dispatcher_pb2.SessionMessage):
                raise SessionLostError("dispatcher closed the session")
            self.session_id = first.session_id
            self._remotes.update([m.addr for m in first.managers])
            if first.HasField("node") and self._on_node is not None:
                self._on_node(first.node)
            self._backoff.reset()
            self.connected.set()
            _log.info("session established", manager=addr, session_id=self.session_id)
            await self._serve(stub, stream, logs_pb2_grpc.LogBrokerStub(channel))
        finally:
            await channel.close(grace=None)

    async def _serve(
        self,
        stub: dispatcher_pb2_grpc.DispatcherAsyncStub,
        stream: aio.UnaryStreamCall[dispatcher_pb2.SessionRequest, dispatcher_pb2.SessionMessage],
        logs: logs_pb2_grpc.LogBrokerAsyncStub,
    ) -> None:
        session_id = self.session_id

        async def send(updates: Sequence[tuple[str, types_pb2.TaskStatus]]) -> None:
            req = dispatcher_pb2.UpdateTaskStatusRequest(session_id=session_id)
            for task_id, status in updates:
                req.updates.add(task_id=task_id).status.CopyFrom(status)
            await stub.UpdateTaskStatus(req, timeout=RPC_TIMEOUT)

        self._reporter.set_sender(send)
        if self._worker is not None:
            self._reporter.report_all(self._worker.statuses())
        loops = [
            self._heartbeats(stub),
            self._listen(stream),
            self._watch_description(),
        ]
        if self._worker is not None:
            loops.append(self._assignments(stub, self._worker))
        if self._logs is not None:
            loops.append(self._logs.run(logs))
        tasks = [asyncio.get_running_loop().create_task(c) for c in loops]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise SessionLostError("session ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

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
            if msg.HasField("node") and self._on_node is not None:
                self._on_node(msg.node)

    async def _heartbeats(self, stub: dispatcher_pb2_grpc.DispatcherAsyncStub) -> None:
        while True:
            resp = await stub.Heartbeat(
                dispatcher_pb2.HeartbeatRequest(session_id=self.session_id), timeout=RPC_TIMEOUT
            )
            period = resp.period.ToNanoseconds() / 1e9 or 1.0
            await asyncio.sleep(period)

    async def _assignments(
        self, stub: dispatcher_pb2_grpc.DispatcherAsyncStub, worker: Worker
    ) -> None:
        stream = stub.Assignments(dispatcher_pb2.AssignmentsRequest(session_id=self.session_id))
        expected = ""
        while True:
            msg = await stream.read()
            if not isinstance(msg, dispatcher_pb2.AssignmentsMessage):
                raise SessionLostError("dispatcher closed the assignments stream")
            if msg.type == _INCREMENTAL and msg.applies_to != expected:
                # A gap: the next session starts over with a complete set.
                raise SessionLostError(
                    f"assignments gap: expected {expected or '(start)'}, got {msg.applies_to}"
                )
            await worker.assign(msg)
            expected = msg.results_in

    async def _watch_description(self) -> None:
        while True:
            await asyncio.sleep(DESCRIBE_INTERVAL)
            try:
                now = await self._describe()
            except errors.SwarmError as err:
                _log.info("cannot describe node", error=str(err))
                continue
            if now != self._description:
                _log.info("node description changed; re-registering")
                self._backoff.reset()
                raise SessionLostError("node description changed")


__all__ = ["Agent", "SessionLostError"]
