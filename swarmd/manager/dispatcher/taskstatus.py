"""Task status reports from agents, checked and coalesced into few store writes.

Manager layer, used by `DispatcherServicer.UpdateTaskStatus`. Agents report many small status
changes; writing each as its own store transaction would cost a proposal (a raft round trip) per
report. `TaskStatusWriter.submit` queues a node's reports and waits until they are committed:
while one write is in flight, later reports collect and go into the next one, so the batch size
grows with the load without a fixed delay. A report is accepted only for a task assigned to the
reporting node (else PermissionDenied) and only when it does not move the task's state backwards
(older or replayed reports are dropped, which makes re-reporting after a reconnect harmless).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

import structlog

from swarmd import errors
from swarmd.api import objects_pb2, types_pb2
from swarmd.manager.store import Batch, MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="dispatcher")


def check_ownership(tx: ReadTx, node_id: str, task_ids: Sequence[str]) -> None:
    """Raise PermissionDenied when any existing task is not assigned to `node_id`.

    Unknown tasks are let through (the writer skips them): an agent re-reporting a task the
    reaper already deleted is normal, not an attack.
    """
    for task_id in task_ids:
        task = tx.tasks.get(task_id)
        if task is not None and task.node_id != node_id:
            raise errors.PermissionDenied(
                f"node {node_id} cannot report the status of task {task_id}: "
                "it is not assigned to this node"
            )


def should_apply(current: types_pb2.TaskStatus, reported: types_pb2.TaskStatus) -> bool:
    """True when `reported` moves the task forward or refines its current state.

    Same state with other details (health, ports, message) is an update; an older state is not:
    task states only move forward (decisions.md: TaskState values are ordered).
    """
    if reported.state < current.state:
        return False
    return reported != current


class TaskStatusWriter:
    """Coalesces status reports into store batches; loop-confined."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._pending: dict[str, tuple[str, types_pb2.TaskStatus]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None

    async def submit(
        self, node_id: str, updates: Sequence[tuple[str, types_pb2.TaskStatus]]
    ) -> None:
        """Queue `updates` (task id, status) from `node_id`; return once they are committed."""
        self._store.view(lambda tx: check_ownership(tx, node_id, [t for t, _ in updates]))
        for task_id, status in updates:
            self._pending[task_id] = (node_id, status)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        await done

    async def _flush_loop(self) -> None:
        try:
            while self._pending:
                pending, self._pending = self._pending, {}
                waiters, self._waiters = self._waiters, []
                try:
                    applied = await self._store.batch(functools.partial(_write, pending=pending))
                except errors.SwarmError as err:
                    for w in waiters:
                        if not w.done():
                            w.set_exception(err)
                    continue
                _log.debug("task statuses written", count=applied, reports=len(pending))
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        finally:
            self._flushing = False
            # Reports that arrived with no pending entries left (all coalesced) still wait.
            for w in self._waiters:
                if not w.done():
                    w.set_result(None)
            self._waiters = []


def _write(batch: Batch, *, pending: dict[str, tuple[str, types_pb2.TaskStatus]]) -> int:
    applied = 0
    for task_id, (node_id, status) in pending.items():
        applied += batch.update(
            functools.partial(_apply, task_id=task_id, node_id=node_id, status=status)
        )
    return applied


def _apply(tx: Tx, *, task_id: str, node_id: str, status: types_pb2.TaskStatus) -> int:
    task: objects_pb2.Task | None = tx.tasks.get(task_id)
    if task is None or task.node_id != node_id:
        return 0
    if not should_apply(task.status, status):
        return 0
    task.status.CopyFrom(status)
    tx.tasks.update(task)
    return 1


__all__ = ["TaskStatusWriter", "check_ownership", "should_apply"]
