"""MemoryNetwork: an in-process raft Transport for tests, with partitions.

Manager layer, raft node; used by the component tests to run several `RaftNode`s in one event
loop without sockets (dask's `inproc` comm plays the same part). Every message goes through the
wire codec (encoded, serialized, parsed, decoded), so the tests exercise `codec.py` too, and is
delivered on a later loop iteration, in send order per sender. A member is reachable while its
transport runs (`run` registers its handler; cancelling the driver unregisters it) and is not
isolated; messages to anyone else are dropped and reported unreachable, as `GrpcTransport` does.
"""

from __future__ import annotations

import asyncio

from swarmd.api import raft_pb2
from swarmd.manager.raftnode import codec
from swarmd.manager.raftnode.transport import RaftHandler
from swarmd.raft import Message, MessageType, RaftID


class MemoryNetwork:
    """The members' handlers, and which members are cut off."""

    def __init__(self) -> None:
        self._handlers: dict[RaftID, RaftHandler] = {}
        self._isolated: set[RaftID] = set()
        self.delivered = 0
        #: snapshot messages delivered, per recipient
        self.snapshots: dict[RaftID, int] = {}

    def transport(self, raft_id: RaftID) -> MemoryTransport:
        """A Transport for the member `raft_id`."""
        return MemoryTransport(self, raft_id)

    def isolate(self, raft_id: RaftID) -> None:
        """Drop every message to and from the member until `heal`."""
        self._isolated.add(raft_id)

    def heal(self, raft_id: RaftID) -> None:
        """Undo `isolate`."""
        self._isolated.discard(raft_id)

    def is_up(self, raft_id: RaftID) -> bool:
        """Is the member's transport running and not isolated?"""
        return raft_id in self._handlers and raft_id not in self._isolated

    def _register(self, raft_id: RaftID, handler: RaftHandler) -> None:
        self._handlers[raft_id] = handler

    def _unregister(self, raft_id: RaftID, handler: RaftHandler) -> None:
        if self._handlers.get(raft_id) is handler:
            del self._handlers[raft_id]

    def _deliver(self, sender: RaftID, wire: bytes) -> None:
        msg = codec.message_from_proto(raft_pb2.RaftMessage.FromString(wire))
        if not (self.is_up(sender) and self.is_up(msg.to)):
            return  # lost in flight; raft retries
        self._handlers[msg.to].receive(msg)
        self.delivered += 1
        if msg.type is MessageType.SNAP:
            self.snapshots[msg.to] = self.snapshots.get(msg.to, 0) + 1


class MemoryTransport:
    """One member's end of a MemoryNetwork (see `transport.Transport`). Loop-confined."""

    def __init__(self, network: MemoryNetwork, raft_id: RaftID) -> None:
        self._net = network
        self._id = raft_id
        self._peers: dict[RaftID, str] = {}
        self._handler: RaftHandler | None = None

    def set_peer(self, peer: RaftID, addr: str) -> None:
        """See `Transport.set_peer` (the address is only recorded)."""
        self._peers[peer] = addr

    def remove_peer(self, peer: RaftID) -> None:
        """See `Transport.remove_peer`."""
        self._peers.pop(peer, None)

    def send(self, msg: Message) -> None:
        """See `Transport.send`."""
        handler = self._handler
        if handler is None:
            return
        if msg.to not in self._peers or not self._net.is_up(msg.to) or not self.is_up():
            handler.report_unreachable(msg.to)
            if msg.type is MessageType.SNAP:
                handler.report_snapshot(msg.to, failed=True)
            return
        wire = codec.message_to_proto(msg).SerializeToString()
        asyncio.get_running_loop().call_soon(self._net._deliver, self._id, wire)
        if msg.type is MessageType.SNAP:
            handler.report_snapshot(msg.to, failed=False)

    def is_active(self, peer: RaftID) -> bool:
        """See `Transport.is_active`."""
        return peer in self._peers and self._net.is_up(peer) and self.is_up()

    def is_up(self) -> bool:
        """Is this member itself reachable?"""
        return self._net.is_up(self._id)

    async def run(self, handler: RaftHandler) -> None:
        """Be reachable until cancelled."""
        self._handler = handler
        self._net._register(self._id, handler)
        try:
            await asyncio.Event().wait()
        finally:
            self._net._unregister(self._id, handler)
            self._handler = None


__all__ = ["MemoryNetwork", "MemoryTransport"]
