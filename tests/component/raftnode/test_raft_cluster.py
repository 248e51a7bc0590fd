"""Three RaftNodes over the in-memory transport: election, replication, failover, catch-up.

Each node has its own SQLite raft state in a temp dir and its own MemoryStore; the tests write
through the leader's store, as the control API does, and read every replica. Ticks are real
(30 ms), so waits poll with generous deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmd import errors
from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.leadership import LeadershipCell
from swarmd.manager.raftnode.local import LocalProposer
from swarmd.manager.raftnode.memtransport import MemoryNetwork
from swarmd.manager.raftnode.node import RaftNode
from swarmd.manager.raftnode.settings import RaftSettings
from swarmd.manager.raftnode.transport import Transport
from swarmd.manager.store import MemoryStore
from swarmd.raft import RaftID

FAST = RaftSettings(tick_interval=0.03, election_tick=10, heartbeat_tick=1, propose_timeout=10)
DEADLINE = 20.0


async def until(pred: Callable[[], bool], what: str, within: float = DEADLINE) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def service(name: str) -> objects_pb2.Service:
    svc = objects_pb2.Service(id=f"id-{name}")
    svc.spec.annotations.name = name
    svc.spec.task.container.image = "busybox"
    return svc


def names(store: MemoryStore) -> list[str]:
    return sorted(s.spec.annotations.name for s in store.view(lambda tx: tx.services.list()))


class Cluster:
    """Raft members, each with a store (the first `founders` found the cluster); members can
    be stopped and restarted."""

    def __init__(
        self,
        root: Path,
        transport_for: Callable[[types_pb2.RaftMember], Transport],
        *,
        size: int = 3,
        founders: int | None = None,
        settings: RaftSettings = FAST,
        addr_for: Callable[[int], str] = lambda i: f"mem-{i}",
    ) -> None:
        self.root = root
        self.transport_for = transport_for
        self.settings = settings
        self.members = [
            types_pb2.RaftMember(raft_id=i, node_id=f"node-{i}", addr=addr_for(i))
            for i in range(1, size + 1)
        ]
        self.founders = self.members[: founders or size]
        self.nodes: dict[int, RaftNode] = {}
        self.stores: dict[int, MemoryStore] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        # the manager's own leadership view, fed by each node
        self.cells = {m.raft_id: LeadershipCell() for m in self.members}

    async def start(self, i: int, *, found: bool = True) -> RaftNode:
        member = self.members[i - 1]
        node = await RaftNode.open(
            self.root / member.node_id,
            self.transport_for(member),
            self.settings,
            member=member,
            rng=random.Random(i),
            publish_to=self.cells[i],
        )
        if not node.has_membership() and found:
            await node.bootstrap(self.founders)
        store = MemoryStore(proposer=node)
        await node.recover(store)
        self.nodes[i], self.stores[i] = node, store
        self.tasks[i] = asyncio.create_task(node.run(), name=f"raft-node-{i}")
        return node

    async def start_all(self) -> None:
        for i in range(1, len(self.members) + 1):
            await self.start(i)

    async def stop(self, i: int) -> None:
        task = self.tasks.pop(i)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.nodes.pop(i).close()
        self.stores.pop(i)

    async def stop_all(self) -> None:
        for i in list(self.tasks):
            await self.stop(i)

    async def leader(self, within: float = DEADLINE) -> int:
        """The member that leads and accepts writes (exactly one)."""
        found: list[int] = []

        def one_leader() -> bool:
            found[:] = [i for i, n in self.nodes.items() if n.leadership.state.is_leader]
            return len(found) == 1

        await until(one_leader, "a single leader", within)
        return found[0]

    async def create(self, name: str) -> int:
        """Create a service through whichever member leads (retrying across elections)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            store = self.stores[await self.leader()]
            try:
                await store.update(lambda tx: tx.services.create(service(name)))
                return store.version
            except (errors.NotLeader, errors.Unavailable):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def converged(self, version: int, members: list[int] | None = None) -> None:
        ids = members or list(self.stores)
        await until(
            lambda: all(self.stores[i].version >= version for i in ids),
            f"members {ids} to apply version {version}",
        )


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


async def test_raft_cluster_elects_a_leader_and_replicates_to_every_store(cluster):
    await cluster.start_all()
    leader = await cluster.leader()
    follower_states = [n.leadership.state for i, n in cluster.nodes.items() if i != leader]
    # every member learns who leads and where to reach it
    await until(
        lambda: all(n.leadership.state.leader_id == leader for n in cluster.nodes.values()),
        "followers to learn the leader",
    )
    assert all(not s.is_leader for s in follower_states)
    assert {n.leadership.state.leader_addr for n in cluster.nodes.values()} == {f"mem-{leader}"}
    # the manager's LeadershipCell names the leader by node id
    await until(
        lambda: all(c.leader_id() == f"node-{leader}" for c in cluster.cells.values()),
        "every cell to name the leader",
    )
    assert [i for i, c in cluster.cells.items() if c.is_leader()] == [leader]
    assert {c.leader_addr() for c in cluster.cells.values()} == {f"mem-{leader}"}
    version = 0
    for i in range(10):
        version = await cluster.create(f"web-{i}")
    await cluster.converged(version)
    expected = [f"web-{i}" for i in range(10)]
    for store in cluster.stores.values():
        assert names(store) == expected
        assert store.version == version
    # the replicas hold the same objects, version stamps included
    snaps = [s.snapshot() for s in cluster.stores.values()]
    assert all(s == snaps[0] for s in snaps)


