"""Demotion and removal of managers against a real 3-manager raft cluster (in-memory transport):
the control API's quorum rules with the leader's Membership, and the role manager carrying the
demotion out (raft member first, the leader handing over before its own demotion).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2, specs_pb2, types_pb2
from swarmd.clock import SystemClock
from swarmd.manager.controlapi.nodes import Nodes
from swarmd.manager.raftnode.membership import Membership
from swarmd.manager.raftnode.memtransport import MemoryNetwork
from swarmd.manager.rolemanager import RoleManager
from swarmd.raft import RaftID
from tests.component.raftnode.test_raft_cluster import Cluster, until

MANAGER = types_pb2.NODE_ROLE_MANAGER
WORKER = types_pb2.NODE_ROLE_WORKER


@pytest.fixture
def network() -> MemoryNetwork:
    return MemoryNetwork()


@pytest.fixture
async def cluster(tmp_path, network):
    c = Cluster(tmp_path, lambda m: network.transport(RaftID(m.raft_id)))
    try:
        await c.start_all()
        leader = await c.leader()
        await c.stores[leader].update(_create_manager_nodes)
        yield c
    finally:
        await c.stop_all()


def _create_manager_nodes(tx) -> None:
    for i in (1, 2, 3):
        n = objects_pb2.Node(id=f"node-{i}", role=MANAGER)
        n.spec.desired_role = MANAGER
        n.spec.membership = specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED
        n.certificate.role = MANAGER
        n.status.state = objects_pb2.NodeStatus.STATE_READY
        tx.nodes.create(n)


def nodes_api(cluster: Cluster, leader: int) -> Nodes:
    return Nodes(cluster.stores[leader], SystemClock(), Membership(cluster.nodes[leader]))


async def demote(api: Nodes, cluster: Cluster, leader: int, node_id: str) -> objects_pb2.Node:
    current = cluster.stores[leader].view(lambda tx: tx.nodes.get(node_id))
    spec = specs_pb2.NodeSpec()
    spec.CopyFrom(current.spec)
    spec.desired_role = WORKER
    return await api.update(
        control_pb2.UpdateNodeRequest(node_id=node_id, node_version=current.meta.version, spec=spec)
    )


def role(cluster: Cluster, i: int, node_id: str) -> int:
    return cluster.stores[i].view(lambda tx: tx.nodes.get(node_id)).role


@contextlib.asynccontextmanager
async def role_manager(cluster: Cluster, leader: int):
    rm = RoleManager(
        cluster.stores[leader], Membership(cluster.nodes[leader]), SystemClock(), retry_interval=0.1
    )
    task = asyncio.create_task(rm.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, errors.NotLeader):
            await task


async def test_membership_roles_demotion_refused_when_it_would_lose_quorum(cluster, network):
    leader = await cluster.leader()
    a, b = (i for i in cluster.nodes if i != leader)
    api = nodes_api(cluster, leader)
    network.isolate(RaftID(b))
    await until(lambda: not cluster.nodes[leader].is_reachable(RaftID(b)), "b unreachable")
    with pytest.raises(
        errors.FailedPrecondition,
        match=f"demoting node node-{a} would leave 1 of 2 managers reachable: quorum needs 2",
    ):
        await demote(api, cluster, leader, f"node-{a}")
    stored = cluster.stores[leader].view(lambda tx: tx.nodes.get(f"node-{a}"))
    assert stored.spec.desired_role == MANAGER
    # demoting the unreachable manager leaves 2 of 2 reachable: accepted, and carried out
    await demote(api, cluster, leader, f"node-{b}")
    async with role_manager(cluster, leader):
        await until(lambda: role(cluster, leader, f"node-{b}") == WORKER, "b observed worker")
    assert cluster.nodes[leader].conf_state.voters == {leader, a}


async def test_membership_roles_demotion_of_a_follower_removes_it_from_raft(cluster):
    leader = await cluster.leader()
    a = next(i for i in cluster.nodes if i != leader)
    api = nodes_api(cluster, leader)
    async with role_manager(cluster, leader):
        await demote(api, cluster, leader, f"node-{a}")
        await until(lambda: role(cluster, leader, f"node-{a}") == WORKER, "a observed worker")
    assert RaftID(a) not in cluster.nodes[leader].conf_state.voters
    await until(lambda: cluster.nodes[a].removed, "the demoted member to learn it")
    # of the last two, one may go (1 of 1 reachable keeps quorum), never both
    other = next(i for i in cluster.nodes if i not in (leader, a))
    await demote(api, cluster, leader, f"node-{other}")
    with pytest.raises(errors.FailedPrecondition, match="is the last manager of the swarm"):
        await demote(api, cluster, leader, f"node-{leader}")


async def test_membership_roles_leader_demoting_itself_transfers_leadership_first(cluster):
    old = await cluster.leader()
    api = nodes_api(cluster, old)
    await demote(api, cluster, old, f"node-{old}")
    async with role_manager(cluster, old):
        await until(
            lambda: any(n.leadership.state.is_leader for i, n in cluster.nodes.items() if i != old),
            "leadership to move away",
        )
    assert RaftID(old) in cluster.nodes[old].conf_state.voters  # it did not remove itself
    new = await cluster.leader()
    assert new != old
    async with role_manager(cluster, new):
        await until(lambda: role(cluster, new, f"node-{old}") == WORKER, "old leader demoted")
    assert cluster.nodes[new].conf_state.voters == {1, 2, 3} - {old}
    await until(lambda: cluster.nodes[old].removed, "the old leader to learn it was removed")


async def test_membership_roles_removal_of_a_manager(cluster, network):
    leader = await cluster.leader()
    a, b = (i for i in cluster.nodes if i != leader)
    api = nodes_api(cluster, leader)
    with pytest.raises(errors.FailedPrecondition, match="must be demoted to worker before removal"):
        await api.remove(control_pb2.RemoveNodeRequest(node_id=f"node-{a}"))
    network.isolate(RaftID(b))
    await until(lambda: not cluster.nodes[leader].is_reachable(RaftID(b)), "b unreachable")
    with pytest.raises(
        errors.FailedPrecondition,
        match=f"removing node node-{a} would leave 1 of 2 managers reachable: quorum needs 2",
    ):
        await api.remove(control_pb2.RemoveNodeRequest(node_id=f"node-{a}", force=True))
    # the unreachable one can go (with force); the role manager takes it out of raft
    await api.remove(control_pb2.RemoveNodeRequest(node_id=f"node-{b}", force=True))
    assert cluster.stores[leader].view(lambda tx: tx.nodes.get(f"node-{b}")) is None
    async with role_manager(cluster, leader):
        await until(
            lambda: RaftID(b) not in cluster.nodes[leader].conf_state.voters, "b to leave raft"
        )
    assert cluster.nodes[leader].conf_state.voters == {leader, a}


async def test_membership_roles_manager_node_outside_raft_is_removed_like_a_worker(cluster):
    leader = await cluster.leader()

    def stale_manager(tx) -> None:
        n = objects_pb2.Node(id="node-9", role=MANAGER)
        n.spec.desired_role = MANAGER
        n.status.state = objects_pb2.NodeStatus.STATE_DOWN
        tx.nodes.create(n)

    await cluster.stores[leader].update(stale_manager)
    await nodes_api(cluster, leader).remove(control_pb2.RemoveNodeRequest(node_id="node-9"))
    assert cluster.stores[leader].view(lambda tx: tx.nodes.get("node-9")) is None
