"""The agent's local task database: assigned tasks and their last status, in SQLite.

Agent layer, used by `swarmd.agent.worker.Worker`. A restarted agent reads it to know which tasks
it had (and so which containers are its own to adopt) before any manager answers; SwarmKit keeps
the same in BoltDB (`worker/tasks.db`). One file per node under the state dir, WAL mode. SQLite
connections are bound to a thread, so every call runs on the database's own single thread, off
the event loop.

Writes are group-committed: the writes that arrive while a commit is on its way to the disk go
together into the next transaction, and each caller returns once its own write is durable.
With synchronous=FULL every commit costs an fsync, so 50 tasks reporting their states at once
wait for a few commits instead of a queue of 50 (benchmarks.md, "Workload path").
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from swarmd import errors
from swarmd.api import objects_pb2, types_pb2

_T = TypeVar("_T")

_Write = tuple[str, tuple[Any, ...]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    task BLOB NOT NULL,
    status BLOB,
    assigned INTEGER NOT NULL DEFAULT 1
)
"""


@dataclass(frozen=True, slots=True)
class StoredTask:
    """One row: the task as last assigned, its last known status, whether still assigned."""

    task: objects_pb2.Task
    status: types_pb2.TaskStatus | None
    assigned: bool


class TaskDB:
    """Durable map of task id -> (task, status, assigned); all methods are coroutines."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskdb")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[list[_Write], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> TaskDB:
        """Open (creating if needed) the database; FailedPrecondition when it is unusable."""
        db = cls(path)
        await db._run(db._open_sync)
        return db

    def _open_sync(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise errors.FailedPrecondition(
                f"task database {self._path} is unusable: {err}"
            ) from err
        self._conn = conn

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise errors.FailedPrecondition("task database is closed")
        return self._conn

    async def _write(self, writes: list[_Write]) -> None:
        """Apply `writes` in one transaction, shared with the writes queued meanwhile."""
        self._db()  # fail at once when closed
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((writes, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="taskdb-flush")
            self._flusher.add_done_callback(self._flusher_done)
        # Shielded: a cancelled caller's write is committed all the same, with the others.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            writes = [w for ws, _ in batch for w in ws]
            try:
                await self._run(functools.partial(self._commit, writes))
            except Exception as err:  # noqa: BLE001 - handed to every writer of the batch
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
            except BaseException:
                self._pending = batch + self._pending  # failed by _flusher_done
                raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _flusher_done(self, flusher: asyncio.Task[None]) -> None:
        # Cancelled (the loop is shutting down), maybe before it even ran: nobody may wait
        # for ever on a write it will not make.
        if flusher.cancelled():
            for _, done in self._pending:
                done.cancel()
            self._pending = []

    def _commit(self, writes: list[_Write]) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in writes:
                conn.execute(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def put_task(self, task: objects_pb2.Task) -> None:
        """Record a task as assigned (keeping its last status)."""
        await self.put_tasks([task])

    async def put_tasks(self, tasks: list[objects_pb2.Task]) -> None:
        """Record tasks as assigned (keeping their last status), in one transaction."""
        if not tasks:
            return
        await self._write(
            [
                (
                    "INSERT INTO tasks (id, task, assigned) VALUES (?, ?, 1) "
                    "ON CONFLICT(id) DO UPDATE SET task = excluded.task, assigned = 1",
                    (task.id, task.SerializeToString()),
                )
                for task in tasks
            ]
        )

    async def put_status(self, task_id: str, status: types_pb2.TaskStatus) -> None:
        """Record a task's latest status (the task row must exist)."""
        data = status.SerializeToString()
        await self._write([("UPDATE tasks SET status = ? WHERE id = ?", (data, task_id))])

    async def set_assigned(self, task_id: str, assigned: bool) -> None:
        await self._write(
            [("UPDATE tasks SET assigned = ? WHERE id = ?", (int(assigned), task_id))]
        )

    async def delete(self, task_id: str) -> None:
        await self._write([("DELETE FROM tasks WHERE id = ?", (task_id,))])

    async def load(self) -> list[StoredTask]:
        """Every stored task, in id order."""

        def fn() -> list[StoredTask]:
            rows = (
                self._db()
                .execute("SELECT task, status, assigned FROM tasks ORDER BY id")
                .fetchall()
            )
            out = []
            for task_blob, status_blob, assigned in rows:
                task = objects_pb2.Task.FromString(task_blob)
                status = types_pb2.TaskStatus.FromString(status_blob) if status_blob else None
                out.append(StoredTask(task, status, bool(assigned)))
            return out

        return await self._run(fn)

    async def close(self) -> None:
        """Finish the queued writes and close; a second close does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

        def fn() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await self._run(fn)
        finally:
            self._pool.shutdown(wait=False)


__all__ = ["StoredTask", "TaskDB"]
