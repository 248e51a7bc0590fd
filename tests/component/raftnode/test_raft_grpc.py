"""Three RaftNodes over real mutual-TLS gRPC on 127.0.0.1: replication, a chunked snapshot to a
late member, and a new leader after the old one stops.

Each member has a cluster-port server (`rpc.server.cluster_server`: client certificates
required, managers only for the Raft service) and a `GrpcTransport` dialing the others with
`rpc.channel.manager_channel`. Certificates come from a fresh cluster CA (`swarmd.ca`).
"""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from swarmd.api import raft_pb2, raft_pb2_grpc, types_pb2
from swarmd.ca import bootstrap
from swarmd.ca.certstore import credentials_from_pem
from swarmd.ca.rootca import Role, generate_key, key_to_pem, new_csr
from swarmd.ca.security import SecurityConfig
from swarmd.manager.raftnode import codec
from swarmd.manager.raftnode.members import AddressBook
from swarmd.manager.raftnode.node import RaftNode
from swarmd.manager.raftnode.settings import RaftSettings
from swarmd.manager.raftnode.transport import GrpcTransport, RaftServicer
from swarmd.raft import Message, MessageType, RaftID
from swarmd.rpc import server as rpcserver
from swarmd.rpc.channel import manager_channel
from tests.component.raftnode.test_raft_cluster import Cluster, names, until

CHUNK_THRESHOLD = 1024
CHUNK_SIZE = 700


class Relay:
    """The servicer's handler: forwards to whichever RaftNode currently runs for the port,
    recording the snapshot messages that arrive."""

    def __init__(self) -> None:
        self.node: RaftNode | None = None
        self.snapshot_sizes: list[int] = []

    def receive(self, msg: Message) -> None:
        if msg.type is MessageType.SNAP and msg.snapshot is not None:
            self.snapshot_sizes.append(len(msg.snapshot.data))
        if self.node is not None:
            self.node.receive(msg)

    def report_unreachable(self, peer: RaftID) -> None: ...

    def report_snapshot(self, peer: RaftID, *, failed: bool) -> None: ...

    def member(self, raft_id: RaftID) -> types_pb2.RaftMember | None:
        return self.node.address_book.get(raft_id) if self.node is not None else None


def manager_security(boot: bootstrap.ClusterBootstrap, node_id: str) -> SecurityConfig:
    key = generate_key()
    cert = boot.root_ca.sign_csr(
        new_csr(key), node_id, Role.MANAGER, boot.cluster_id, ["127.0.0.1"]
    )
    return SecurityConfig(credentials_from_pem(key_to_pem(key), cert, boot.root_ca.cert_pem))


async def test_raft_grpc_three_members_over_mtls(tmp_path):
    boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
    servers: list[aio.Server] = []
    relays: dict[int, Relay] = {}
    securities: dict[int, SecurityConfig] = {}
    ports: dict[int, int] = {}
    for i in (1, 2, 3):
        # the certificate's node id is the member's: servicers check senders against it
        securities[i] = manager_security(boot, f"node-{i}")
        server, ports[i] = rpcserver.cluster_server(securities[i], boot.cluster_id, "127.0.0.1:0")
        relays[i] = Relay()
        raft_pb2_grpc.add_RaftServicer_to_server(RaftServicer(relays[i], relays[i].member), server)
        await server.start()
        servers.append(server)

    def transport_for(member: types_pb2.RaftMember) -> GrpcTransport:
        return GrpcTransport(
            securities[member.raft_id], chunk_threshold=CHUNK_THRESHOLD, chunk_size=CHUNK_SIZE
        )

    settings = RaftSettings(
        tick_interval=0.03, snapshot_interval=10, keep_entries=2, propose_timeout=10
    )
    cluster = Cluster(
        tmp_path, transport_for, settings=settings, addr_for=lambda i: f"127.0.0.1:{ports[i]}"
    )
    try:
        # two of three form a quorum; the third starts once the log has been compacted
        for i in (1, 2):
            relays[i].node = await cluster.start(i)
        for n in range(30):
            version = await cluster.create(f"svc-{n:02d}")
        await cluster.converged(version)
        relays[3].node = await cluster.start(3)
        await cluster.converged(version)
        expected = [f"svc-{n:02d}" for n in range(30)]
        assert names(cluster.stores[3]) == expected
        # it was caught up by a snapshot too large for one message: it came in chunks
        assert any(size > CHUNK_THRESHOLD for size in relays[3].snapshot_sizes)

        old = await cluster.leader()
        await cluster.stop(old)
        relays[old].node = None
        new = await cluster.leader()
        assert new != old
        after = await cluster.create("after-failover")
        await cluster.converged(after)
        for store in cluster.stores.values():
            assert names(store) == sorted([*expected, "after-failover"])
        await until(
            lambda: all(
                n.leadership.state.leader_addr == f"127.0.0.1:{ports[new]}"
                for n in cluster.nodes.values()
            ),
            "every member to know the new leader's address",
        )
    finally:
        await cluster.stop_all()
        for server in servers:
            await server.stop(None)


async def test_raft_grpc_refuses_a_manager_speaking_for_another_member(tmp_path):
    boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
    own = manager_security(boot, "node-1")
    book = AddressBook([types_pb2.RaftMember(raft_id=2, node_id="node-2", addr="x:1")])
    received: list[Message] = []
    relay = Relay()
    relay.receive = received.append  # type: ignore[method-assign]
    server, port = rpcserver.cluster_server(own, boot.cluster_id, "127.0.0.1:0")
    raft_pb2_grpc.add_RaftServicer_to_server(RaftServicer(relay, book.get), server)
    await server.start()
    claim = Message(type=MessageType.HEARTBEAT, to=RaftID(1), from_=RaftID(2), term=3)
    request = raft_pb2.ProcessRaftMessageRequest(message=codec.message_to_proto(claim))
    try:
        for node_id, allowed in (("node-3", False), ("node-2", True)):
            channel = manager_channel(f"127.0.0.1:{port}", manager_security(boot, node_id))
            async with channel:
                stub = raft_pb2_grpc.RaftStub(channel)
                if allowed:
                    await stub.ProcessRaftMessage(request, timeout=10)
                    continue
                with pytest.raises(aio.AioRpcError) as err:
                    await stub.ProcessRaftMessage(request, timeout=10)
                assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
                assert "raft member 2 is node node-2, not node-3" in (err.value.details() or "")
        assert received == [claim]
        async with manager_channel(f"127.0.0.1:{port}", own) as channel:
            resolved = await raft_pb2_grpc.RaftStub(channel).ResolveAddress(
                raft_pb2.ResolveAddressRequest(raft_id=2), timeout=10
            )
        assert resolved.addr == "x:1"
    finally:
        await server.stop(None)
