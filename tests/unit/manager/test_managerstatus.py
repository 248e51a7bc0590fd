"""The manager status planner: leader, reachability and address as raft knows them."""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.managerstatus import plan
from swarmd.raft import RaftID

REACHABLE = types_pb2.ManagerStatus.REACHABILITY_REACHABLE
UNREACHABLE = types_pb2.ManagerStatus.REACHABILITY_UNREACHABLE


@dataclass
class FakeRaft:
    id: RaftID
    members: dict[str, types_pb2.RaftMember]
    reachable: set[int] = field(default_factory=set)

    def member_of_node(self, node_id: str) -> types_pb2.RaftMember | None:
        return self.members.get(node_id)

    def is_reachable(self, raft_id: RaftID) -> bool:
        return raft_id in self.reachable


def _node(nid: str, role: int = types_pb2.NODE_ROLE_MANAGER, **status) -> objects_pb2.Node:
    n = objects_pb2.Node(id=nid, role=role)  # type: ignore[arg-type]
    for k, v in status.items():
        setattr(n.manager_status, k, v)
    return n


def test_leader_and_reachability_follow_raft_and_unchanged_nodes_are_left_alone() -> None:
    raft = FakeRaft(
        RaftID(1),
        {
            "a": types_pb2.RaftMember(raft_id=1, node_id="a", addr="10.0.0.1:4242"),
            "b": types_pb2.RaftMember(raft_id=2, node_id="b", addr="10.0.0.2:4242"),
        },
        reachable={1},
    )
    nodes = [
        _node("a", raft_id=1, addr="10.0.0.1:4242", leader=True, reachability=REACHABLE),
        _node("b", raft_id=2, addr="10.0.0.2:4242", leader=True, reachability=REACHABLE),
        _node("c"),  # a manager raft does not know (yet): unreachable
        _node("w", role=types_pb2.NODE_ROLE_WORKER),
    ]
    changes = {c.node_id: c.status for c in plan(nodes, raft)}
    assert set(changes) == {"b", "c"}
    assert changes["b"].leader is False
    assert changes["b"].reachability == UNREACHABLE
    assert changes["c"].reachability == UNREACHABLE
    raft.reachable.add(2)
    nodes[1].manager_status.CopyFrom(changes["b"])
    (again,) = plan(nodes[:2], raft)
    assert again.node_id == "b"
    assert again.status.reachability == REACHABLE
