"""dockerexec.logs without an engine: parsing, line assembly, merging, tail, bounded threads."""

from __future__ import annotations

import asyncio
import threading
import time

from swarmd.agent.exec import LogOptions
from swarmd.api import logs_pb2
from swarmd.dockerexec import logs as dlogs

OUT = logs_pb2.LOG_STREAM_STDOUT
ERR = logs_pb2.LOG_STREAM_STDERR


def test_engine_timestamps_parse_to_unix_nanoseconds():
    assert dlogs.parse_timestamp(b"2026-01-02T15:04:05.000000042Z") == 1_767_366_245_000_000_042
    assert dlogs.parse_timestamp(b"2026-01-02T15:04:05.5Z") == 1_767_366_245_500_000_000
    assert dlogs.parse_timestamp(b"2026-01-02T15:04:05Z") == 1_767_366_245_000_000_000
    assert dlogs.parse_timestamp(b"hello") is None
    assert dlogs.parse_timestamp(b"2026-01-02T15:04:05.x1Z") is None
    line = dlogs.parse_line(b"2026-01-02T15:04:05Z hi there", OUT, 7)
    assert (line.timestamp_ns, line.data) == (1_767_366_245_000_000_000, b"hi there")
    assert dlogs.parse_line(b"no stamp", ERR, 7).timestamp_ns == 7


def test_lines_are_reassembled_from_frames_and_bytewise_tty_output():
    s = dlogs.LineSplitter()
    assert s.feed(b"a\n") == [b"a"]
    assert s.feed(b"b") == []
    assert s.feed(b"c\r\nd\ne") == [b"bc", b"d"]
    assert s.flush() == [b"e"]
    assert s.flush() == []


def _stamp(n: int) -> bytes:
    sec, frac = divmod(n, 1000)
    return f"2026-01-02T15:04:{sec:02d}.{frac:03d}Z".encode()


class FakeStream:
    """What `client.api.logs(stream=True)` returns: an iterator that close() ends."""

    def __init__(self, chunks, block=False):
        self._chunks = list(chunks)
        self._block = block
        self.closed = threading.Event()
        self.taken = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.closed.is_set():
            raise StopIteration
        if self._chunks:
            self.taken += 1
            return self._chunks.pop(0)
        if self._block:
            self.closed.wait(10)
        raise StopIteration

    def close(self):
        self.closed.set()


class FakeEngine:
    """A client factory serving per-stream chunks; records every logs() request."""

    def __init__(self, out=(), err=(), live_out=(), live_err=()):
        self.backlog = {OUT: list(out), ERR: list(err)}
        self.live = {OUT: list(live_out), ERR: list(live_err)}
        self.requests: list[dict] = []
        self.streams: list[FakeStream] = []
        self.api = self

    def __call__(self, _timeout):
        return self

    def close(self):
        pass

    def logs(self, container, **params):
        self.requests.append(params)
        which = OUT if params["stdout"] else ERR
        follow = params["follow"]
        chunks = self.live[which] if follow else self.backlog[which]
        tail = params.get("tail")
        if tail is not None and not follow:
            chunks = chunks[len(chunks) - tail :] if tail else []
        stream = FakeStream(chunks, block=follow)
        self.streams.append(stream)
        return stream


async def _read(engine, **opts):
    async with asyncio.timeout(5):
        return [
            (ln.stream, ln.data)
            async for ln in dlogs.read_logs(engine, "c1", LogOptions(**opts), 1.0)
        ]


async def test_backlog_of_both_streams_is_merged_by_time_and_tail_counts_both():
    engine = FakeEngine(
        out=[_stamp(1) + b" o1\n", _stamp(4) + b" o2\n"],
        err=[_stamp(2) + b" e1\n", _stamp(3) + b" e2\n"],
    )
    assert await _read(engine) == [(OUT, b"o1"), (ERR, b"e1"), (ERR, b"e2"), (OUT, b"o2")]
    assert await _read(engine, tail=2) == [(ERR, b"e2"), (OUT, b"o2")]
    assert await _read(engine, tail=0) == []
    assert engine.requests[-2] == {
        "stream": True,
        "timestamps": True,
        "stdout": True,
        "stderr": False,
        "follow": False,
        "tail": 2,
    }
    assert await _read(engine, stdout=False) == [(ERR, b"e1"), (ERR, b"e2")]


async def test_follow_reads_the_backlog_up_to_a_cutoff_then_live_lines_from_it():
    engine = FakeEngine(
        out=[_stamp(1) + b" old\n"],
        live_out=[_stamp(5) + b" new\n"],
        live_err=[_stamp(6) + b" bad\n"],
    )
    reader = dlogs.read_logs(engine, "c1", LogOptions(follow=True, since=0.5), 1.0)
    got = []
    async with asyncio.timeout(5):
        async for ln in reader:
            got.append((ln.stream, ln.data))
            if len(got) == 3:
                break
    await reader.aclose()
    assert got[0] == (OUT, b"old")
    assert sorted(got[1:]) == [(OUT, b"new"), (ERR, b"bad")]
    backlog, live = engine.requests[0], engine.requests[-1]
    cutoff = backlog["until"]
    assert (backlog["since"], backlog["follow"]) == (0.5, False)
    assert live == {
        "stream": True,
        "timestamps": True,
        "stdout": False,
        "stderr": True,
        "since": cutoff,
        "follow": True,
    }
    assert all(s.closed.is_set() for s in engine.streams[2:])  # the live ones were closed


async def test_a_reader_that_does_not_read_holds_the_thread_back():
    chunks = [_stamp(i) + b" x\n" for i in range(dlogs.MAX_PENDING_CHUNKS * 3)]
    engine = FakeEngine(out=chunks)
    params = {"stdout": True, "stderr": False, "follow": False}
    reader = dlogs.StreamReader(engine, "c1", OUT, params, 1.0)
    reader.start()
    await asyncio.sleep(0.3)
    stream = engine.streams[0]
    assert stream.taken <= dlogs.MAX_PENDING_CHUNKS + 1
    first = await reader.get()
    assert first is not None
    assert first.data == b"x"
    t0 = time.monotonic()
    await reader.close()
    assert time.monotonic() - t0 < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("dockerexec-logs")]
