"""GrpcTransport against real mTLS servers: drops and reports while a peer is down, reconnects
when it comes back, keeps per-peer order, and chunks big snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import time

from swarmd.api import raft_pb2_grpc
from swarmd.ca import bootstrap
from swarmd.manager.raftnode.transport import GrpcTransport, RaftServicer
from swarmd.raft import (
    ConfState,
    Message,
    MessageType,
    RaftID,
    Snapshot,
    SnapshotMetadata,
)
from swarmd.rpc import server as rpcserver
from tests.component.raftnode.test_raft_grpc import manager_security


class Recorder:
    """A RaftHandler that records what it is told."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.unreachable: list[RaftID] = []
        self.snapshots: list[tuple[RaftID, bool]] = []

    def receive(self, msg: Message) -> None:
        self.received.append(msg)

    def report_unreachable(self, peer: RaftID) -> None:
        self.unreachable.append(peer)

    def report_snapshot(self, peer: RaftID, *, failed: bool) -> None:
        self.snapshots.append((peer, failed))


async def until(pred, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def heartbeat(n: int) -> Message:
    return Message(type=MessageType.HEARTBEAT, to=RaftID(2), from_=RaftID(1), term=n)


async def test_raft_transport_drops_while_down_then_reconnects_in_order(tmp_path):
    boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
    sender_sec, receiver_sec = manager_security(boot, "node-1"), manager_security(boot, "node-2")
    # find a free port, then leave it closed: the peer is down
    probe, port = rpcserver.cluster_server(receiver_sec, boot.cluster_id, "127.0.0.1:0")
    await probe.stop(None)

    local, remote = Recorder(), Recorder()
    transport = GrpcTransport(sender_sec, chunk_threshold=2048, chunk_size=1000)
    transport.set_peer(RaftID(2), f"127.0.0.1:{port}")
    runner = asyncio.create_task(transport.run(local))
    server = None
    try:
        await asyncio.sleep(0)  # let it start
        transport.send(heartbeat(1))
        snap = Snapshot(SnapshotMetadata(9, 2, ConfState(frozenset({RaftID(1)}))), b"s" * 5000)
        transport.send(Message(type=MessageType.SNAP, to=RaftID(2), from_=RaftID(1), snapshot=snap))
        # dropped, and the core is told (raft retries by itself)
        assert local.unreachable == [RaftID(2), RaftID(2)]
        assert local.snapshots == [(RaftID(2), True)]
        assert not transport.is_active(RaftID(2))

        server, _ = rpcserver.cluster_server(receiver_sec, boot.cluster_id, f"127.0.0.1:{port}")
        raft_pb2_grpc.add_RaftServicer_to_server(RaftServicer(remote, lambda _: None), server)
        await server.start()
        await until(lambda: transport.is_active(RaftID(2)), "the transport to reconnect")
        for n in range(2, 50):
            transport.send(heartbeat(n))
        transport.send(Message(type=MessageType.SNAP, to=RaftID(2), from_=RaftID(1), snapshot=snap))
        await until(lambda: len(remote.received) == 49, "49 messages to arrive")
        assert [m.term for m in remote.received[:48]] == list(range(2, 50))
        # the 5000-byte snapshot crossed in 1000-byte chunks and arrived whole
        assert remote.received[48].snapshot == snap
        await until(lambda: local.snapshots[-1:] == [(RaftID(2), False)], "snapshot report")

        # the peer restarts: the stream breaks, messages are dropped until it is back
        await server.stop(None)
        await until(lambda: not transport.is_active(RaftID(2)), "the broken stream to show")
        dropped = len(local.unreachable)
        transport.send(heartbeat(100))
        assert len(local.unreachable) == dropped + 1
        server, _ = rpcserver.cluster_server(receiver_sec, boot.cluster_id, f"127.0.0.1:{port}")
        raft_pb2_grpc.add_RaftServicer_to_server(RaftServicer(remote, lambda _: None), server)
        await server.start()
        await until(lambda: transport.is_active(RaftID(2)), "the transport to reconnect again")
        transport.send(heartbeat(101))
        await until(lambda: remote.received[-1].term == 101, "a message after the restart")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        if server is not None:
            await server.stop(None)


async def test_raft_transport_unknown_peer_is_reported_unreachable():
    boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
    local = Recorder()
    transport = GrpcTransport(manager_security(boot, "node-1"))
    runner = asyncio.create_task(transport.run(local))
    try:
        await asyncio.sleep(0)
        transport.send(Message(type=MessageType.APP, to=RaftID(7), from_=RaftID(1), term=1))
        assert local.unreachable == [RaftID(7)]
        assert not transport.is_active(RaftID(7))
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
