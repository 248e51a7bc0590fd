"""Raft transport: the seam between the driver and the network, and its mTLS gRPC version.

Manager layer, raft node. `RaftNode` sends through a `Transport` and receives through the
`RaftHandler` it passes to `Transport.run`; peer messages arrive at `RaftServicer`, registered
on the manager's cluster port (mutual TLS, managers only: `rpc.auth`), which hands them to the
same handler. `memtransport.py` is the in-process Transport for tests.

`GrpcTransport` keeps one sender task per peer, each with one long-lived `StreamRaftMessage`
client stream over `rpc.channel.manager_channel`, so messages reach a peer in the order they
were sent. The messages queued while a write is under way share the next write (`more`), so
a busy leader pays gRPC's per-write cost once per batch rather than once per message. A peer
that cannot be reached is not waited for: while its sender reconnects (with jittered
exponential backoff, `rpc.backoff`), messages for it are dropped and the core is told
(`report_unreachable`); Raft retries by itself. Snapshot messages larger than
`CHUNK_THRESHOLD` (4 MiB) go on a stream of their own, split into chunks; the call carries the
`CHUNKED_METADATA` marker so the servicer reassembles them into one message. That call is made
by the peer's sender task in its turn, so the order of messages to a peer still holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

import structlog
from grpc import aio

from swarmd import errors
from swarmd.api import raft_pb2, raft_pb2_grpc, types_pb2
from swarmd.ca.peer import current_peer
from swarmd.ca.security import SecurityConfig
from swarmd.manager.raftnode import codec
from swarmd.raft import Message, MessageType, RaftID
from swarmd.rpc.backoff import Backoff
from swarmd.rpc.channel import manager_channel

_log = structlog.get_logger(component="raft-transport")

CHUNK_THRESHOLD = 4 * 1024 * 1024
CHUNK_SIZE = 2 * 1024 * 1024
CHUNKED_METADATA = ("swarmd-raft-chunked", "1")
QUEUE_SIZE = 4096
# Messages queued for a peer go out together, up to this many encoded bytes per stream write
# (below gRPC's 4 MiB default receive limit; a larger single message still goes alone).
WRITE_BATCH_BYTES = 2 * 1024 * 1024
CONNECT_TIMEOUT = 2.0  # a new channel (and a fresh first attempt) after this
# A message stream is replaced by a fresh one before its deadline passes.
STREAM_DEADLINE = 600.0
STREAM_ROTATE_AFTER = 300.0
SNAPSHOT_TIMEOUT = 120.0


class RaftHandler(Protocol):
    """The driver's side of a transport. Loop-confined; no method blocks or raises."""

    def receive(self, msg: Message) -> None:
        """A message from a peer (queued for the core)."""

    def report_unreachable(self, peer: RaftID) -> None:
        """A message to `peer` was dropped: it could not be reached."""

    def report_snapshot(self, peer: RaftID, *, failed: bool) -> None:
        """Sending a snapshot to `peer` finished (or failed)."""


class Transport(Protocol):
    """Carries raft messages between members. Loop-confined.

    `send` never blocks and never raises: a message that cannot be delivered is dropped and
    reported through the handler. Messages to one peer are delivered in send order (or not at
    all). Peers are named by raft id; `set_peer` (re)binds an id to an address.
    """

    def set_peer(self, peer: RaftID, addr: str) -> None:
        """Start talking to `peer` at `addr` (or move it there)."""

    def remove_peer(self, peer: RaftID) -> None:
        """Stop talking to `peer`; its queued messages are dropped."""

    def send(self, msg: Message) -> None:
        """Queue `msg` for `msg.to`."""

    def is_active(self, peer: RaftID) -> bool:
        """Is `peer` connected right now (for quorum-safety checks and reachability)?"""

    async def run(self, handler: RaftHandler) -> None:
        """Deliver messages and reports until cancelled."""


ChannelFactory = Callable[[str], aio.Channel]
_MessageCall = aio.StreamUnaryCall[
    raft_pb2.StreamRaftMessageRequest, raft_pb2.StreamRaftMessageResponse
]


