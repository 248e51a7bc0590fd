"""The agent's status reporter: every task status reaches the dispatcher, none is lost.

Agent layer. Task managers call `report(task_id, status)`; the reporter keeps only the latest
status per task (older ones are superseded: the dispatcher accepts only forward moves anyway) and
sends them in batches through the current session's sender. A failed send keeps the batch for
the next session. When a new session starts, the agent calls `set_sender` and then `report_all`
with every task's current status, so the new dispatcher (maybe on another manager, after a leader
change) learns everything the old one may have missed (SwarmKit re-reports after reconnect too).

A status on the way to RUNNING (PREPARING, STARTING) may wait up to `hold` seconds for the one
that replaces it; RUNNING and every final state go at once and take the waiting ones along.
Why: each UpdateTaskStatus is a gRPC call and a store write on the manager, and a task that
starts quickly would otherwise cost three of each where one says the same (the RUNNING status
carries the task's whole story in its timestamp and container). When 50 tasks start on a busy
engine this halves the calls; SwarmKit's dispatcher holds status writes up to 100 ms for the
same reason. A slow PREPARING (a pull) or STARTING is still seen within `hold`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import structlog

from swarmd.api import types_pb2

_log = structlog.get_logger(component="agent")

Sender = Callable[[Sequence[tuple[str, types_pb2.TaskStatus]]], Awaitable[None]]

# At most this many statuses per UpdateTaskStatus call.
MAX_BATCH = 200
#: How long a PREPARING or STARTING status may wait for the next one (seconds).
DEFAULT_HOLD = 0.2


def _urgent(status: types_pb2.TaskStatus) -> bool:
    """RUNNING and later states are reported at once; earlier ones may be held."""
    return status.state >= types_pb2.TASK_STATE_RUNNING


class StatusReporter:
    """Latest-status-wins queue with an async sender loop; loop-confined."""

    def __init__(self, retry_delay: float = 0.5, hold: float = DEFAULT_HOLD) -> None:
        self._pending: dict[str, types_pb2.TaskStatus] = {}
        # When each pending task's first unsent status was queued (monotonic): a held status
        # waits `hold` from then, however often a newer held status replaces it.
        self._since: dict[str, float] = {}
        self._hold = hold
        self._sender: Sender | None = None
        self._wake = asyncio.Event()
        self._retry_delay = retry_delay
        self._idle = asyncio.Event()
        self._idle.set()

    def report(self, task_id: str, status: types_pb2.TaskStatus) -> None:
        """Queue the latest status of a task; returns at once."""
        if task_id not in self._pending:
            self._since[task_id] = time.monotonic()
        self._pending[task_id] = status
        self._idle.clear()
        self._wake.set()

    def report_all(self, statuses: Iterable[tuple[str, types_pb2.TaskStatus]]) -> None:
        for task_id, status in statuses:
            self.report(task_id, status)

    def set_sender(self, sender: Sender | None) -> None:
        """Send through `sender` from now on (None while no session is up)."""
        self._sender = sender
        if sender is not None and self._pending:
            self._wake.set()

    def pending(self) -> int:
        return len(self._pending)

    async def wait_idle(self) -> None:
        """Wait until every queued status was sent (tests and clean shutdown)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Send queued statuses until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            sender = self._sender
            if sender is None or not self._pending:
                if not self._pending:
                    self._idle.set()
                continue
            if not any(_urgent(s) for s in self._pending.values()):
                wait = min(self._since.values()) + self._hold - time.monotonic()
                if wait > 0:
                    # Until the hold ends, or a new report (maybe urgent) wakes us to look again.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                    self._wake.set()
                    continue
            ids = list(self._pending)[:MAX_BATCH]
            batch = [(task_id, self._pending[task_id]) for task_id in ids]
            try:
                await sender(batch)
            except Exception as err:  # noqa: BLE001 - any failure keeps the batch for a retry
                _log.info("status report failed; will retry", error=str(err), count=len(batch))
                await asyncio.sleep(self._retry_delay)
                self._wake.set()
                continue
            for task_id, status in batch:
                # A newer status may have been queued while this one was in flight.
                if self._pending.get(task_id) is status:
                    del self._pending[task_id]
                    del self._since[task_id]
            if self._pending:
                self._wake.set()
            else:
                self._idle.set()


__all__ = ["DEFAULT_HOLD", "MAX_BATCH", "Sender", "StatusReporter"]
