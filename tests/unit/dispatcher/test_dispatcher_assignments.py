"""The Assignments bookkeeping and the task status writer, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from swarmd import errors
from swarmd.api import dispatcher_pb2, objects_pb2, types_pb2
from swarmd.manager.dispatcher.assignments import AssignmentTracker
from swarmd.manager.dispatcher.taskstatus import TaskStatusWriter, should_apply
from swarmd.manager.store import MemoryStore

UPDATE = dispatcher_pb2.AssignmentChange.ASSIGNMENT_ACTION_UPDATE
REMOVE = dispatcher_pb2.AssignmentChange.ASSIGNMENT_ACTION_REMOVE
S = types_pb2


def _task(tid: str, node: str, state: int = S.TASK_STATE_ASSIGNED, version: int = 1):
    t = objects_pb2.Task(id=tid, node_id=node, service_id="svc", slot=1)
    t.status.state = state  # type: ignore[assignment]
    t.meta.version.index = version
    return t


def _ids(msg) -> list[tuple[str, int]]:
    return [(c.assignment.task.id, c.action) for c in msg.changes]


def test_a_status_report_coming_back_is_not_sent_to_the_node_again() -> None:
    tr = AssignmentTracker("n1")
    tr.complete([_task("a", "n1", S.TASK_STATE_ASSIGNED, version=1)])
    # The agent reported STARTING then RUNNING: only status and version moved.
    assert tr.incremental([_task("a", "n1", S.TASK_STATE_STARTING, version=2)], []) is None
    assert tr.incremental([_task("a", "n1", S.TASK_STATE_RUNNING, version=3)], []) is None
    # Asked to stop: the desired state is news to the node.
    stop = _task("a", "n1", S.TASK_STATE_RUNNING, version=4)
    stop.desired_state = S.TASK_STATE_SHUTDOWN
    msg = tr.incremental([stop], [])
    assert msg is not None
    assert _ids(msg) == [("a", UPDATE)]
    assert msg.changes[0].assignment.task.desired_state == S.TASK_STATE_SHUTDOWN


def test_a_task_still_assigned_is_sent_on_any_change() -> None:
    tr = AssignmentTracker("n1")
    tr.complete([_task("a", "n1", S.TASK_STATE_ASSIGNED, version=1)])
    again = _task("a", "n1", S.TASK_STATE_ASSIGNED, version=2)
    again.status.message = "assigned again"
    msg = tr.incremental([again], [])
    assert msg is not None
    assert _ids(msg) == [("a", UPDATE)]


def test_complete_set_holds_only_tasks_the_scheduler_placed_on_the_node() -> None:
    tr = AssignmentTracker("n1")
    msg = tr.complete(
        [
            _task("b", "n1"),
            _task("a", "n1", S.TASK_STATE_RUNNING),
            _task("p", "n1", S.TASK_STATE_PENDING),  # pre-set node, not yet validated
            _task("o", "n2"),
        ]
    )
    assert msg.type == dispatcher_pb2.AssignmentsMessage.TYPE_COMPLETE
    assert _ids(msg) == [("a", UPDATE), ("b", UPDATE)]
    assert msg.applies_to == ""
    assert msg.results_in == "1"


def test_incremental_sends_only_changes_and_chains_sequences() -> None:
    tr = AssignmentTracker("n1")
    tr.complete([_task("a", "n1")])
    assert tr.incremental([_task("a", "n1")], []) is None  # same version: nothing new
    msg = tr.incremental([_task("a", "n1", version=2), _task("b", "n1")], [])
    assert msg is not None
    assert msg.type == dispatcher_pb2.AssignmentsMessage.TYPE_INCREMENTAL
    assert _ids(msg) == [("a", UPDATE), ("b", UPDATE)]
    assert (msg.applies_to, msg.results_in) == ("1", "2")
    gone = tr.incremental([], ["b"])
    assert gone is not None
    assert _ids(gone) == [("b", REMOVE)]
    assert (gone.applies_to, gone.results_in) == ("2", "3")


def test_task_moved_away_is_removed_and_unknown_removals_are_ignored() -> None:
    tr = AssignmentTracker("n1")
    tr.complete([_task("a", "n1")])
    msg = tr.incremental([_task("a", "n2", version=2)], ["never-sent"])
    assert msg is not None
    assert _ids(msg) == [("a", REMOVE)]
    assert tr.incremental([], ["never-sent"]) is None


def test_status_only_moves_forward() -> None:
    running = types_pb2.TaskStatus(state=S.TASK_STATE_RUNNING)
    assert should_apply(running, types_pb2.TaskStatus(state=S.TASK_STATE_FAILED))
    assert not should_apply(running, types_pb2.TaskStatus(state=S.TASK_STATE_STARTING))
    assert not should_apply(running, types_pb2.TaskStatus(state=S.TASK_STATE_RUNNING))
    healthy = types_pb2.TaskStatus(state=S.TASK_STATE_RUNNING, health=S.HEALTH_STATE_HEALTHY)
    assert should_apply(running, healthy)


async def _store_with(*tasks) -> MemoryStore:
    store = MemoryStore(proposer=None)

    def fn(tx):
        for t in tasks:
            tx.tasks.create(t)

    await store.update(fn)
    return store


async def test_writer_applies_forward_reports_and_drops_stale_ones() -> None:
    store = await _store_with(_task("a", "n1"), _task("b", "n1", S.TASK_STATE_RUNNING))
    w = TaskStatusWriter(store)
    await w.submit(
        "n1",
        [
            ("a", types_pb2.TaskStatus(state=S.TASK_STATE_RUNNING, message="started")),
            ("b", types_pb2.TaskStatus(state=S.TASK_STATE_PREPARING)),  # replayed, older
            ("gone", types_pb2.TaskStatus(state=S.TASK_STATE_RUNNING)),  # reaped already
        ],
    )
    a = store.view(lambda tx: tx.tasks.get("a"))
    b = store.view(lambda tx: tx.tasks.get("b"))
    assert a.status.state == S.TASK_STATE_RUNNING
    assert a.status.message == "started"
    assert b.status.state == S.TASK_STATE_RUNNING


async def test_writer_refuses_reports_for_tasks_of_other_nodes() -> None:
    store = await _store_with(_task("a", "n2"))
    w = TaskStatusWriter(store)
    with pytest.raises(errors.PermissionDenied, match="not assigned to this node"):
        await w.submit("n1", [("a", types_pb2.TaskStatus(state=S.TASK_STATE_RUNNING))])
    assert store.view(lambda tx: tx.tasks.get("a")).status.state == S.TASK_STATE_ASSIGNED


async def test_concurrent_reports_coalesce_into_few_writes() -> None:
    tasks = [_task(f"t{i}", "n1") for i in range(20)]
    store = await _store_with(*tasks)
    before = store.version
    w = TaskStatusWriter(store)
    await asyncio.gather(
        *(w.submit("n1", [(t.id, types_pb2.TaskStatus(state=S.TASK_STATE_RUNNING))]) for t in tasks)
    )
    states = {t.status.state for t in store.view(lambda tx: tx.tasks.list())}
    assert states == {S.TASK_STATE_RUNNING}
    # 20 reports, at most a couple of transactions (the first write, then the rest together).
    assert store.version - before <= 2