async def test_raft_cluster_follower_refuses_writes_and_names_the_leader(cluster):
    await cluster.start_all()
    leader = await cluster.leader()
    await until(
        lambda: all(n.leadership.state.leader_id == leader for n in cluster.nodes.values()),
        "followers to learn the leader",
    )
    follower = next(i for i in cluster.nodes if i != leader)
    with pytest.raises(errors.NotLeader) as err:
        await cluster.stores[follower].update(lambda tx: tx.services.create(service("x")))
    assert err.value.leader_addr == f"mem-{leader}"
    assert names(cluster.stores[follower]) == []


async def test_raft_cluster_new_leader_after_the_leader_dies(cluster):
    await cluster.start_all()
    old = await cluster.leader()
    v1 = await cluster.create("before")
    await cluster.converged(v1)
    await cluster.stop(old)  # cancel its driver: it neither sends nor answers any more
    new = await cluster.leader()
    assert new != old
    v2 = await cluster.create("after")
    await cluster.converged(v2)
    for store in cluster.stores.values():
        assert names(store) == ["after", "before"]
    # the dead leader comes back as a follower and catches up
    await cluster.start(old)
    await cluster.converged(v2)
    assert names(cluster.stores[old]) == ["after", "before"]


async def test_raft_cluster_restarted_member_recovers_from_its_storage(cluster, network):
    await cluster.start_all()
    for i in range(5):
        version = await cluster.create(f"svc-{i}")
    await cluster.converged(version)
    leader = await cluster.leader()
    member = next(i for i in cluster.nodes if i != leader)
    await cluster.stop(member)
    more = await cluster.create("while-down")
    # restarted while cut off: everything it had comes from its own disk
    network.isolate(RaftID(member))
    await cluster.start(member)
    await until(lambda: cluster.stores[member].version >= version, "replay from storage")
    assert names(cluster.stores[member]) == [f"svc-{i}" for i in range(5)]
    network.heal(RaftID(member))
    await cluster.converged(more, [member])
    assert "while-down" in names(cluster.stores[member])


async def test_raft_cluster_far_behind_follower_gets_a_snapshot(tmp_path, network):
    settings = RaftSettings(
        tick_interval=0.03, snapshot_interval=20, keep_entries=5, propose_timeout=10
    )
    cluster = Cluster(tmp_path, lambda m: network.transport(RaftID(m.raft_id)), settings=settings)
    try:
        await cluster.start_all()
        leader = await cluster.leader()
        lagging = next(i for i in cluster.nodes if i != leader)
        network.isolate(RaftID(lagging))
        for i in range(60):
            version = await cluster.create(f"s{i:02d}")
        # the leader compacted its log past what the lagging member has
        assert cluster.nodes[leader].status().applied >= 60
        assert network.snapshots.get(RaftID(lagging), 0) == 0
        network.heal(RaftID(lagging))
        await cluster.converged(version, [lagging])
        assert network.snapshots[RaftID(lagging)] >= 1
        assert names(cluster.stores[lagging]) == [f"s{i:02d}" for i in range(60)]
        # and it keeps following with entries after the snapshot
        after = await cluster.create("after-snapshot")
        await cluster.converged(after)
        assert "after-snapshot" in names(cluster.stores[lagging])
        # a restart of the member now starts from the installed snapshot
        await cluster.stop(lagging)
        network.isolate(RaftID(lagging))
        await cluster.start(lagging)
        await until(lambda: cluster.stores[lagging].version >= after, "replay after snapshot")
        assert len(names(cluster.stores[lagging])) == 61
    finally:
        await cluster.stop_all()


async def test_raft_cluster_read_barrier_sees_committed_writes(cluster):
    await cluster.start_all()
    leader = await cluster.leader()
    version = await cluster.create("read-me")
    follower = next(i for i in cluster.nodes if i != leader)
    index = await cluster.nodes[follower].read_barrier()
    assert index >= version
    assert "read-me" in names(cluster.stores[follower])


