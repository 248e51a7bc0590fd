"""DockerController.logs() against the real engine: streams, order, tail, since, follow, stop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from swarmd.agent.exec import LogOptions
from swarmd.api import logs_pb2
from swarmd.errors import NotFound
from tests.component.dockerexec.conftest import make_task

pytestmark = pytest.mark.docker

OUT = logs_pb2.LOG_STREAM_STDOUT
ERR = logs_pb2.LOG_STREAM_STDERR
# Sleeps between lines so every line has a distinct engine timestamp.
SCRIPT = "echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; echo out2; sleep 0.05; echo err2 >&2"


async def started(executor, args):
    task = make_task(executor.node_id, args=[args], grace_s=0)
    ctlr = executor.controller(task)
    await ctlr.prepare()
    await ctlr.start()
    return ctlr


async def exited(ctlr):
    async with asyncio.timeout(30):
        await ctlr.wait()


async def collect(ctlr, limit=30, **opts):
    async with asyncio.timeout(limit):
        return [line async for line in ctlr.logs(LogOptions(**opts))]


def log_threads():
    return [t for t in threading.enumerate() if t.name.startswith("dockerexec-logs")]


async def test_both_streams_come_back_in_time_order_with_timestamps(executor):
    ctlr = await started(executor, SCRIPT)
    await exited(ctlr)
    before = time.time_ns()
    lines = await collect(ctlr)
    assert [(ln.stream, ln.data) for ln in lines] == [
        (OUT, b"out1"),
        (ERR, b"err1"),
        (OUT, b"out2"),
        (ERR, b"err2"),
    ]
    stamps = [ln.timestamp_ns for ln in lines]
    assert stamps == sorted(stamps)
    assert before - 120 * 10**9 < stamps[0] <= before
    assert log_threads() == []


async def test_tail_counts_both_streams_and_streams_can_be_chosen(executor):
    ctlr = await started(executor, SCRIPT)
    await exited(ctlr)
    assert [ln.data for ln in await collect(ctlr, tail=2)] == [b"out2", b"err2"]
    assert [ln.data for ln in await collect(ctlr, tail=0)] == []
    assert [ln.data for ln in await collect(ctlr, stderr=False)] == [b"out1", b"out2"]
    assert [ln.data for ln in await collect(ctlr, stdout=False, tail=1)] == [b"err2"]


async def test_since_leaves_out_older_lines(executor):
    ctlr = await started(executor, "echo early; sleep 1.2; echo late")
    await exited(ctlr)
    lines = await collect(ctlr)
    assert [ln.data for ln in lines] == [b"early", b"late"]
    cut = (lines[0].timestamp_ns + lines[1].timestamp_ns) / 2 / 1e9
    assert [ln.data for ln in await collect(ctlr, since=cut)] == [b"late"]


async def test_follow_streams_new_lines_and_ends_with_the_process(executor):
    ctlr = await started(
        executor, "echo before; sleep 1; for i in 1 2 3; do echo tick$i; sleep 0.2; done"
    )
    await asyncio.sleep(0.5)  # "before" is in the backlog, the ticks come live
    lines = await collect(ctlr, follow=True, tail=5)
    assert [ln.data for ln in lines] == [b"before", b"tick1", b"tick2", b"tick3"]
    assert log_threads() == []


async def test_closing_a_follow_stops_its_threads_at_once(executor):
    ctlr = await started(executor, "while true; do echo x; echo y >&2; sleep 0.1; done")
    reader = ctlr.logs(LogOptions(follow=True))
    got = []
    async with asyncio.timeout(30):
        async for line in reader:
            got.append(line.stream)
            if OUT in got and ERR in got and len(got) >= 6:
                break
    assert len(log_threads()) == 2  # one per stream while following
    t0 = time.monotonic()
    await reader.aclose()
    assert time.monotonic() - t0 < 2.0
    assert log_threads() == []


async def test_a_task_without_container_is_not_found(executor):
    task = make_task(executor.node_id, args=["true"])
    ctlr = executor.controller(task)
    with pytest.raises(NotFound, match="has no container"):
        await collect(ctlr)
