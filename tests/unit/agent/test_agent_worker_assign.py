"""worker.py: the tasks of one assignments message go to the task database in one transaction,
before any of their managers runs; a task sent back only because its status moved is not news."""

from __future__ import annotations

import asyncio

from swarmd.agent.reporter import StatusReporter
from swarmd.agent.taskdb import TaskDB
from swarmd.agent.worker import Worker, is_status_echo
from swarmd.api import dispatcher_pb2, objects_pb2, specs_pb2
from swarmd.api import types_pb2 as t
from swarmd.testing.fake_executor import FakeExecutor

_UPDATE = dispatcher_pb2.AssignmentChange.ASSIGNMENT_ACTION_UPDATE
_COMPLETE = dispatcher_pb2.AssignmentsMessage.TYPE_COMPLETE


def assignments(n):
    changes = []
    for i in range(n):
        task = objects_pb2.Task(
            id=f"t{i:02d}",
            service_id="s1",
            slot=i + 1,
            spec=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="app:1")),
            status=t.TaskStatus(state=t.TASK_STATE_ASSIGNED),
            desired_state=t.TASK_STATE_RUNNING,
        )
        changes.append(
            dispatcher_pb2.AssignmentChange(
                assignment=dispatcher_pb2.Assignment(task=task), action=_UPDATE
            )
        )
    return dispatcher_pb2.AssignmentsMessage(type=_COMPLETE, changes=changes)


async def test_one_message_one_task_transaction_and_every_task_stored_first(tmp_path, monkeypatch):
    db = await TaskDB.open(tmp_path / "tasks.db")
    commits = []
    real = db._commit

    def commit(writes):
        stored = {row[1][0] for row in writes if row[0].startswith("INSERT")}
        commits.append((len(writes), stored))
        real(writes)

    monkeypatch.setattr(db, "_commit", commit)
    executor = FakeExecutor()
    worker = Worker(executor, db, StatusReporter())
    try:
        await worker.assign(assignments(20))
        # Nothing ran yet: the managers are tasks that have not had a turn.
        assert commits == [(20, {f"t{i:02d}" for i in range(20)})]
        for _ in range(200):
            rows = await db.load()
            if all(r.status is not None and r.status.state == t.TASK_STATE_RUNNING for r in rows):
                break
            await asyncio.sleep(0.02)
        assert [r.task.id for r in rows] == [f"t{i:02d}" for i in range(20)]
        assert {r.status.state for r in rows} == {t.TASK_STATE_RUNNING}
        # Status writes of tasks moving together shared commits.
        assert len(commits) < 1 + 20 * 5
    finally:
        await worker.close()
        await db.close()


def one_task(**fields):
    task = assignments(1).changes[0].assignment.task
    for name, value in fields.items():
        setattr(task, name, value)
    return task


def test_a_task_sent_back_with_only_meta_or_status_moved_is_an_echo():
    known = one_task()
    known.status.state = t.TASK_STATE_RUNNING
    echo = one_task()
    echo.meta.version.index = 42
    echo.status.state = t.TASK_STATE_STARTING  # what this node reported a moment ago
    assert is_status_echo(known, echo)
    shutdown = one_task(desired_state=t.TASK_STATE_SHUTDOWN)
    assert not is_status_echo(known, shutdown)
    new_spec = one_task()
    new_spec.spec.container.image = "app:2"
    assert not is_status_echo(known, new_spec)
    # A status the manager has further along than this node is news (TaskManager adopts it).
    ahead = one_task()
    ahead.status.state = t.TASK_STATE_COMPLETE
    assert not is_status_echo(known, ahead)


async def test_echoes_of_reported_statuses_are_not_stored_or_handed_on(tmp_path, monkeypatch):
    db = await TaskDB.open(tmp_path / "tasks.db")
    stored = []
    real = db.put_tasks

    async def put_tasks(tasks):
        stored.append([task.id for task in tasks])
        await real(tasks)

    monkeypatch.setattr(db, "put_tasks", put_tasks)
    worker = Worker(FakeExecutor(), db, StatusReporter())
    try:
        await worker.assign(assignments(2))
        incremental = dispatcher_pb2.AssignmentsMessage(
            type=dispatcher_pb2.AssignmentsMessage.TYPE_INCREMENTAL
        )
        echo = incremental.changes.add(action=_UPDATE)
        echo.assignment.task.CopyFrom(one_task())
        echo.assignment.task.meta.version.index = 7
        stop = incremental.changes.add(action=_UPDATE)
        stop.assignment.task.CopyFrom(one_task(id="t01", slot=2))
        stop.assignment.task.desired_state = t.TASK_STATE_SHUTDOWN
        await worker.assign(incremental)
        assert stored == [["t00", "t01"], ["t01"]]
        tasks = {task.id: task for task, _ in worker.controllers()}
        assert tasks["t00"].meta.version.index == 0  # the echo was not handed on
        assert tasks["t01"].desired_state == t.TASK_STATE_SHUTDOWN
        # A complete set of echoes stores nothing and still keeps the tasks it names.
        complete = assignments(2)
        complete.changes[1].assignment.task.desired_state = t.TASK_STATE_SHUTDOWN
        await worker.assign(complete)
        assert stored[-1] == []
        assert worker.task_ids() == ["t00", "t01"]
    finally:
        await worker.close()
        await db.close()
