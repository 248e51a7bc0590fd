"""NodeInfo sums and the NodeSet bookkeeping of which tasks count where."""

from __future__ import annotations

from schedbuild import CPU, GIB, node, running, task

from swarmd.api import types_pb2
from swarmd.manager.scheduler import NodeInfo, NodeSet, holds_resources, is_cancelled, is_pending


def test_nodeinfo_sums_follow_add_replace_remove() -> None:
    info = NodeInfo(node("n", cpus=4, memory=8 * GIB))
    info.add_task(running("a", "web", "n", cpus=1, memory=1 * GIB, host_ports=[80]))
    info.add_task(running("b", "web", "n", cpus=0.5))
    info.add_task(running("c", "db", "n", memory=2 * GIB))
    assert (info.total_tasks, info.service_tasks("web"), info.service_tasks("db")) == (3, 2, 1)
    assert info.available_cpu == int(2.5 * CPU)
    assert info.available_memory == 5 * GIB
    assert info.uses_host_port((types_pb2.PortConfig.PROTOCOL_TCP, 80))

    # Same id again replaces, it does not add.
    info.add_task(running("a", "web", "n", cpus=2))
    assert info.total_tasks == 3
    assert info.available_cpu == int(1.5 * CPU)
    assert info.available_memory == 6 * GIB
    assert not info.uses_host_port((types_pb2.PortConfig.PROTOCOL_TCP, 80))

    assert info.remove_task("b") is not None
    assert info.remove_task("b") is None
    assert (info.total_tasks, info.service_tasks("web")) == (2, 1)
    assert info.available_cpu == 2 * CPU


def test_nodeinfo_clone_is_independent() -> None:
    info = NodeInfo(node("n"), [running("a", "web", "n", cpus=1)])
    copy = info.clone()
    copy.add_task(running("b", "web", "n", cpus=1))
    copy.remove_task("a")
    copy.add_task(running("c", "db", "n", host_ports=[8080]))
    assert (info.total_tasks, info.service_tasks("web"), info.available_cpu) == (1, 1, 3 * CPU)
    assert not info.uses_host_port((types_pb2.PortConfig.PROTOCOL_TCP, 8080))
    assert copy.total_tasks == 2


def test_nodeset_task_states() -> None:
    pending = task("p")
    placed = task("a", node_id="n", state=types_pb2.TASK_STATE_ASSIGNED)
    done = task("d", node_id="n", state=types_pb2.TASK_STATE_COMPLETE)
    doomed = task("x", desired=types_pb2.TASK_STATE_SHUTDOWN)
    new = task("w", state=types_pb2.TASK_STATE_NEW)
    assert [is_pending(t) for t in (pending, placed, done, doomed, new)] == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert [holds_resources(t) for t in (pending, placed, done)] == [False, True, False]
    assert [is_cancelled(t) for t in (pending, doomed, new)] == [False, True, False]

    s = NodeSet()
    s.load([node("n")], [pending, placed, done, doomed, new])
    assert [t.id for t in s.pending()] == ["p"]
    assert [t.id for t in s.cancelled()] == ["x"]
    assert list(s.nodes["n"].tasks) == ["a"]


def test_nodeset_follows_a_task_through_its_life() -> None:
    s = NodeSet()
    s.put_node(node("n", cpus=2))
    t = task("t", cpus=1)
    t.meta.version.index = 1
    s.put_task(t)
    assert s.has_pending()

    assigned = task("t", node_id="n", state=types_pb2.TASK_STATE_ASSIGNED, cpus=1)
    assigned.meta.version.index = 2
    s.put_task(assigned)
    assert not s.has_pending()
    assert s.nodes["n"].available_cpu == 1 * CPU

    finished = task("t", node_id="n", state=types_pb2.TASK_STATE_FAILED, cpus=1)
    finished.meta.version.index = 3
    s.put_task(finished)
    assert s.nodes["n"].total_tasks == 0
    assert s.task("t") is None


def test_nodeset_older_copies_never_win() -> None:
    s = NodeSet()
    s.put_node(node("n"))
    newer = task("t", node_id="n", state=types_pb2.TASK_STATE_RUNNING)
    newer.meta.version.index = 7
    s.put_task(newer)
    stale = task("t", node_id="n", state=types_pb2.TASK_STATE_ASSIGNED)
    stale.meta.version.index = 5
    assert not s.put_task(stale)
    kept = s.task("t")
    assert kept is not None
    assert kept.status.state == types_pb2.TASK_STATE_RUNNING


def test_nodeset_known_only_does_not_resurrect_deleted_tasks() -> None:
    s = NodeSet()
    s.put_node(node("n"))
    s.put_task(task("t"))
    s.remove_task("t")
    assigned = task("t", node_id="n", state=types_pb2.TASK_STATE_ASSIGNED)
    assigned.meta.version.index = 9
    assert not s.put_task(assigned, known_only=True)
    assert s.nodes["n"].total_tasks == 0


def test_nodeset_tasks_of_unknown_or_removed_nodes_count_when_the_node_appears() -> None:
    s = NodeSet()
    s.put_task(running("a", "web", "late", cpus=1))
    s.put_node(node("late", cpus=2))
    assert s.nodes["late"].available_cpu == 1 * CPU

    s.remove_node("late")
    assert "late" not in s.nodes
    s.put_node(node("late", cpus=2))
    assert s.nodes["late"].service_tasks("web") == 1

    s.remove_task("a")
    assert s.nodes["late"].total_tasks == 0


def test_nodeset_node_update_keeps_its_tasks() -> None:
    s = NodeSet()
    s.load([node("n", cpus=2)], [running("a", "web", "n", cpus=1)])
    s.put_node(node("n", cpus=8))
    assert s.nodes["n"].available_cpu == 7 * CPU


def test_nodeset_remembers_failures_per_node_and_service() -> None:
    def failed(tid: str, at: float, state: int = types_pb2.TASK_STATE_FAILED):
        t = task(tid, "web", node_id="n", state=state)
        t.meta.updated_at.FromSeconds(int(at))
        return t

    now = 1_700_000_000
    s = NodeSet()
    # Loading rebuilds the history from failed tasks still in the store.
    s.load([node("n")], [failed(f"old{i}", now - 100) for i in range(3)])
    assert not s.nodes["n"].is_faulty("web", now)
    s.put_task(failed("r1", now - 10, types_pb2.TASK_STATE_REJECTED))
    # The same task seen again (a later update of a failed task) is one failure, not two.
    s.put_task(failed("r1", now - 5, types_pb2.TASK_STATE_REJECTED))
    assert not s.nodes["n"].is_faulty("web", now)
    s.put_task(failed("f2", now - 1))
    assert s.nodes["n"].is_faulty("web", now)
    assert not s.nodes["n"].is_faulty("db", now)
    assert not s.nodes["n"].is_faulty("web", now + 300)
