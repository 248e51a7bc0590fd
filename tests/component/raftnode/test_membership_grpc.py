"""RaftMembership over the real cluster port (mutual TLS, the auth table, the status mapping):
a manager certificate joins and leaves, a worker certificate is refused, and the errors arrive
with their gRPC codes. The leader is a lone raft member on the in-memory transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import grpc
import pytest
from grpc import aio

from swarmd.api import raft_pb2, raft_pb2_grpc, types_pb2
from swarmd.ca import bootstrap
from swarmd.ca.certstore import credentials_from_pem
from swarmd.ca.rootca import Role, generate_key, key_to_pem, new_csr
from swarmd.ca.security import SecurityConfig
from swarmd.manager.raftnode.membership import Membership, RaftMembershipServicer
from swarmd.manager.raftnode.memtransport import MemoryNetwork
from swarmd.manager.raftnode.node import RaftNode
from swarmd.manager.store import MemoryStore
from swarmd.raft import RaftID
from swarmd.rpc import server as rpcserver
from swarmd.rpc.channel import manager_channel
from tests.component.raftnode.test_raft_cluster import FAST, until


def security_for(boot: bootstrap.ClusterBootstrap, node_id: str, role: Role) -> SecurityConfig:
    key = generate_key()
    cert = boot.root_ca.sign_csr(new_csr(key), node_id, role, boot.cluster_id, ["127.0.0.1"])
    return SecurityConfig(credentials_from_pem(key_to_pem(key), cert, boot.root_ca.cert_pem))


@pytest.fixture
async def leader(tmp_path):
    """A lone raft leader serving RaftMembership on an mTLS cluster port."""
    boot = bootstrap.init_cluster_ca("node-1", "127.0.0.1")
    me = types_pb2.RaftMember(raft_id=1, node_id="node-1", addr="127.0.0.1:1")
    node = await RaftNode.open(
        tmp_path / "raft", MemoryNetwork().transport(RaftID(1)), FAST, member=me
    )
    await node.bootstrap([me])
    await node.recover(MemoryStore(proposer=node))
    task = asyncio.create_task(node.run())
    server, port = rpcserver.cluster_server(
        security_for(boot, "node-1", Role.MANAGER), boot.cluster_id, "127.0.0.1:0"
    )
    servicer = RaftMembershipServicer(Membership(node, rng=random.Random(2)))
    raft_pb2_grpc.add_RaftMembershipServicer_to_server(servicer, server)
    await server.start()
    try:
        await until(lambda: node.leadership.state.is_leader, "the lone member to lead")
        yield boot, node, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await node.close()


@contextlib.asynccontextmanager
async def stub(addr: str, security: SecurityConfig):
    channel = manager_channel(addr, security)
    try:
        yield raft_pb2_grpc.RaftMembershipStub(channel)
    finally:
        await channel.close()


async def test_membership_grpc_manager_joins_worker_is_refused(leader):
    boot, node, addr = leader
    async with stub(addr, security_for(boot, "node-2", Role.MANAGER)) as membership:
        resp = await membership.Join(raft_pb2.JoinRequest(addr="0.0.0.0:4242"), timeout=10)
        again = await membership.Join(raft_pb2.JoinRequest(addr="0.0.0.0:4242"), timeout=10)
    assert again.raft_id == resp.raft_id
    joined = node.address_book.get(RaftID(resp.raft_id))
    assert joined is not None
    # the unspecified host became the address the call came from
    assert (joined.node_id, joined.addr) == ("node-2", "127.0.0.1:4242")
    assert RaftID(resp.raft_id) in node.conf_state.learners
    async with stub(addr, security_for(boot, "worker-1", Role.WORKER)) as membership:
        with pytest.raises(aio.AioRpcError) as err:
            await membership.Join(raft_pb2.JoinRequest(addr="127.0.0.1:4242"), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_membership_grpc_leave_refusals_carry_their_codes(leader):
    boot, node, addr = leader
    async with stub(addr, security_for(boot, "node-1", Role.MANAGER)) as membership:
        # the last voter cannot leave: the core refuses the change
        with pytest.raises(aio.AioRpcError) as err:
            await membership.Leave(
                raft_pb2.LeaveRequest(node=types_pb2.RaftMember(node_id="node-1")), timeout=10
            )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "last voter" in (err.value.details() or "")
    async with stub(addr, security_for(boot, "node-3", Role.MANAGER)) as membership:
        with pytest.raises(aio.AioRpcError) as err:
            await membership.Leave(
                raft_pb2.LeaveRequest(node=types_pb2.RaftMember(node_id="node-3")), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        resp = await membership.Join(raft_pb2.JoinRequest(addr="127.0.0.1:5000"), timeout=10)
        await membership.Leave(
            raft_pb2.LeaveRequest(node=types_pb2.RaftMember(raft_id=resp.raft_id)), timeout=10
        )
    assert node.address_book.is_removed(RaftID(resp.raft_id))
