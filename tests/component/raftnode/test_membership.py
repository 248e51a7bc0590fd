"""Raft membership over the in-memory transport: joins as learners, promotion, quorum-safe
removal, rejoin, the RaftMembership servicer, and forcing a new cluster after quorum loss.

The clusters are those of test_raft_cluster (real SQLite raft state in a temp dir, 30 ms ticks);
joiners get the raft id their Join returned, as a manager does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from swarmd import errors
from swarmd.api import raft_pb2, types_pb2
from swarmd.ca.peer import Peer, reset_peer, set_peer
from swarmd.ca.rootca import Role
from swarmd.manager.raftnode.configuration import quorum_after_removal
from swarmd.manager.raftnode.membership import (
    Membership,
    Promoter,
    RaftMembershipServicer,
    substitute_host,
)
from swarmd.manager.raftnode.memtransport import MemoryNetwork
from swarmd.manager.raftnode.node import RaftNode
from swarmd.manager.raftnode.settings import RaftSettings
from swarmd.manager.store import MemoryStore
from swarmd.raft import RaftID
from swarmd.rpc.identity import Forwarded, reset_forwarded, set_forwarded
from tests.component.raftnode.test_raft_cluster import Cluster, names, service, until


@pytest.fixture
def network() -> MemoryNetwork:
    return MemoryNetwork()


@pytest.fixture
async def cluster(tmp_path, network):
    c = Cluster(tmp_path, lambda m: network.transport(RaftID(m.raft_id)))
    try:
        yield c
    finally:
        await c.stop_all()


@pytest.fixture
async def five(tmp_path, network):
    """Five manager slots, the first three founding the cluster."""
    c = Cluster(tmp_path, lambda m: network.transport(RaftID(m.raft_id)), size=5, founders=3)
    try:
        yield c
    finally:
        await c.stop_all()


@contextlib.asynccontextmanager
async def running(coro):
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def join(cluster: Cluster, membership: Membership, i: int) -> raft_pb2.JoinResponse:
    """What a new manager does: Join, then open an empty raft dir with the id it got."""
    resp = await membership.join(f"node-{i}", f"mem-{i}")
    cluster.members[i - 1] = types_pb2.RaftMember(
        raft_id=resp.raft_id, node_id=f"node-{i}", addr=f"mem-{i}"
    )
    joiner = await cluster.start(i, found=False)
    joiner.learn_members(resp.members)
    return resp


async def force_restart(cluster: Cluster, i: int) -> RaftNode:
    """Restart member i (stopped) the way `swarmd --force-new-cluster` does."""
    member = cluster.members[i - 1]
    node = await RaftNode.open(
        cluster.root / member.node_id,
        cluster.transport_for(member),
        cluster.settings,
        member=member,
        rng=random.Random(i),
    )
    await node.force_new_cluster()
    store = MemoryStore(proposer=node)
    await node.recover(store)
    cluster.nodes[i], cluster.stores[i] = node, store
    cluster.tasks[i] = asyncio.create_task(node.run())
    return node


class FakeContext:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer


@contextlib.contextmanager
def caller(node_id: str, role: Role = Role.MANAGER):
    token = set_peer(Peer(node_id=node_id, role=role, cluster_id="cluster-1"))
    try:
        yield
    finally:
        reset_peer(token)


async def test_membership_fourth_and_fifth_managers_join_as_learners_then_become_voters(five):
    for i in (1, 2, 3):
        await five.start(i)
    leader = await five.leader()
    version = await five.create("before-join")
    membership = Membership(five.nodes[leader], rng=random.Random(7))
    first = await join(five, membership, 4)
    assert first.raft_id not in (0, 1, 2, 3)
    lead = five.nodes[leader]
    # a learner, not a voter, until the promoter sees it caught up
    assert RaftID(first.raft_id) in lead.conf_state.learners
    assert lead.conf_state.voters == {1, 2, 3}
    assert sorted(m.node_id for m in first.members) == ["node-1", "node-2", "node-3", "node-4"]
    async with running(Promoter(membership, interval=0.05).run()):
        await until(lambda: RaftID(first.raft_id) in lead.conf_state.voters, "4th promoted")
        second = await join(five, membership, 5)
        assert second.raft_id != first.raft_id
        await until(lambda: len(lead.conf_state.voters) == 5, "5th promoted")
    assert lead.conf_state.learners == frozenset()
    v = await five.create("after-join")
    await five.converged(max(v, version))
    for i in (4, 5):
        assert names(five.stores[i]) == ["after-join", "before-join"]
        assert five.nodes[i].conf_state.voters == lead.conf_state.voters


async def test_membership_learner_is_not_promoted_while_it_lags(five, network):
    for i in (1, 2, 3):
        await five.start(i)
    leader = await five.leader()
    membership = Membership(five.nodes[leader], rng=random.Random(3))
    # a manager that joined but never started: it never catches up
    resp = await membership.join("node-4", "mem-4")
    for i in range(3):
        await five.create(f"s-{i}")
    assert await membership.promote_caught_up(max_lag=0) == []
    assert RaftID(resp.raft_id) in five.nodes[leader].conf_state.learners
    # the learner does not count for quorum: writes go on without it
    assert five.nodes[leader].conf_state.voters == {1, 2, 3}


async def test_membership_rejoin_with_the_same_node_id_gets_its_raft_id_back(five):
    for i in (1, 2, 3):
        await five.start(i)
    leader = await five.leader()
    membership = Membership(five.nodes[leader], rng=random.Random(1))
    resp = await join(five, membership, 4)
    conf = five.nodes[leader].conf_state
    again = await membership.join("node-4", "mem-4")
    assert again.raft_id == resp.raft_id
    assert five.nodes[leader].conf_state == conf
    # a founder rejoining (restarted manager) keeps its id too
    founder = await membership.join("node-2", "mem-2")
    assert founder.raft_id == 2


async def test_membership_join_on_a_follower_names_the_leader(five):
    for i in (1, 2, 3):
        await five.start(i)
    leader = await five.leader()
    await until(
        lambda: all(n.leadership.state.leader_id == leader for n in five.nodes.values()),
        "followers to learn the leader",
    )
    follower = next(i for i in five.nodes if i != leader)
    with pytest.raises(errors.NotLeader) as err:
        await Membership(five.nodes[follower]).join("node-4", "mem-4")
    assert err.value.leader_addr == f"mem-{leader}"
    with pytest.raises(errors.NotLeader):  # a member rejoining too: only the leader answers
        await Membership(five.nodes[follower]).join(f"node-{follower}", f"mem-{follower}")


async def test_membership_removal_refused_when_it_would_lose_quorum(cluster, network):
    await cluster.start_all()
    leader = await cluster.leader()
    a, b = (i for i in cluster.nodes if i != leader)
    membership = Membership(cluster.nodes[leader])
    network.isolate(RaftID(b))
    await until(lambda: not cluster.nodes[leader].is_reachable(RaftID(b)), "b unreachable")
    with pytest.raises(
        errors.FailedPrecondition,
        match=f"demoting node node-{a} would leave 1 of 2 managers reachable: quorum needs 2",
    ):
        await membership.remove_node(f"node-{a}", "demoting")
    assert cluster.nodes[leader].conf_state.voters == {1, 2, 3}
    # removing the unreachable one keeps the quorum (2 of 2 reachable)
    assert await membership.remove_node(f"node-{b}", "demoting")
    assert cluster.nodes[leader].conf_state.voters == {leader, a}
    assert not membership.is_member(f"node-{b}")
    assert await membership.remove_node(f"node-{b}") is False  # no longer a member
    v = await cluster.create("two-managers")
    await cluster.converged(v, [leader, a])


async def test_membership_servicer_join_and_leave(five):
    for i in (1, 2, 3):
        await five.start(i)
    leader = await five.leader()
    servicer = RaftMembershipServicer(Membership(five.nodes[leader], rng=random.Random(5)))
    ctx = FakeContext("ipv4:10.1.2.3:51234")
    with caller("node-4"):
        resp = await servicer.Join(raft_pb2.JoinRequest(addr="0.0.0.0:4242"), ctx)
    member = five.nodes[leader].address_book.get(RaftID(resp.raft_id))
    assert member is not None
    assert (member.node_id, member.addr) == ("node-4", "10.1.2.3:4242")
    with caller("worker-1", Role.WORKER), pytest.raises(errors.PermissionDenied, match="manager"):
        await servicer.Join(raft_pb2.JoinRequest(addr="10.0.0.9:4242"), ctx)
    with caller("node-4"), pytest.raises(errors.InvalidArgument, match="addr is required"):
        await servicer.Join(raft_pb2.JoinRequest(), ctx)
    # a manager may only take itself out
    leave = raft_pb2.LeaveRequest(node=types_pb2.RaftMember(node_id="node-2"))
    with caller("node-4"), pytest.raises(errors.PermissionDenied, match="may not remove node"):
        await servicer.Leave(leave, ctx)
    by_id = raft_pb2.LeaveRequest(node=types_pb2.RaftMember(raft_id=resp.raft_id))
    with caller("node-4"):
        await servicer.Leave(by_id, ctx)
    assert RaftID(resp.raft_id) not in five.nodes[leader].conf_state.learners
    assert five.nodes[leader].address_book.is_removed(RaftID(resp.raft_id))
    with caller("node-4"), pytest.raises(errors.NotFound, match="raft member node-4 not found"):
        await servicer.Leave(
            raft_pb2.LeaveRequest(node=types_pb2.RaftMember(node_id="node-4")), ctx
        )
    # forwarded by a follower: the joiner's address is the one the follower saw
    joiner = Peer(node_id="node-5", role=Role.MANAGER, cluster_id="cluster-1")
    follower = Peer(node_id="node-2", role=Role.MANAGER, cluster_id="cluster-1")
    token = set_forwarded(Forwarded(joiner, "ipv4:10.9.9.9:40000", follower))
    try:
        with caller("node-5"):
            fwd = await servicer.Join(raft_pb2.JoinRequest(addr="0.0.0.0:4242"), ctx)
    finally:
        reset_forwarded(token)
    assert five.nodes[leader].address_book.addr(RaftID(fwd.raft_id)) == "10.9.9.9:4242"
    # a removed manager that joins again gets a fresh raft id
    with caller("node-4"):
        fresh = await servicer.Join(raft_pb2.JoinRequest(addr="10.1.2.3:4242"), ctx)
    assert fresh.raft_id != resp.raft_id
    assert resp.raft_id in fresh.removed_members


def test_membership_quorum_arithmetic():
    voters = frozenset(RaftID(i) for i in (1, 2, 3))
    down_one = frozenset(RaftID(i) for i in (1, 2))
    assert not quorum_after_removal(voters, RaftID(2), down_one).keeps_quorum
    assert quorum_after_removal(voters, RaftID(3), down_one).keeps_quorum
    check = quorum_after_removal(voters, RaftID(2), down_one)
    assert (check.reachable, check.remaining, check.needed) == (1, 2, 2)
    # removing a non-voter changes nothing: 2 of 3 reachable keeps quorum
    assert quorum_after_removal(voters, RaftID(9), down_one).keeps_quorum
    five = frozenset(RaftID(i) for i in range(1, 6))
    three_up = frozenset(RaftID(i) for i in (1, 2, 3))
    assert quorum_after_removal(five, RaftID(5), three_up).keeps_quorum  # 3 of 4, needs 3
    assert not quorum_after_removal(five, RaftID(3), three_up).keeps_quorum  # 2 of 4


@pytest.mark.parametrize(
    ("addr", "peer", "expected"),
    [
        ("0.0.0.0:4242", "ipv4:10.0.0.5:5000", "10.0.0.5:4242"),
        ("[::]:4242", "ipv6:[fd00::5]:5000", "[fd00::5]:4242"),
        ("10.0.0.7:4242", "ipv4:10.0.0.5:5000", "10.0.0.7:4242"),
        ("manager-1:4242", "ipv4:10.0.0.5:5000", "manager-1:4242"),
        (":4242", "ipv4:10.0.0.5:5000", "10.0.0.5:4242"),
    ],
)
def test_membership_unspecified_host_becomes_the_peer_address(addr, peer, expected):
    assert substitute_host(addr, peer) == expected


async def test_membership_force_new_cluster_recovers_a_survivor_with_all_data(cluster):
    await cluster.start_all()
    for i in range(5):
        version = await cluster.create(f"svc-{i}")
    await cluster.converged(version)
    survivor = 3
    for i in (1, 2, survivor):
        await cluster.stop(i)
    # quorum is lost for good: only the survivor restarts, forcing a new cluster
    node = await force_restart(cluster, survivor)
    store = cluster.stores[survivor]
    assert await cluster.leader() == survivor
    assert node.conf_state.voters == {survivor}
    assert node.address_book.is_removed(RaftID(1))
    assert node.address_book.is_removed(RaftID(2))
    assert names(store) == [f"svc-{i}" for i in range(5)]
    after = await cluster.create("after-recovery")
    assert store.version == after
    # and it stays a cluster of one across a restart
    await cluster.stop(survivor)
    again = await cluster.start(survivor)
    assert await cluster.leader() == survivor
    assert again.conf_state.voters == {survivor}
    assert names(cluster.stores[survivor]) == sorted(
        [*(f"svc-{i}" for i in range(5)), "after-recovery"]
    )


async def test_membership_force_new_cluster_needs_a_membership(tmp_path, network):
    member = types_pb2.RaftMember(raft_id=1, node_id="node-1", addr="mem-1")
    node = await RaftNode.open(tmp_path / "n", network.transport(RaftID(1)), member=member)
    try:
        with pytest.raises(errors.FailedPrecondition, match="no membership"):
            await node.force_new_cluster()
    finally:
        await node.close()


async def test_membership_force_new_cluster_drops_an_uncommitted_tail(cluster, network):
    await cluster.start_all()
    await cluster.create("kept")
    old = await cluster.leader()
    await cluster.converged(cluster.stores[old].version)
    network.isolate(RaftID(old))
    # appended to the cut-off leader's log, never committed
    with pytest.raises((errors.Unavailable, errors.NotLeader)):
        await cluster.stores[old].update(lambda tx: tx.services.create(service("lost")))
    assert cluster.nodes[old].last_index() > cluster.stores[old].version
    for i in list(cluster.tasks):
        await cluster.stop(i)
    network.heal(RaftID(old))
    await force_restart(cluster, old)
    store = cluster.stores[old]
    assert await cluster.leader() == old
    await cluster.create("after")
    assert names(store) == ["after", "kept"]


async def test_membership_force_new_cluster_from_a_snapshot(tmp_path, network):
    settings = RaftSettings(
        tick_interval=0.03, snapshot_interval=5, keep_entries=1, propose_timeout=10
    )
    cluster = Cluster(tmp_path, lambda m: network.transport(RaftID(m.raft_id)), settings=settings)
    try:
        await cluster.start_all()
        for i in range(12):
            version = await cluster.create(f"s{i:02d}")
        await cluster.converged(version)
        for i in (1, 2, 3):
            await cluster.stop(i)
        assert list((tmp_path / "node-2" / "snapshots").glob("snap-*.bin"))  # compacted log
        node = await force_restart(cluster, 2)
        assert await cluster.leader() == 2
        assert node.conf_state.voters == {2}
        assert [m.raft_id for m in node.address_book.members()] == [2]
        assert names(cluster.stores[2]) == [f"s{i:02d}" for i in range(12)]
        await cluster.create("after")
        assert len(names(cluster.stores[2])) == 13
    finally:
        await cluster.stop_all()


async def test_membership_force_new_cluster_on_a_learner_makes_it_the_voter(five):
    for i in (1, 2, 3):
        await five.start(i)
    leader = await five.leader()
    version = await five.create("data")
    resp = await join(five, Membership(five.nodes[leader], rng=random.Random(11)), 4)
    await five.converged(version, [4])
    for i in list(five.tasks):
        await five.stop(i)
    node = await force_restart(five, 4)
    assert await five.leader() == 4
    assert node.conf_state.voters == {resp.raft_id}
    assert node.conf_state.learners == frozenset()
    assert names(five.stores[4]) == ["data"]
