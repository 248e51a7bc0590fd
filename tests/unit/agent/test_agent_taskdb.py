"""taskdb.py: writes are durable when they return; concurrent writes share a commit."""

from __future__ import annotations

import asyncio

import pytest

from swarmd import errors
from swarmd.agent.taskdb import TaskDB
from swarmd.api import objects_pb2
from swarmd.api import types_pb2 as t


def task(i):
    return objects_pb2.Task(id=f"t{i:02d}", desired_state=t.TASK_STATE_RUNNING)


@pytest.fixture
async def counting(tmp_path, monkeypatch):
    """An open TaskDB whose transactions are counted."""
    db = await TaskDB.open(tmp_path / "tasks.db")
    commits = []
    real = db._commit

    def commit(writes):
        commits.append(len(writes))
        real(writes)

    monkeypatch.setattr(db, "_commit", commit)
    yield db, commits
    await db.close()


async def reopened(db, tmp_path):
    await db.close()
    return await TaskDB.open(tmp_path / "tasks.db")


async def test_the_tasks_of_one_assignment_are_written_in_one_transaction(counting, tmp_path):
    db, commits = counting
    await db.put_tasks([task(i) for i in range(50)])
    assert commits == [50]
    again = await reopened(db, tmp_path)
    try:
        rows = await again.load()
        assert [r.task.id for r in rows] == [f"t{i:02d}" for i in range(50)]
        assert all(r.assigned and r.status is None for r in rows)
    finally:
        await again.close()


async def test_concurrent_status_writes_share_commits_and_all_land(counting, tmp_path):
    db, commits = counting
    await db.put_tasks([task(i) for i in range(50)])
    await asyncio.gather(
        *(
            db.put_status(f"t{i:02d}", t.TaskStatus(state=t.TASK_STATE_ACCEPTED, message=str(i)))
            for i in range(50)
        )
    )
    assert sum(commits[1:]) == 50
    assert len(commits) - 1 <= 2  # the first write's commit, then everything queued meanwhile
    again = await reopened(db, tmp_path)
    try:
        rows = await again.load()
        assert [r.status.message for r in rows] == [str(i) for i in range(50)]
    finally:
        await again.close()


async def test_a_cancelled_writer_still_gets_its_write_committed(counting, tmp_path):
    db, _ = counting
    await db.put_task(task(1))
    writer = asyncio.create_task(db.put_status("t01", t.TaskStatus(state=t.TASK_STATE_READY)))
    await asyncio.sleep(0)
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    again = await reopened(db, tmp_path)
    try:
        (row,) = await again.load()
        assert row.status.state == t.TASK_STATE_READY
    finally:
        await again.close()


async def test_assigned_flag_and_delete(counting, tmp_path):
    db, _ = counting
    await db.put_tasks([task(1), task(2)])
    await db.set_assigned("t01", False)
    await db.delete("t02")
    (row,) = await db.load()
    assert (row.task.id, row.assigned) == ("t01", False)


async def test_a_write_to_a_closed_database_is_refused(tmp_path):
    db = await TaskDB.open(tmp_path / "tasks.db")
    await db.close()
    with pytest.raises(errors.FailedPrecondition, match="task database is closed"):
        await db.put_task(task(1))


async def test_writers_are_not_left_waiting_when_the_flush_is_cancelled(tmp_path):
    db = await TaskDB.open(tmp_path / "tasks.db")
    try:
        await db.put_task(task(1))
        writer = asyncio.create_task(db.put_status("t01", t.TaskStatus(state=t.TASK_STATE_READY)))
        await asyncio.sleep(0)
        db._flusher.cancel()  # as when the loop shuts down
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(writer, 5)
    finally:
        await db.close()
