"""reporter.py: the latest status of each task reaches the sender, none is lost; statuses on
the way to RUNNING may wait a little for the one that replaces them, the others go at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from swarmd.agent.reporter import StatusReporter
from swarmd.api import types_pb2 as t


def status(state: int, message: str = "") -> t.TaskStatus:
    return t.TaskStatus(state=state, message=message)  # type: ignore[arg-type]


class Recorder:
    """A sender that records each batch as (task id, state name) pairs, with its time."""

    def __init__(self, fail_first: int = 0) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        self.times: list[float] = []
        self.fail_left = fail_first
        self.gate: asyncio.Event | None = None

    async def __call__(self, batch: Sequence[tuple[str, t.TaskStatus]]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_left:
            self.fail_left -= 1
            raise ConnectionError("dispatcher went away")
        self.batches.append([(tid, t.TaskState.Name(s.state)) for tid, s in batch])
        self.times.append(time.monotonic())


@contextlib.asynccontextmanager
async def running(reporter: StatusReporter) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(reporter.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def idle(reporter: StatusReporter, within: float = 2.0) -> None:
    await asyncio.wait_for(reporter.wait_idle(), within)


async def test_running_goes_at_once_and_replaces_what_was_held() -> None:
    reporter, sent = StatusReporter(hold=30), Recorder()
    reporter.set_sender(sent)
    async with running(reporter):
        reporter.report("t1", status(t.TASK_STATE_PREPARING))
        await asyncio.sleep(0.02)
        reporter.report("t1", status(t.TASK_STATE_STARTING))
        await asyncio.sleep(0.02)
        assert sent.batches == []  # held: a newer status may replace it
        reporter.report("t1", status(t.TASK_STATE_RUNNING))
        await idle(reporter)
    assert sent.batches == [[("t1", "TASK_STATE_RUNNING")]]


async def test_a_held_status_is_sent_when_its_hold_ends() -> None:
    reporter, sent = StatusReporter(hold=0.15), Recorder()
    reporter.set_sender(sent)
    async with running(reporter):
        queued = time.monotonic()
        reporter.report("t1", status(t.TASK_STATE_PREPARING))
        await asyncio.sleep(0.05)
        # A newer held status does not restart the hold: the first one is already waiting.
        reporter.report("t1", status(t.TASK_STATE_STARTING))
        await idle(reporter)
    assert sent.batches == [[("t1", "TASK_STATE_STARTING")]]
    assert 0.14 <= sent.times[0] - queued < 1.0


async def test_an_urgent_status_takes_the_held_ones_along() -> None:
    reporter, sent = StatusReporter(hold=30), Recorder()
    reporter.set_sender(sent)
    async with running(reporter):
        reporter.report("t1", status(t.TASK_STATE_PREPARING))
        reporter.report("t2", status(t.TASK_STATE_STARTING))
        await asyncio.sleep(0.02)
        reporter.report("t3", status(t.TASK_STATE_FAILED, "exit 1"))
        await idle(reporter)
    assert sent.batches == [
        [("t1", "TASK_STATE_PREPARING"), ("t2", "TASK_STATE_STARTING"), ("t3", "TASK_STATE_FAILED")]
    ]


FINAL = [t.TASK_STATE_COMPLETE, t.TASK_STATE_SHUTDOWN, t.TASK_STATE_REJECTED, t.TASK_STATE_FAILED]


@pytest.mark.parametrize("state", [t.TASK_STATE_RUNNING, *FINAL])
async def test_running_and_final_states_are_not_held(state: int) -> None:
    reporter, sent = StatusReporter(hold=30), Recorder()
    reporter.set_sender(sent)
    async with running(reporter):
        reporter.report("t1", status(state))
        await idle(reporter, within=1.0)
    assert sent.batches == [[("t1", t.TaskState.Name(state))]]  # type: ignore[arg-type]


async def test_a_failed_send_keeps_the_batch_for_the_retry() -> None:
    reporter, sent = StatusReporter(retry_delay=0.01, hold=30), Recorder(fail_first=2)
    reporter.set_sender(sent)
    async with running(reporter):
        reporter.report("t1", status(t.TASK_STATE_RUNNING))
        reporter.report("t2", status(t.TASK_STATE_STARTING))
        await idle(reporter)
    assert sent.batches == [[("t1", "TASK_STATE_RUNNING"), ("t2", "TASK_STATE_STARTING")]]
    assert reporter.pending() == 0


async def test_a_status_queued_while_the_last_was_in_flight_is_sent_next() -> None:
    reporter, sent = StatusReporter(hold=30), Recorder()
    sent.gate = asyncio.Event()
    reporter.set_sender(sent)
    async with running(reporter):
        reporter.report("t1", status(t.TASK_STATE_RUNNING))
        await asyncio.sleep(0.02)  # the RUNNING batch is in flight, blocked at the gate
        reporter.report("t1", status(t.TASK_STATE_COMPLETE))
        sent.gate.set()
        await idle(reporter)
    assert sent.batches == [[("t1", "TASK_STATE_RUNNING")], [("t1", "TASK_STATE_COMPLETE")]]


async def test_without_a_session_statuses_wait_and_go_with_the_next_sender() -> None:
    reporter, sent = StatusReporter(hold=30), Recorder()
    async with running(reporter):
        reporter.report("t1", status(t.TASK_STATE_RUNNING))
        await asyncio.sleep(0.05)
        assert reporter.pending() == 1
        reporter.set_sender(sent)
        await idle(reporter)
    assert sent.batches == [[("t1", "TASK_STATE_RUNNING")]]