class GrpcTransport:
    """The Transport over mTLS gRPC streams, one sender task per peer.

    Args:
        security: this manager's live credentials (a new channel uses the current ones).
        chunk_threshold: snapshot messages of more encoded bytes are sent in chunks.
        chunk_size: bytes of snapshot payload per chunk.
        queue_size: messages queued per connected peer before new ones are dropped.
        write_batch_bytes: queued messages share one stream write up to this many bytes.
        channel_factory: opens a channel to an address (tests may replace it).
    """

    def __init__(
        self,
        security: SecurityConfig,
        *,
        chunk_threshold: int = CHUNK_THRESHOLD,
        chunk_size: int = CHUNK_SIZE,
        queue_size: int = QUEUE_SIZE,
        write_batch_bytes: int = WRITE_BATCH_BYTES,
        channel_factory: ChannelFactory | None = None,
    ) -> None:
        self._open_channel: ChannelFactory = channel_factory or (
            lambda addr: manager_channel(addr, security)
        )
        self._chunk_threshold = chunk_threshold
        self._chunk_size = chunk_size
        self._queue_size = queue_size
        self._write_batch_bytes = write_batch_bytes
        self._peers: dict[RaftID, _Peer] = {}
        self._handler: RaftHandler | None = None
        self._tasks: dict[RaftID, asyncio.Task[None]] = {}

    def set_peer(self, peer: RaftID, addr: str) -> None:
        """See `Transport.set_peer`."""
        current = self._peers.get(peer)
        if current is not None and current.addr == addr:
            return
        self.remove_peer(peer)
        self._peers[peer] = _Peer(self, peer, addr)
        self._start(peer)

    def remove_peer(self, peer: RaftID) -> None:
        """See `Transport.remove_peer`."""
        self._peers.pop(peer, None)
        task = self._tasks.pop(peer, None)
        if task is not None:
            task.cancel()

    def send(self, msg: Message) -> None:
        """See `Transport.send`."""
        peer = self._peers.get(msg.to)
        if peer is None or not peer.offer(msg):
            self._report_dropped(msg)

    def is_active(self, peer: RaftID) -> bool:
        """See `Transport.is_active`."""
        p = self._peers.get(peer)
        return p is not None and p.active

    async def run(self, handler: RaftHandler) -> None:
        """Run the peers' senders until cancelled."""
        self._handler = handler
        try:
            for peer in self._peers:
                self._start(peer)
            await asyncio.Event().wait()
        finally:
            self._handler = None
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, peer: RaftID) -> None:
        if self._handler is None or peer in self._tasks:
            return
        self._tasks[peer] = asyncio.get_running_loop().create_task(
            self._peers[peer].run(), name=f"raft-peer-{peer:x}"
        )

    def _report_dropped(self, msg: Message) -> None:
        handler = self._handler
        if handler is None:
            return
        handler.report_unreachable(msg.to)
        if msg.type is MessageType.SNAP:
            handler.report_snapshot(msg.to, failed=True)


