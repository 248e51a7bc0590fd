"""The worker: reconciles the dispatcher's assignments with the task managers on this node.

Agent layer, owned by `swarmd.agent.agent.Agent`. A COMPLETE assignments message is the whole set
of this node's tasks: tasks not in it are shut down and removed. An INCREMENTAL one adds, updates
or removes single tasks. Every assigned task is written to the local task database before its
manager starts, so a restarted agent (`start()`) knows its tasks, adopts their containers without
restarting them, and removes containers of tasks it no longer has. SwarmKit: `agent/worker.go`.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from swarmd import errors
from swarmd.agent.exec import Controller, Executor
from swarmd.agent.reporter import StatusReporter
from swarmd.agent.taskdb import TaskDB
from swarmd.agent.taskmanager import TaskManager
from swarmd.api import dispatcher_pb2, objects_pb2, types_pb2

_log = structlog.get_logger(component="agent")

_REMOVE = dispatcher_pb2.AssignmentChange.ASSIGNMENT_ACTION_REMOVE
_COMPLETE = dispatcher_pb2.AssignmentsMessage.TYPE_COMPLETE
# How long a removed task's container gets to stop before it is removed anyway.
REMOVE_TIMEOUT = 60.0


# What a status report changes in the manager's copy of a task; everything else is the
# assignment (SwarmKit compares tasks the same way: TasksEqualStable).
_VOLATILE_FIELDS = frozenset({"meta", "status"})
_STABLE_FIELDS = tuple(
    f.name for f in objects_pb2.Task.DESCRIPTOR.fields if f.name not in _VOLATILE_FIELDS
)


def is_status_echo(known: objects_pb2.Task, incoming: objects_pb2.Task) -> bool:
    """`incoming` is `known` again with only its meta or an older or equal status. Pure.

    A manager-side status further along than this node's (which TaskManager.update adopts)
    is not an echo.
    """
    if incoming.status.state > known.status.state:
        return False
    return all(getattr(known, f) == getattr(incoming, f) for f in _STABLE_FIELDS)


class Worker:
    """Task managers by task id; loop-confined."""

    def __init__(self, executor: Executor, db: TaskDB, reporter: StatusReporter) -> None:
        self._executor = executor
        self._db = db
        self._reporter = reporter
        self._managers: dict[str, tuple[TaskManager, asyncio.Task[None]]] = {}
        self._removing: dict[str, asyncio.Task[None]] = {}

    def task_ids(self) -> list[str]:
        return sorted(self._managers)

    def controllers(self) -> list[tuple[objects_pb2.Task, Controller]]:
        """Every managed task (as last observed here) with its controller, by task id.

        Read-only view for the log publisher (swarmd.agent.logs); the task is the manager's
        own copy: do not modify it.
        """
        return [(m.task, m.controller) for _, (m, _) in sorted(self._managers.items())]

    def statuses(self) -> list[tuple[str, types_pb2.TaskStatus]]:
        """Every managed task's current status, for re-reporting after a reconnect."""
        return [(tid, m.task.status) for tid, (m, _) in sorted(self._managers.items())]

    async def start(self) -> None:
        """Resume the tasks of the task database and clean up containers of forgotten tasks."""
        stored = await self._db.load()
        keep: set[str] = set()
        for row in stored:
            if not row.assigned:
                await self._db.delete(row.task.id)
                continue
            task = row.task
            if row.status is not None and row.status.state > task.status.state:
                task.status.CopyFrom(row.status)
            keep.add(task.id)
            self._start_manager(task)
        removed = await self._executor.prune(keep)
        _log.info("worker started", tasks=len(keep), stale_tasks_removed=len(removed))

    async def assign(self, msg: dispatcher_pb2.AssignmentsMessage) -> None:
        """Apply one assignments message."""
        changes = [
            c for c in msg.changes if c.assignment.HasField("task") and c.assignment.task.id
        ]  # secrets and configs are delivered by a later issue
        seen = {c.assignment.task.id for c in changes}
        # The dispatcher sends a task again after each status this node reported (its version
        # moved); nothing this node acts on changed, so it is neither stored nor handed on.
        news = [c for c in changes if c.action == _REMOVE or not self._is_echo(c.assignment.task)]
        # Every task of the message is in the database before any of their managers starts,
        # and in one transaction: one fsync for the lot, not one each.
        await self._db.put_tasks([c.assignment.task for c in news if c.action != _REMOVE])
        for change in news:
            task = change.assignment.task
            if change.action == _REMOVE:
                await self._remove(task.id)
            else:
                self._update(task)
        if msg.type == _COMPLETE:
            for task_id in [t for t in self._managers if t not in seen]:
                await self._remove(task_id)

    def _is_echo(self, task: objects_pb2.Task) -> bool:
        current = self._managers.get(task.id)
        return current is not None and is_status_echo(current[0].task, task)

    def _update(self, task: objects_pb2.Task) -> None:
        current = self._managers.get(task.id)
        if current is not None:
            current[0].update(task)
            return
        if task.id in self._removing:
            return
        self._start_manager(task)

    def _start_manager(self, task: objects_pb2.Task) -> None:
        try:
            controller = self._executor.controller(task)
        except errors.SwarmError as err:
            # A task no controller can run is reported REJECTED at once, never retried.
            status = types_pb2.TaskStatus(
                state=types_pb2.TASK_STATE_REJECTED, message="rejected", err=str(err)
            )
            status.timestamp.GetCurrentTime()
            self._reporter.report(task.id, status)
            _log.warning("task rejected", task_id=task.id, error=str(err))
            return
        manager = TaskManager(task, controller, self._on_status)
        runner = asyncio.get_running_loop().create_task(manager.run(), name=f"task-{task.id}")
        self._managers[task.id] = (manager, runner)

    async def _on_status(self, task_id: str, status: types_pb2.TaskStatus) -> None:
        await self._db.put_status(task_id, status)
        self._reporter.report(task_id, status)

    async def _remove(self, task_id: str) -> None:
        entry = self._managers.pop(task_id, None)
        await self._db.set_assigned(task_id, False)
        if entry is None:
            await self._db.delete(task_id)
            return
        manager, runner = entry
        runner.cancel()
        # wait() does not swallow a cancellation of ours, as suppressing CancelledError would.
        await asyncio.wait({runner})
        if not runner.cancelled() and (err := runner.exception()) is not None:
            raise err
        job = asyncio.get_running_loop().create_task(
            self._shutdown_and_remove(task_id, manager.controller), name=f"remove-{task_id}"
        )
        self._removing[task_id] = job
        job.add_done_callback(lambda _: self._removing.pop(task_id, None))

    async def _shutdown_and_remove(self, task_id: str, controller: Controller) -> None:
        log = _log.bind(task_id=task_id)
        try:
            async with asyncio.timeout(REMOVE_TIMEOUT):
                try:
                    await controller.shutdown()
                except errors.SwarmError as err:
                    log.info("shutdown before removal failed", error=str(err))
                await controller.remove()
            await self._db.delete(task_id)
            log.info("task removed")
        except (errors.SwarmError, TimeoutError) as err:
            log.warning("task removal failed", error=str(err))
        finally:
            with contextlib.suppress(errors.SwarmError):
                await controller.close()

    async def close(self) -> None:
        """Stop the task managers; containers keep running for the next agent to adopt."""
        runners = [r for _, r in self._managers.values()] + list(self._removing.values())
        for r in runners:
            r.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        for manager, _ in self._managers.values():
            with contextlib.suppress(errors.SwarmError):
                await manager.controller.close()
        self._managers.clear()


__all__ = ["Worker", "is_status_echo"]
