"""worker.py: the tasks of one assignments message go to the task database in one transaction,
before any of their managers runs."""

from __future__ import annotations

import asyncio

from swarmd.agent.reporter import StatusReporter
from swarmd.agent.taskdb import TaskDB
from swarmd.agent.worker import Worker
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