class _Peer:
    """One peer: a bounded queue and the task that streams it to the peer."""

    def __init__(self, transport: GrpcTransport, raft_id: RaftID, addr: str) -> None:
        self.transport = transport
        self.raft_id = raft_id
        self.addr = addr
        self.active = False
        self.queue: asyncio.Queue[Message] = asyncio.Queue(transport._queue_size)
        # A message taken from the queue that did not fit the last write, sent next.
        self._held: Message | None = None
        self._log = _log.bind(peer=f"{raft_id:x}", addr=addr)

    def offer(self, msg: Message) -> bool:
        """Queue a message; False (dropped) when disconnected or the queue is full."""
        if not self.active:
            return False
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            return False
        return True

    async def run(self) -> None:
        backoff = Backoff(initial=0.05, maximum=2.0)
        while True:
            try:
                await self._connect_and_stream()
            except (aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as err:
                self._log.debug("raft peer stream failed", error=_describe(err))
            except Exception:  # noqa: BLE001
                # Supervisor of this peer's stream: whatever broke it, reconnect after a pause.
                self._log.exception("raft peer sender failed")
            finally:
                if self.active:  # it was connected: start again from the shortest delay
                    backoff.reset()
                self._disconnect()
            await asyncio.sleep(backoff.next())

    def _disconnect(self) -> None:
        was_active, self.active = self.active, False
        if was_active:
            self._log.info("raft peer disconnected")
        if self._held is not None:
            self.transport._report_dropped(self._held)
            self._held = None
        while not self.queue.empty():
            self.transport._report_dropped(self.queue.get_nowait())

    async def _connect_and_stream(self) -> None:
        """Connect, then stream the queue until the stream breaks (it raises then)."""
        channel = self.transport._open_channel(self.addr)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await channel.channel_ready()
            stub = raft_pb2_grpc.RaftStub(channel)
            self.active = True
            self._log.info("raft peer connected")
            while True:
                await self._stream_once(stub)
        finally:
            await channel.close()

    async def _stream_once(self, stub: raft_pb2_grpc.RaftAsyncStub) -> None:
        """One message stream, until it is due for rotation or the peer ends it."""
        started = time.monotonic()
        call = stub.StreamRaftMessage(timeout=STREAM_DEADLINE)
        # The peer ending the call (it stopped, the connection broke) must be noticed while
        # idle too, not only at the next write.
        ended = asyncio.Event()
        call.add_done_callback(lambda _: ended.set())
        try:
            while not ended.is_set() and time.monotonic() - started < STREAM_ROTATE_AFTER:
                msg = await self._next(STREAM_ROTATE_AFTER, ended)
                if msg is not None:
                    await self._send(stub, call, msg)
            if not ended.is_set():
                await call.done_writing()
            await call  # raises the call's error when the peer broke it
        finally:
            call.cancel()

    async def _next(self, within: float, ended: asyncio.Event) -> Message | None:
        """The next queued message; None after `within` seconds or once the call ended."""
        if self._held is not None:
            msg, self._held = self._held, None
            return msg
        if not self.queue.empty():
            return self.queue.get_nowait()  # busy: no waiting machinery per message
        get = asyncio.ensure_future(self.queue.get())
        stop = asyncio.ensure_future(ended.wait())
        try:
            done, _ = await asyncio.wait(
                {get, stop}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            # Cancelling a pending Queue.get loses no item.
            get.cancel()
            stop.cancel()
        return get.result() if get in done else None

    async def _send(
        self,
        stub: raft_pb2_grpc.RaftAsyncStub,
        call: _MessageCall,
        msg: Message,
    ) -> None:
        pb = codec.message_to_proto(msg)
        handler = self.transport._handler
        if msg.type is MessageType.SNAP and pb.ByteSize() > self.transport._chunk_threshold:
            failed = not await self._send_chunked(stub, pb)
            if handler is not None:
                handler.report_snapshot(self.raft_id, failed=failed)
            return
        sent = [msg]
        request = raft_pb2.StreamRaftMessageRequest(message=pb)
        if msg.type is not MessageType.SNAP:
            self._take_more(request, sent, pb.ByteSize())
        try:
            await call.write(request)
        except BaseException:
            for each in sent:
                self.transport._report_dropped(each)
            raise
        if msg.type is MessageType.SNAP and handler is not None:
            handler.report_snapshot(self.raft_id, failed=False)

    def _take_more(
        self, request: raft_pb2.StreamRaftMessageRequest, sent: list[Message], size: int
    ) -> None:
        """Add the messages queued behind the first to the same write (not snapshots)."""
        limit = self.transport._write_batch_bytes
        while not self.queue.empty():
            msg = self.queue.get_nowait()
            if msg.type is MessageType.SNAP:
                self._held = msg
                return
            pb = codec.message_to_proto(msg)
            size += pb.ByteSize()
            if size > limit:
                self._held = msg
                return
            request.more.append(pb)
            sent.append(msg)

    async def _send_chunked(
        self, stub: raft_pb2_grpc.RaftAsyncStub, pb: raft_pb2.RaftMessage
    ) -> bool:
        """Send one snapshot message as chunks on its own call; True when the peer took it."""
        size = len(pb.snapshot.data)
        try:
            await stub.StreamRaftMessage(
                _chunks(pb, self.transport._chunk_size),
                timeout=SNAPSHOT_TIMEOUT,
                metadata=(CHUNKED_METADATA,),
            )
        except aio.AioRpcError as err:
            self._log.warning("raft snapshot not sent", size=size, error=_describe(err))
            return False
        self._log.info("raft snapshot sent in chunks", size=size)
        return True


async def _chunks(
    pb: raft_pb2.RaftMessage, chunk_size: int
) -> AsyncIterator[raft_pb2.StreamRaftMessageRequest]:
    """The message with the first slice of its snapshot payload, then bare payload slices."""
    data = pb.snapshot.data
    first = raft_pb2.RaftMessage()
    first.CopyFrom(pb)
    first.snapshot.data = data[:chunk_size]
    yield raft_pb2.StreamRaftMessageRequest(message=first)
    for lo in range(chunk_size, len(data), chunk_size):
        part = raft_pb2.RaftMessage(snapshot=raft_pb2.RaftSnapshot(data=data[lo : lo + chunk_size]))
        yield raft_pb2.StreamRaftMessageRequest(message=part)


def _describe(err: BaseException) -> str:
    if isinstance(err, aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return repr(err)


MemberLookup = Callable[[RaftID], types_pb2.RaftMember | None]


class RaftServicer(raft_pb2_grpc.RaftServicer):
    """The Raft gRPC service: hands peer messages to the driver; resolves member addresses.

    A message claiming to come from a known raft member must arrive from that member's node
    (the node id in the caller's certificate, bound by `rpc.auth`), so one manager cannot
    speak for another. Messages from ids not known yet (a member being added) pass; the
    driver drops those of removed members.

    Args:
        handler: the driver (its `receive` validates sender and recipient).
        members: raft id -> the member's record (None when unknown): `AddressBook.get`.
    """

    def __init__(self, handler: RaftHandler, members: MemberLookup) -> None:
        self._handler = handler
        self._members = members

    def _deliver(self, pb: raft_pb2.RaftMessage) -> None:
        msg = codec.message_from_proto(pb)
        peer = current_peer()
        member = self._members(msg.from_)
        if peer is not None and member is not None and member.node_id != peer.node_id:
            raise errors.PermissionDenied(
                f"raft member {msg.from_:x} is node {member.node_id}, not {peer.node_id}"
            )
        self._handler.receive(msg)

    async def ProcessRaftMessage(  # noqa: N802 (gRPC method name)
        self,
        request: raft_pb2.ProcessRaftMessageRequest,
        context: aio.ServicerContext[
            raft_pb2.ProcessRaftMessageRequest, raft_pb2.ProcessRaftMessageResponse
        ],
    ) -> raft_pb2.ProcessRaftMessageResponse:
        """One message."""
        self._deliver(request.message)
        return raft_pb2.ProcessRaftMessageResponse()

    async def StreamRaftMessage(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[raft_pb2.StreamRaftMessageRequest],
        context: aio.ServicerContext[
            raft_pb2.StreamRaftMessageRequest, raft_pb2.StreamRaftMessageResponse
        ],
    ) -> raft_pb2.StreamRaftMessageResponse:
        """A stream of whole messages, or (marked CHUNKED_METADATA) one chunked snapshot."""
        if _is_chunked(context.invocation_metadata() or ()):
            self._deliver(await _assemble(request_iterator))
        else:
            async for request in request_iterator:
                self._deliver(request.message)
                for more in request.more:
                    self._deliver(more)
        return raft_pb2.StreamRaftMessageResponse()

    async def ResolveAddress(  # noqa: N802 (gRPC method name)
        self,
        request: raft_pb2.ResolveAddressRequest,
        context: aio.ServicerContext[
            raft_pb2.ResolveAddressRequest, raft_pb2.ResolveAddressResponse
        ],
    ) -> raft_pb2.ResolveAddressResponse:
        """The address of a raft member.

        Raises:
            errors.NotFound: no member with that id is known.
        """
        member = self._members(RaftID(request.raft_id))
        if member is None or not member.addr:
            raise errors.NotFound("raft member", f"{request.raft_id:x}")
        return raft_pb2.ResolveAddressResponse(addr=member.addr)


def _is_chunked(metadata: Iterable[tuple[str, str | bytes]]) -> bool:
    return any((k, v) == CHUNKED_METADATA for k, v in metadata)


async def _assemble(
    request_iterator: AsyncIterator[raft_pb2.StreamRaftMessageRequest],
) -> raft_pb2.RaftMessage:
    """Join the chunks of one snapshot message.

    Raises:
        errors.InvalidArgument: the stream is empty or its first chunk is not a snapshot.
    """
    first: raft_pb2.RaftMessage | None = None
    parts: list[bytes] = []
    async for request in request_iterator:
        if first is None:
            first = request.message
        parts.append(request.message.snapshot.data)
    if first is None or not first.HasField("snapshot"):
        raise errors.InvalidArgument("chunked raft message stream carries no snapshot")
    first.snapshot.data = b"".join(parts)
    return first


__all__ = [
    "CHUNKED_METADATA",
    "CHUNK_THRESHOLD",
    "GrpcTransport",
    "RaftHandler",
    "RaftServicer",
    "Transport",
]
