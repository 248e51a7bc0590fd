"""Follower-to-leader forwarding over real mTLS grpc.aio servers on 127.0.0.1.

Each manager serves echo handlers (Control.GetNode, NodeCA.NodeCertificateStatus,
Dispatcher.Session, LogBroker.PublishLogs) that answer with who they are and what
`current_peer()` says, so a test sees which manager served a call and as whom the caller arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc import aio

from swarmd import errors
from swarmd.api import (
    ca_pb2,
    ca_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    logs_pb2,
    logs_pb2_grpc,
    objects_pb2,
)
from swarmd.ca import bootstrap
from swarmd.ca.certstore import NodeCredentials, credentials_from_pem
from swarmd.ca.peer import Peer
from swarmd.ca.rootca import CA_SERVER_NAME, Role, generate_key, key_to_pem, new_csr
from swarmd.ca.security import SecurityConfig
from swarmd.identity import new_id
from swarmd.manager.leadership import LeadershipCell
from swarmd.rpc import identity
from swarmd.rpc import server as rpcserver
from swarmd.rpc.auth import current_peer
from swarmd.rpc.channel import control_channel
from swarmd.rpc.forward import ForwardInterceptor, LeaderChannels
from tests.component.ca.harness import mtls_channel

SESSION_ITEMS = 5


@dataclass
class EchoManager:
    """One manager: its server, leadership cell, channel cache and what its handlers saw."""

    name: str
    creds: NodeCredentials
    cell: LeadershipCell
    channels: LeaderChannels
    server: aio.Server | None = None
    port: int = 0
    calls: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    session_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    unary_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def follow(self, leader: EchoManager | None) -> None:
        self.cell.publish(
            is_leader=False,
            leader_id=leader.creds.node_id if leader else None,
            leader_addr=leader.addr if leader else None,
            term=1,
        )

    def _caller(self) -> tuple[str, str, str]:
        peer = current_peer()
        if peer is None:
            return "local-operator", "", ""
        return peer.node_id, peer.role.value, peer.cluster_id

    async def get_node(self, request, context) -> control_pb2.GetNodeResponse:
        self.calls.append("GetNode")
        if request.node_id == "missing":
            raise errors.NotFound("node", "missing")
        if request.node_id == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.unary_cancelled.set()
                raise
        node_id, role, cluster_id = self._caller()
        node = objects_pb2.Node(id=node_id)
        node.description.hostname = f"{self.name}|{role}|{cluster_id}"
        labels = node.spec.annotations.labels
        forwarded = identity.current_forwarded()
        labels["forwarded_by"] = forwarded.forwarder.node_id if forwarded else ""
        labels["caller_addr"] = identity.caller_address(context)
        labels["direct_peer"] = context.peer()
        remaining = context.time_remaining()
        labels["remaining"] = "none" if remaining is None else f"{remaining:.3f}"
        return control_pb2.GetNodeResponse(node=node)

    async def certificate_status(self, request, context) -> ca_pb2.NodeCertificateStatusResponse:
        self.calls.append("NodeCertificateStatus")
        peer = current_peer()
        forwarded = identity.current_forwarded()
        resp = ca_pb2.NodeCertificateStatusResponse()
        resp.certificate.cn = peer.node_id if peer else "anonymous"
        if peer is not None:
            resp.certificate.role = peer.role.to_proto()
        by = forwarded.forwarder.node_id if forwarded else ""
        resp.status.err = f"{self.name}|{peer.cluster_id if peer else ''}|{by}"
        return resp

    async def session(self, request, context) -> AsyncIterator[dispatcher_pb2.SessionMessage]:
        self.calls.append("Session")
        node_id, _, _ = self._caller()
        try:
            for i in range(SESSION_ITEMS):
                msg = dispatcher_pb2.SessionMessage(session_id=f"{self.name}-{i}")
                msg.node.id = node_id
                yield msg
            await asyncio.Event().wait()  # a live session: open until the agent goes away
        except asyncio.CancelledError:
            self.session_cancelled.set()
            raise

    async def publish_logs(self, request_iterator, context) -> logs_pb2.PublishLogsResponse:
        self.calls.append("PublishLogs")
        node_id, _, _ = self._caller()
        async for msg in request_iterator:
            self.published.append(f"{node_id}:{msg.subscription_id}")
        return logs_pb2.PublishLogsResponse()

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        return (
            grpc.method_handlers_generic_handler(
                "swarmkit.v1.Control",
                {
                    "GetNode": grpc.unary_unary_rpc_method_handler(
                        self.get_node,
                        request_deserializer=control_pb2.GetNodeRequest.FromString,
                        response_serializer=control_pb2.GetNodeResponse.SerializeToString,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "swarmkit.v1.NodeCA",
                {
                    "NodeCertificateStatus": grpc.unary_unary_rpc_method_handler(
                        self.certificate_status,
                        request_deserializer=ca_pb2.NodeCertificateStatusRequest.FromString,
                        response_serializer=(
                            ca_pb2.NodeCertificateStatusResponse.SerializeToString
                        ),
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "swarmkit.v1.Dispatcher",
                {
                    "Session": grpc.unary_stream_rpc_method_handler(
                        self.session,
                        request_deserializer=dispatcher_pb2.SessionRequest.FromString,
                        response_serializer=dispatcher_pb2.SessionMessage.SerializeToString,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "swarmkit.v1.LogBroker",
                {
                    "PublishLogs": grpc.stream_unary_rpc_method_handler(
                        self.publish_logs,
                        request_deserializer=logs_pb2.PublishLogsMessage.FromString,
                        response_serializer=logs_pb2.PublishLogsResponse.SerializeToString,
                    )
                },
            ),
        )


@dataclass
class Cluster:
    boot: bootstrap.ClusterBootstrap
    managers: list[EchoManager] = field(default_factory=list)
    servers: list[aio.Server] = field(default_factory=list)
    channels: list[aio.Channel] = field(default_factory=list)

    @property
    def cluster_id(self) -> str:
        return self.boot.cluster_id

    def issue(self, role: Role, cluster_id: str | None = None) -> NodeCredentials:
        key = generate_key()
        cert = self.boot.root_ca.sign_csr(
            new_csr(key), new_id(), role, cluster_id or self.cluster_id, ["127.0.0.1"]
        )
        return credentials_from_pem(key_to_pem(key), cert, self.boot.root_ca.cert_pem)

    async def add_manager(self, name: str, *, leader: bool) -> EchoManager:
        creds = self.boot.credentials if not self.managers else self.issue(Role.MANAGER)
        cell = LeadershipCell()
        if leader:
            cell.publish(is_leader=True, leader_id=creds.node_id, leader_addr=None, term=1)
        mgr = EchoManager(name, creds, cell, LeaderChannels.mtls(SecurityConfig(creds)))
        srv, mgr.port = rpcserver.cluster_server(
            SecurityConfig(creds),
            self.cluster_id,
            "127.0.0.1:0",
            extra_interceptors=[ForwardInterceptor(cell, mgr.channels)],
        )
        srv.add_generic_rpc_handlers(mgr.handlers())
        await srv.start()
        mgr.server = srv
        self.servers.append(srv)
        self.managers.append(mgr)
        return mgr

    async def control_socket(self, mgr: EchoManager, path: Path) -> aio.Channel:
        srv = rpcserver.control_server(
            path, [ForwardInterceptor(mgr.cell, mgr.channels, principal=identity.LOCAL_OPERATOR)]
        )
        srv.add_generic_rpc_handlers(mgr.handlers())
        await srv.start()
        self.servers.append(srv)
        channel = control_channel(str(path))
        self.channels.append(channel)
        return channel

    async def join_port(self, mgr: EchoManager) -> aio.Channel:
        key_pem, chain_pem = self.boot.join_cert
        srv, port = rpcserver.join_server(
            key_pem,
            chain_pem,
            "127.0.0.1:0",
            [ForwardInterceptor(mgr.cell, mgr.channels, principal=identity.ANONYMOUS)],
        )
        srv.add_generic_rpc_handlers(mgr.handlers())
        await srv.start()
        self.servers.append(srv)
        channel = aio.secure_channel(
            f"127.0.0.1:{port}",
            grpc.ssl_channel_credentials(root_certificates=self.boot.root_ca.cert_pem),
            options=[("grpc.ssl_target_name_override", CA_SERVER_NAME)],
        )
        self.channels.append(channel)
        return channel

    def dial(self, mgr: EchoManager, creds: NodeCredentials) -> aio.Channel:
        channel = mtls_channel(mgr.addr, creds, self.boot.root_ca.cert_pem)
        self.channels.append(channel)
        return channel

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        for mgr in self.managers:
            await mgr.channels.close()
        for srv in self.servers:
            await srv.stop(None)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster(bootstrap.init_cluster_ca("leader", "127.0.0.1"))
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def pair(cluster: Cluster) -> tuple[EchoManager, EchoManager]:
    leader = await cluster.add_manager("leader", leader=True)
    follower = await cluster.add_manager("follower", leader=False)
    follower.follow(leader)
    return leader, follower


async def get_node(channel: aio.Channel, node_id: str = "x", deadline: float | None = 10):
    resp = await control_pb2_grpc.ControlStub(channel).GetNode(
        control_pb2.GetNodeRequest(node_id=node_id), timeout=deadline
    )
    return resp.node


async def test_worker_call_through_follower_arrives_at_leader_as_the_worker(cluster, pair) -> None:
    leader, follower = pair
    worker = cluster.issue(Role.WORKER)
    resp = await ca_pb2_grpc.NodeCAStub(cluster.dial(follower, worker)).NodeCertificateStatus(
        ca_pb2.NodeCertificateStatusRequest(node_id=worker.node_id), timeout=10
    )
    assert resp.certificate.cn == worker.node_id
    assert resp.certificate.role == Role.WORKER.to_proto()
    assert resp.status.err == f"leader|{cluster.cluster_id}|{follower.creds.node_id}"
    assert leader.calls == ["NodeCertificateStatus"]
    assert follower.calls == []


async def test_manager_call_through_follower_keeps_identity_and_address(cluster, pair) -> None:
    _, follower = pair
    client = cluster.issue(Role.MANAGER)
    node = await get_node(cluster.dial(follower, client))
    assert node.id == client.node_id
    assert node.description.hostname == f"leader|swarm-manager|{cluster.cluster_id}"
    assert node.spec.annotations.labels["forwarded_by"] == follower.creds.node_id
    # The caller's own address as the follower saw it, not the follower's outgoing one.
    labels = node.spec.annotations.labels
    assert labels["caller_addr"].startswith("ipv4:127.0.0.1:")
    assert labels["caller_addr"] != labels["direct_peer"]  # direct peer: the follower
    assert follower.calls == []


async def test_worker_cannot_call_control_through_follower(cluster, pair) -> None:
    _, follower = pair
    channel = cluster.dial(follower, cluster.issue(Role.WORKER))
    with pytest.raises(aio.AioRpcError) as exc:
        await get_node(channel)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == "role swarm-worker may not call /swarmkit.v1.Control/GetNode"


async def test_server_stream_forwards_items_in_order_and_cancel_reaches_leader(
    cluster, pair
) -> None:
    leader, follower = pair
    worker = cluster.issue(Role.WORKER)
    stub = dispatcher_pb2_grpc.DispatcherStub(cluster.dial(follower, worker))
    stream = stub.Session(dispatcher_pb2.SessionRequest())
    got = [(await stream.read()) for _ in range(SESSION_ITEMS)]
    assert [m.session_id for m in got] == [f"leader-{i}" for i in range(SESSION_ITEMS)]
    assert {m.node.id for m in got} == {worker.node_id}
    assert not leader.session_cancelled.is_set()
    stream.cancel()
    # The agent going away ends the leader's handler too, not just the follower's.
    await asyncio.wait_for(leader.session_cancelled.wait(), 10)
    assert follower.calls == []


async def test_unary_cancel_reaches_leader(cluster, pair) -> None:
    leader, follower = pair
    stub = control_pb2_grpc.ControlStub(cluster.dial(follower, cluster.issue(Role.MANAGER)))
    call = stub.GetNode(control_pb2.GetNodeRequest(node_id="hang"), timeout=30)
    async with asyncio.timeout(10):
        while leader.calls != ["GetNode"]:  # noqa: ASYNC110 - the handler's own record
            await asyncio.sleep(0.005)
    call.cancel()
    await asyncio.wait_for(leader.unary_cancelled.wait(), 10)
    assert follower.calls == []


async def test_expired_caller_deadline_ends_the_leader_call(cluster, pair) -> None:
    leader, follower = pair
    channel = cluster.dial(follower, cluster.issue(Role.MANAGER))
    with pytest.raises(aio.AioRpcError) as exc:
        await get_node(channel, node_id="hang", deadline=0.5)
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(leader.unary_cancelled.wait(), 10)


async def test_client_stream_forwards_every_message(cluster, pair) -> None:
    leader, follower = pair
    worker = cluster.issue(Role.WORKER)
    stub = logs_pb2_grpc.LogBrokerStub(cluster.dial(follower, worker))

    async def messages() -> AsyncIterator[logs_pb2.PublishLogsMessage]:
        for i in range(20):
            yield logs_pb2.PublishLogsMessage(subscription_id=f"s{i}")

    await stub.PublishLogs(messages(), timeout=10)
    assert leader.published == [f"{worker.node_id}:s{i}" for i in range(20)]
    assert follower.calls == []


async def test_forged_forwarded_identity_from_worker_is_refused(cluster, pair) -> None:
    leader, _ = pair
    worker = cluster.issue(Role.WORKER)
    forged = identity.forwarded_metadata(
        Peer(node_id=new_id(), role=Role.MANAGER, cluster_id=cluster.cluster_id), ""
    )
    with pytest.raises(aio.AioRpcError) as exc:
        await control_pb2_grpc.ControlStub(cluster.dial(leader, worker)).GetNode(
            control_pb2.GetNodeRequest(node_id="x"), timeout=10, metadata=forged
        )
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not forward calls" in (exc.value.details() or "")
    assert leader.calls == []


async def test_forged_forwarded_identity_from_another_cluster_manager_is_refused(
    cluster, pair
) -> None:
    leader, _ = pair
    # Signed by our root but naming another cluster: authenticated, yet no forwarder of ours.
    stranger = cluster.issue(Role.MANAGER, cluster_id=new_id())
    forged = identity.forwarded_metadata(identity.LOCAL_OPERATOR, "")
    with pytest.raises(aio.AioRpcError) as exc:
        await control_pb2_grpc.ControlStub(cluster.dial(leader, stranger)).GetNode(
            control_pb2.GetNodeRequest(node_id="x"), timeout=10, metadata=forged
        )
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert leader.calls == []


async def test_forwarded_caller_is_authorised_at_the_leader(cluster, pair) -> None:
    leader, follower = pair
    # A (buggy or hostile) manager claims a worker called Control: the leader refuses it.
    forged = identity.forwarded_metadata(
        Peer(node_id=new_id(), role=Role.WORKER, cluster_id=cluster.cluster_id), ""
    )
    with pytest.raises(aio.AioRpcError) as exc:
        await control_pb2_grpc.ControlStub(cluster.dial(leader, follower.creds)).GetNode(
            control_pb2.GetNodeRequest(node_id="x"), timeout=10, metadata=forged
        )
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == "role swarm-worker may not call /swarmkit.v1.Control/GetNode"


async def test_caller_metadata_claiming_forwarding_is_not_passed_on(cluster, pair) -> None:
    leader, follower = pair
    # A manager client sends its own forwarded headers to a follower; the follower's auth treats
    # it as a forwarder (it is a manager), and since it does not lead it refuses a second hop.
    client = cluster.issue(Role.MANAGER)
    claim = identity.forwarded_metadata(
        Peer(node_id="someone-else", role=Role.MANAGER, cluster_id=cluster.cluster_id),
        "",
    )
    with pytest.raises(aio.AioRpcError) as exc:
        await control_pb2_grpc.ControlStub(cluster.dial(follower, client)).GetNode(
            control_pb2.GetNodeRequest(node_id="x"), timeout=10, metadata=claim
        )
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert exc.value.details() == "leader changed; retry"
    assert leader.calls == follower.calls == []


async def test_double_hop_is_refused(cluster, pair) -> None:
    leader, follower = pair
    # A second follower that wrongly believes the first follower leads.
    confused = await cluster.add_manager("confused", leader=False)
    confused.follow(follower)
    follower.follow(confused)  # ... and the first follower believes the same of it
    client = cluster.issue(Role.MANAGER)
    with pytest.raises(aio.AioRpcError) as exc:
        await get_node(cluster.dial(confused, client))
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert exc.value.details() == "leader changed; retry"
    assert leader.calls == follower.calls == confused.calls == []


async def test_no_leader_known_is_unavailable_with_retry_hint(cluster, pair) -> None:
    _, follower = pair
    follower.follow(None)
    with pytest.raises(aio.AioRpcError) as exc:
        await get_node(cluster.dial(follower, cluster.issue(Role.MANAGER)))
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert exc.value.details() == "no leader elected yet; retry"


async def test_leader_errors_come_back_unchanged(cluster, pair) -> None:
    _, follower = pair
    with pytest.raises(aio.AioRpcError) as exc:
        await get_node(cluster.dial(follower, cluster.issue(Role.MANAGER)), node_id="missing")
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert exc.value.details() == "node missing not found"


async def test_caller_deadline_is_propagated(cluster, pair) -> None:
    _, follower = pair
    channel = cluster.dial(follower, cluster.issue(Role.MANAGER))
    node = await get_node(channel, deadline=7)
    remaining = float(node.spec.annotations.labels["remaining"])
    assert 3 < remaining <= 7
    # No deadline from the caller: the forwarded unary call still gets one.
    node = await get_node(channel, deadline=None)
    remaining = float(node.spec.annotations.labels["remaining"])
    assert 30 < remaining <= 61  # grpc rounds deadlines up a little


async def test_local_operator_is_forwarded_as_local_operator(cluster, pair, tmp_path) -> None:
    leader, follower = pair
    channel = await cluster.control_socket(follower, tmp_path / "swarmd.sock")
    node = await get_node(channel)
    assert node.id == "local-operator"
    assert node.description.hostname == "leader||"
    assert node.spec.annotations.labels["forwarded_by"] == follower.creds.node_id
    assert leader.calls == ["GetNode"]
    assert follower.calls == []


async def test_joining_node_on_follower_join_port_is_forwarded_as_anonymous(cluster, pair) -> None:
    leader, follower = pair
    channel = await cluster.join_port(follower)
    resp = await ca_pb2_grpc.NodeCAStub(channel).NodeCertificateStatus(
        ca_pb2.NodeCertificateStatusRequest(node_id="n"), timeout=10
    )
    assert resp.certificate.cn == "anonymous"  # current_peer() is None at the leader
    assert resp.status.err == f"leader||{follower.creds.node_id}"
    assert leader.calls == ["NodeCertificateStatus"]
    assert follower.calls == []


async def test_forwarded_anonymous_caller_is_limited_to_join_calls(cluster, pair) -> None:
    leader, follower = pair
    forged = identity.forwarded_metadata(identity.ANONYMOUS, "")
    with pytest.raises(aio.AioRpcError) as exc:
        await control_pb2_grpc.ControlStub(cluster.dial(leader, follower.creds)).GetNode(
            control_pb2.GetNodeRequest(node_id="x"), timeout=10, metadata=forged
        )
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == (
        "a caller without a certificate may not call /swarmkit.v1.Control/GetNode"
    )
    assert leader.calls == []


async def test_leader_itself_serves_locally(cluster, pair) -> None:
    leader, _ = pair
    client = cluster.issue(Role.MANAGER)
    node = await get_node(cluster.dial(leader, client))
    assert node.id == client.node_id
    assert node.spec.annotations.labels["forwarded_by"] == ""
    assert leader.calls == ["GetNode"]


async def test_leader_change_moves_forwarding_to_the_new_leader(cluster, pair) -> None:
    leader, follower = pair
    channel = cluster.dial(follower, cluster.issue(Role.MANAGER))
    await get_node(channel)
    assert follower.channels.addr == leader.addr
    successor = await cluster.add_manager("successor", leader=True)
    leader.follow(successor)
    follower.follow(successor)
    node = await get_node(channel)
    assert node.description.hostname.startswith("successor|")
    assert follower.channels.addr == successor.addr
    assert leader.calls == ["GetNode"]


async def test_unreachable_leader_is_named(cluster, pair) -> None:
    leader, follower = pair
    assert leader.server is not None
    await leader.server.stop(None)
    with pytest.raises(aio.AioRpcError) as exc:
        await get_node(cluster.dial(follower, cluster.issue(Role.MANAGER)), deadline=10)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (exc.value.details() or "").startswith(f"leader {leader.addr} unreachable; retry")
