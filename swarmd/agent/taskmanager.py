"""One task's manager on the agent: advances its controller one step at a time and reports.

Agent layer, created by `swarmd.agent.worker.Worker` for each assigned task. The decision of what
to do next is `swarmd.agent.exec.do` (one step, returns the new status); this shell loops over it,
records each new status in the task database and hands it to the status reporter (except the
transient ACCEPTED and READY, which the next step replaces at once), waits for a
change of the task (its desired state, from a new assignment) when `do` says there is nothing to
do, and retries after a pause when `do` met a temporary error. SwarmKit: `agent/task.go`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from swarmd.agent.exec import Controller, TaskNoop, TaskRetry, do, is_transient
from swarmd.api import objects_pb2, types_pb2

_log = structlog.get_logger(component="agent")

RETRY_DELAY = 1.0

StatusSink = Callable[[str, types_pb2.TaskStatus], Awaitable[None]]


class TaskManager:
    """Runs one task to its desired state; `update()` feeds it newer versions of the task."""

    def __init__(
        self,
        task: objects_pb2.Task,
        controller: Controller,
        on_status: StatusSink,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self._task = objects_pb2.Task()
        self._task.CopyFrom(task)
        self._controller = controller
        self._on_status = on_status
        self._retry_delay = retry_delay
        self._changed = asyncio.Event()
        self._log = _log.bind(task_id=task.id, service_id=task.service_id)

    @property
    def task(self) -> objects_pb2.Task:
        return self._task

    @property
    def controller(self) -> Controller:
        return self._controller

    def update(self, task: objects_pb2.Task) -> None:
        """Take a newer assignment of the same task (desired state or spec moved on).

        The agent owns the observed status: the manager's copy may lag behind what this node
        already reported, so the local status is kept unless the manager's is further along.
        """
        status = types_pb2.TaskStatus()
        status.CopyFrom(self._task.status)
        self._task.CopyFrom(task)
        if status.state > task.status.state:
            self._task.status.CopyFrom(status)
        self._changed.set()

    async def run(self) -> None:
        """Advance the task until cancelled."""
        while True:
            self._changed.clear()
            desired = self._task.desired_state
            try:
                status = await self._step(desired)
            except TaskNoop:
                await self._changed.wait()
                continue
            except TaskRetry as retry:
                self._log.info("task step will be retried", error=str(retry))
                await self._publish(retry.status)
                await self._wait_or_change(self._retry_delay)
                continue
            if status is None:
                continue
            if is_transient(self._task.desired_state, status.state):
                # Superseded by the next step at once: kept here only (exec.is_transient).
                self._task.status.CopyFrom(status)
                continue
            await self._publish(status)

    async def _step(self, desired: int) -> types_pb2.TaskStatus | None:
        """One `do()` step; None when a new desired state interrupted it (e.g. a wait).

        A step can block for as long as the container runs (waiting for its exit), so a change
        of the desired state (shut it down) must cancel it rather than queue behind it.
        """
        step = asyncio.get_running_loop().create_task(do(self._task, self._controller))
        while True:
            changed = asyncio.get_running_loop().create_task(self._changed.wait())
            try:
                await asyncio.wait({step, changed}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                step.cancel()
                raise
            finally:
                changed.cancel()
            if step.done():
                return step.result()
            self._changed.clear()
            if self._task.desired_state != desired:
                step.cancel()
                await asyncio.wait({step})  # let it unwind; its cancellation is not ours
                return None

    async def _publish(self, status: types_pb2.TaskStatus) -> None:
        if status == self._task.status:
            return
        if status.state != self._task.status.state:
            self._log.info(
                "task state changed",
                state=types_pb2.TaskState.Name(status.state),
                message=status.message,
                error=status.err,
            )
        self._task.status.CopyFrom(status)
        await self._on_status(self._task.id, status)

    async def _wait_or_change(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            pass


__all__ = ["TaskManager"]
