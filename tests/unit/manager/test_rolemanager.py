"""The role manager: the pure rule, and the shell against a store and a scripted membership."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from swarmd import errors
from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.manager.raftnode.configuration import quorum_after_removal
from swarmd.manager.rolemanager import Action, RoleManager, decide
from swarmd.manager.store import MemoryStore
from swarmd.raft import RaftID
from swarmd.testing.fake_clock import FakeClock

MANAGER = types_pb2.NODE_ROLE_MANAGER
WORKER = types_pb2.NODE_ROLE_WORKER


def node(nid: str, desired: int, observed: int, cert: int | None = None) -> objects_pb2.Node:
    n = objects_pb2.Node(id=nid, role=observed)  # type: ignore[arg-type]
    n.spec.desired_role = desired  # type: ignore[assignment]
    n.spec.membership = specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED
    n.certificate.role = observed if cert is None else cert  # type: ignore[assignment]
    if observed == MANAGER:
        n.manager_status.addr = f"{nid}:4242"
    return n


def member(raft_id: int, nid: str) -> types_pb2.RaftMember:
    return types_pb2.RaftMember(raft_id=raft_id, node_id=nid, addr=f"{nid}:4242")


@dataclass
class FakeMembership:
    """Raft membership as the role manager sees it, with the real quorum arithmetic."""

    raft_id: RaftID
    by_node: dict[str, types_pb2.RaftMember]
    reachable: set[int] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def member_of_node(self, node_id: str) -> types_pb2.RaftMember | None:
        return self.by_node.get(node_id)

    def members(self) -> list[types_pb2.RaftMember]:
        return sorted(self.by_node.values(), key=lambda m: m.raft_id)

    async def remove_node(self, node_id: str, verb: str = "removing") -> bool:
        m = self.by_node.get(node_id)
        if m is None:
            return False
        voters = frozenset(RaftID(v.raft_id) for v in self.by_node.values())
        check = quorum_after_removal(
            voters, RaftID(m.raft_id), frozenset(RaftID(r) for r in self.reachable)
        )
        if not check.keeps_quorum:
            self.calls.append(f"refused {node_id}")
            raise errors.FailedPrecondition(
                f"{verb} node {node_id} would leave {check.reachable} of {check.remaining} "
                f"managers reachable: quorum needs {check.needed}"
            )
        self.calls.append(f"remove {node_id}")
        del self.by_node[node_id]
        return True

    async def transfer_leadership(self) -> RaftID:
        self.calls.append("transfer")
        return RaftID(2)


def three_managers() -> tuple[MemoryStore, FakeMembership]:
    store = MemoryStore()
    raft = FakeMembership(
        RaftID(1), {n: member(i, n) for i, n in enumerate(("m1", "m2", "m3"), 1)}, {1, 2, 3}
    )
    return store, raft


async def put(store: MemoryStore, *nodes: objects_pb2.Node) -> None:
    def fn(tx):
        for n in nodes:
            if tx.nodes.get(n.id) is None:
                tx.nodes.create(n)
            else:
                cur = tx.nodes.get(n.id)
                cur.spec.CopyFrom(n.spec)
                tx.nodes.update(cur)

    await store.update(fn)


def get(store: MemoryStore, nid: str) -> objects_pb2.Node | None:
    return store.view(lambda tx: tx.nodes.get(nid))


async def until(pred: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(rm: RoleManager):
    task = asyncio.create_task(rm.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [
        (node("a", MANAGER, MANAGER), member(2, "a"), Action.NOTHING),
        (node("a", WORKER, MANAGER), member(2, "a"), Action.REMOVE_MEMBER),
        (node("a", WORKER, MANAGER), member(1, "a"), Action.TRANSFER_LEADERSHIP),
        (node("a", WORKER, MANAGER), None, Action.OBSERVE_WORKER),
        (node("a", WORKER, WORKER), member(2, "a"), Action.REMOVE_MEMBER),
        (node("a", WORKER, WORKER), None, Action.NOTHING),
        (node("a", MANAGER, WORKER), None, Action.WAIT_FOR_CERTIFICATE),
        (node("a", MANAGER, WORKER, cert=MANAGER), None, Action.OBSERVE_MANAGER),
    ],
)
def test_rolemanager_decide(n, m, expected):
    assert decide(n, m, RaftID(1)) is expected


async def test_rolemanager_demotion_removes_the_raft_member_then_observes_worker():
    store, raft = three_managers()
    await put(store, node("m1", MANAGER, MANAGER), node("m2", MANAGER, MANAGER))
    await put(store, node("m3", WORKER, MANAGER))  # demoted by the operator
    async with running(RoleManager(store, raft, FakeClock())):
        await until(lambda: get(store, "m3").role == WORKER, "m3 observed worker")
    assert raft.calls == ["remove m3"]
    assert "m3" not in raft.by_node
    demoted = get(store, "m3")
    assert not demoted.HasField("manager_status")
    assert get(store, "m2").role == MANAGER


async def test_rolemanager_refused_demotion_is_retried_once_quorum_is_back():
    store, raft = three_managers()
    raft.reachable = {1, 2}  # m3 is down
    clock = FakeClock()
    await put(store, node("m1", MANAGER, MANAGER), node("m3", MANAGER, MANAGER))
    await put(store, node("m2", WORKER, MANAGER))
    async with running(RoleManager(store, raft, clock, retry_interval=5.0)):
        await until(lambda: raft.calls == ["refused m2"], "the refusal")
        await clock.advance(5.0)
        await until(lambda: raft.calls == ["refused m2", "refused m2"], "a retry")
        assert get(store, "m2").role == MANAGER  # still a manager: quorum first
        raft.reachable = {1, 2, 3}
        await clock.advance(5.0)
        await until(lambda: get(store, "m2").role == WORKER, "m2 observed worker")
    assert raft.calls[-1] == "remove m2"


async def test_rolemanager_leader_demoting_itself_transfers_leadership_first():
    store, raft = three_managers()
    await put(store, node("m2", MANAGER, MANAGER), node("m3", MANAGER, MANAGER))
    await put(store, node("m1", WORKER, MANAGER))  # m1 is this leader
    async with running(RoleManager(store, raft, FakeClock())):
        await until(lambda: raft.calls == ["transfer"], "the transfer")
        await asyncio.sleep(0.05)
    assert "m1" in raft.by_node  # not removed by itself
    assert get(store, "m1").role == MANAGER  # the next leader finishes the demotion
    # ... which is this same rule on the new leader (raft id 2)
    raft.raft_id = RaftID(2)
    async with running(RoleManager(store, raft, FakeClock())):
        await until(lambda: get(store, "m1").role == WORKER, "m1 observed worker")
    assert raft.calls == ["transfer", "remove m1"]


async def test_rolemanager_deleted_manager_node_leaves_raft():
    store, raft = three_managers()
    await put(store, node("m1", MANAGER, MANAGER), node("m2", MANAGER, MANAGER))
    # m3's node object is gone (removed with force), its raft member is not
    async with running(RoleManager(store, raft, FakeClock())):
        await until(lambda: "m3" not in raft.by_node, "m3 to leave raft")
    assert raft.calls == ["remove m3"]


async def test_rolemanager_promotion_waits_for_a_manager_certificate():
    store, raft = three_managers()
    await put(store, *(node(n, MANAGER, MANAGER) for n in ("m1", "m2", "m3")))
    await put(store, node("w1", MANAGER, WORKER))  # promoted, still a worker certificate
    async with running(RoleManager(store, raft, FakeClock())):
        await asyncio.sleep(0.05)
        assert get(store, "w1").role == WORKER

        def renewed(tx):
            n = tx.nodes.get("w1")
            n.certificate.role = MANAGER
            tx.nodes.update(n)

        await store.update(renewed)  # what the CA records once it signed a manager certificate
        await until(lambda: get(store, "w1").role == MANAGER, "w1 observed manager")
    assert raft.calls == []