async def test_raft_cluster_membership_add_promote_remove_and_transfer(tmp_path, network):
    cluster = Cluster(tmp_path, lambda m: network.transport(RaftID(m.raft_id)), size=4, founders=3)
    try:
        for i in (1, 2, 3):
            await cluster.start(i)
        leader = await cluster.leader()
        version = await cluster.create("existing")
        # a fourth manager joins with an empty log: learner first, then voter
        joiner = await cluster.start(4, found=False)
        joiner.learn_members(cluster.founders)  # what its Join call would have returned
        lead = cluster.nodes[leader]
        await lead.add_learner(cluster.members[3])
        await cluster.converged(version, [4])
        assert names(cluster.stores[4]) == ["existing"]
        assert RaftID(4) in lead.conf_state.learners
        with pytest.raises(errors.FailedPrecondition, match="raft member 4 is not a voter"):
            await lead.transfer_leadership(RaftID(4))
        await lead.promote(RaftID(4))
        assert lead.conf_state.voters == {1, 2, 3, 4}
        await until(lambda: cluster.nodes[4].conf_state.voters == {1, 2, 3, 4}, "promotion")
        assert cluster.nodes[4].address_book.addr(RaftID(leader)) == f"mem-{leader}"
        # hand leadership over, then the new leader removes the old one
        new = await lead.transfer_leadership(RaftID(4))
        assert new == 4
        assert await cluster.leader() == 4
        await cluster.nodes[4].remove_member(RaftID(leader))
        await until(lambda: cluster.nodes[leader].removed, "the removed member to learn it")
        v = await cluster.create("after-removal")
        survivors = [i for i in cluster.nodes if i != leader]
        await cluster.converged(v, survivors)
        with pytest.raises(errors.NotLeader):
            await cluster.stores[leader].update(lambda tx: tx.services.create(service("no")))
    finally:
        await cluster.stop_all()


async def test_raft_cluster_lone_member_leads_without_waiting_for_an_election(tmp_path, network):
    # An election timeout of 1000 ticks (30 s): only the immediate campaign of a lone voter
    # makes it lead within the deadline.
    slow = RaftSettings(tick_interval=0.03, election_tick=1000, propose_timeout=10)
    cluster = Cluster(
        tmp_path, lambda m: network.transport(RaftID(m.raft_id)), size=1, settings=slow
    )
    try:
        await cluster.start(1)
        assert await cluster.leader(within=10) == 1
        version = await cluster.create("solo")
        assert names(cluster.stores[1]) == ["solo"]
        # and again after a restart, from its own log
        await cluster.stop(1)
        await cluster.start(1)
        assert await cluster.leader(within=10) == 1
        assert cluster.stores[1].version >= version
        assert names(cluster.stores[1]) == ["solo"]
    finally:
        await cluster.stop_all()


async def test_raft_cluster_write_on_a_cut_off_leader_fails_and_never_appears(cluster, network):
    await cluster.start_all()
    old = await cluster.leader()
    leading = cluster.nodes[old].leadership.state
    assert leading.is_leader
    network.isolate(RaftID(old))
    with pytest.raises((errors.Unavailable, errors.NotLeader)):
        await cluster.stores[old].update(lambda tx: tx.services.create(service("lost")))
    # what the manager waits on to stop its leader-only components
    stepped_down = await asyncio.wait_for(cluster.nodes[old].leadership.changed(leading), 20)
    assert not stepped_down.is_leader
    assert not cluster.cells[old].is_leader()
    others = [i for i in cluster.nodes if i != old]
    new = await cluster.leader()
    assert new in others
    version = await cluster.create("kept")
    network.heal(RaftID(old))
    await cluster.converged(version)
    for store in cluster.stores.values():
        assert names(store) == ["kept"]


async def test_raft_node_adopts_a_single_voter_local_log(tmp_path, network):
    # state written by LocalProposer (the single-voter log), snapshot and compaction included
    proposer = await LocalProposer.open(tmp_path / "node-1", snapshot_interval=5, keep_entries=2)
    old = MemoryStore(proposer=proposer)
    await proposer.recover(old)
    for i in range(8):
        await old.update(lambda tx, i=i: tx.services.create(service(f"old-{i}")))
    await proposer.close()
    assert proposer.snapshot_index > 0

    cluster = Cluster(tmp_path, lambda m: network.transport(RaftID(m.raft_id)), size=1)
    try:
        node = await cluster.start(1)  # no membership in the log: it bootstraps by adoption
        assert node.has_membership()
        assert await cluster.leader() == 1
        assert names(cluster.stores[1]) == [f"old-{i}" for i in range(8)]
        await cluster.create("new")
        await cluster.stop(1)
        await cluster.start(1)
        assert await cluster.leader() == 1
        assert names(cluster.stores[1]) == sorted([*(f"old-{i}" for i in range(8)), "new"])
    finally:
        await cluster.stop_all()


async def test_raft_cluster_refuses_a_removal_that_would_lose_quorum(cluster, network):
    await cluster.start_all()
    leader = await cluster.leader()
    a, b = (i for i in cluster.nodes if i != leader)
    network.isolate(RaftID(b))
    with pytest.raises(errors.FailedPrecondition, match="1 of 2 voters reachable: no quorum"):
        await cluster.nodes[leader].remove_member(RaftID(a))
    assert cluster.nodes[leader].conf_state.voters == {1, 2, 3}
