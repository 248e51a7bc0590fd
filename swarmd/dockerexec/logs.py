"""A container's log lines from the engine: one thread per output stream, merged on the loop.

DockerController.logs() calls `read_logs`. The Docker SDK's log stream does not tell stdout
from stderr once demultiplexed, so each stream is its own `docker logs` request
(`stdout=True, stderr=False` and the reverse), read by its own thread with its own client: a
blocking read would otherwise pin a thread and a pooled connection of the adapter's call pool
for as long as a follow lasts. Chunks cross to the loop with `loop.call_soon_threadsafe`;
closing the SDK's CancellableStream (from the loop) ends the thread's read at once, which is
how a reader that went away stops its threads.

Two phases, so that `tail` counts both streams together and nothing is missed or repeated
between the backlog and the live part:

1. the backlog up to a cut-off time (`until`, now), both streams with `tail` each, merged by
   timestamp (each stream is in time order), of which the last `tail` lines are kept;
2. with `follow`, both streams again with `since` the cut-off, in the order lines arrive.

Nested generators are closed explicitly (`contextlib.aclosing`): a reader that stops early
must stop the threads now, not whenever the loop finalizes an abandoned generator.

Lines are parsed from `timestamps=True` output ("<RFC 3339 nano> <text>"), so every line has
the engine's timestamp; the newline is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import structlog

from swarmd.agent.exec import LogLine, LogOptions, TemporaryError
from swarmd.api import logs_pb2
from swarmd.errors import NotFound

_log = structlog.get_logger(component="dockerexec")

STDOUT = logs_pb2.LOG_STREAM_STDOUT
STDERR = logs_pb2.LOG_STREAM_STDERR
#: How long a closed reader waits for its thread to notice before leaving it to end alone.
THREAD_STOP_TIMEOUT = 5.0
#: Chunks a thread may hand over before the loop took them: a slow reader slows the thread
#: (and so the engine) down instead of piling a large log up in memory.
MAX_PENDING_CHUNKS = 64

ClientFactory = Callable[[float | None], docker.DockerClient]


def parse_timestamp(text: bytes) -> int | None:
    """Unix nanoseconds of an RFC 3339 time as the engine writes it (UTC, 0-9 decimals)."""
    try:
        raw = text.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not raw.endswith("Z"):
        return None
    whole, _, frac = raw[:-1].partition(".")
    if not frac.isdigit() and frac:
        return None
    try:
        base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return int(base.timestamp()) * 1_000_000_000 + nanos


def parse_line(raw: bytes, stream: logs_pb2.LogStream.ValueType, fallback_ns: int) -> LogLine:
    """A LogLine from one `timestamps=True` line; without a timestamp it gets `fallback_ns`."""
    head, sep, rest = raw.partition(b" ")
    ts = parse_timestamp(head) if sep else None
    if ts is None:
        return LogLine(stream=stream, timestamp_ns=fallback_ns, data=raw)
    return LogLine(stream=stream, timestamp_ns=ts, data=rest)


class LineSplitter:
    """Reassembles lines from chunks: multiplexed frames are lines, TTY output comes bytewise.

    A line longer than the engine's 16 KiB frame arrives as several frames, each with its own
    timestamp; they are joined into one line that keeps the first timestamp.
    """

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete lines (without newline) that `chunk` finishes."""
        data = self._carry + chunk
        *lines, self._carry = data.split(b"\n")
        return [line.removesuffix(b"\r") for line in lines]

    def flush(self) -> list[bytes]:
        """The unterminated last line, if any."""
        rest, self._carry = self._carry, b""
        return [rest] if rest else []


@dataclass(frozen=True, slots=True)
class _End:
    """Put by a reader thread when its stream ended; `error` when it failed."""

    error: Exception | None = None


class StreamReader:
    """One `docker logs` request for one output stream, read by its own thread.

    start() from the loop; `get()` returns LogLines in the stream's order, None at the end;
    close() (idempotent) stops the thread whatever it is doing.
    """

    def __init__(
        self,
        client_factory: ClientFactory,
        container: str,
        stream: logs_pb2.LogStream.ValueType,
        params: dict[str, Any],
        call_timeout: float | None,
    ) -> None:
        self._factory = client_factory
        self._container = container
        self._stream = stream
        self._params = params
        self._call_timeout = call_timeout
        self._queue: asyncio.Queue[list[LogLine] | _End] = asyncio.Queue()
        self._lock = threading.Lock()
        self._closer: Callable[[], None] | None = None
        self._stopping = threading.Event()
        self._slots = threading.Semaphore(MAX_PENDING_CHUNKS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pending: collections.deque[LogLine] = collections.deque()
        self._ended = asyncio.Event()
        self._done = False

    def start(self) -> None:
        """Start the thread; call from the loop that reads."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"dockerexec-logs-{self._container[:12]}", daemon=True
        )
        self._thread.start()

    async def get(self) -> LogLine | None:
        """The next line, or None once the stream ended; raises what made the thread fail."""
        while not self._pending:
            if self._done:
                return None
            item = await self._queue.get()
            if isinstance(item, _End):
                self._done = True
                if item.error is not None:
                    raise item.error
                return None
            self._slots.release()
            self._pending.extend(item)
        return self._pending.popleft()

    async def close(self) -> None:
        """Close the HTTP stream, then give the thread a moment to end."""
        self._stopping.set()
        with self._lock:
            closer = self._closer
        if closer is not None:
            with contextlib.suppress(Exception):
                closer()
        if self._thread is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(THREAD_STOP_TIMEOUT):
                await self._ended.wait()
                # The thread posts its end as its very last step: this join is immediate.
                self._thread.join(0.5)

    def _to_loop(self, item: list[LogLine] | _End) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
            if isinstance(item, _End):
                self._loop.call_soon_threadsafe(self._ended.set)
        except RuntimeError:  # the loop is closed: nobody reads any more
            self._stopping.set()
            return False
        return True

    def _run(self) -> None:
        error: Exception | None = None
        try:
            self._read()
        except docker.errors.NotFound as err:
            error = NotFound("container", self._container, f"container {self._container} not found")
            error.__cause__ = err
        except Exception as err:  # noqa: BLE001 - the thread reports every failure to the loop
            if not self._stopping.is_set():
                error = TemporaryError(f"docker logs {self._container}: {err}")
                error.__cause__ = err
        finally:
            self._to_loop(_End(error))

    def _read(self) -> None:
        client = self._factory(self._call_timeout)
        try:
            stream = client.api.logs(self._container, stream=True, timestamps=True, **self._params)
            with self._lock:
                self._closer = stream.close
            if self._stopping.is_set():
                stream.close()
                return
            self._pump(stream)
        finally:
            with self._lock:
                self._closer = None
            client.close()

    def _wait_slot(self) -> bool:
        """Block (in the thread) until the loop has room; False once the reader closed."""
        while not self._slots.acquire(timeout=0.1):
            if self._stopping.is_set():
                return False
        return True

    def _pump(self, stream: Iterator[bytes]) -> None:
        splitter = LineSplitter()
        last = time.time_ns()
        for chunk in stream:
            if self._stopping.is_set():
                return
            lines = []
            for raw in splitter.feed(chunk):
                line = parse_line(raw, self._stream, last)
                last = line.timestamp_ns
                lines.append(line)
            if lines and not (self._wait_slot() and self._to_loop(lines)):
                return
        tail = [parse_line(raw, self._stream, last) for raw in splitter.flush()]
        if tail and self._wait_slot():
            self._to_loop(tail)


def _streams(options: LogOptions) -> list[logs_pb2.LogStream.ValueType]:
    out = []
    if options.stdout:
        out.append(STDOUT)
    if options.stderr:
        out.append(STDERR)
    return out


def _params(stream: logs_pb2.LogStream.ValueType, **extra: Any) -> dict[str, Any]:
    params = {"stdout": stream == STDOUT, "stderr": stream == STDERR}
    params.update({k: v for k, v in extra.items() if v is not None})
    return params


class _Readers:
    """Started readers, all closed on exit however the block ends."""

    def __init__(self, factory: ClientFactory, container: str, timeout: float | None) -> None:
        self._factory = factory
        self._container = container
        self._timeout = timeout
        self.readers: list[StreamReader] = []

    def open(self, stream: logs_pb2.LogStream.ValueType, params: dict[str, Any]) -> StreamReader:
        reader = StreamReader(self._factory, self._container, stream, params, self._timeout)
        self.readers.append(reader)
        reader.start()
        return reader

    async def close(self) -> None:
        await asyncio.gather(*(r.close() for r in self.readers))


async def _merged_by_time(readers: list[StreamReader]) -> AsyncGenerator[LogLine, None]:
    """Lines of time-ordered streams that all end, merged into one time order."""
    heads: dict[int, LogLine] = {}
    for i, reader in enumerate(readers):
        line = await reader.get()
        if line is not None:
            heads[i] = line
    while heads:
        i = min(heads, key=lambda k: (heads[k].timestamp_ns, k))
        yield heads[i]
        line = await readers[i].get()
        if line is None:
            del heads[i]
        else:
            heads[i] = line


async def _merged_by_arrival(readers: list[StreamReader]) -> AsyncGenerator[LogLine, None]:
    """Lines of live streams in the order they arrive, until every stream ended."""
    getters = {asyncio.ensure_future(r.get()): r for r in readers}
    try:
        while getters:
            done, _ = await asyncio.wait(getters, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                reader = getters.pop(fut)
                line = fut.result()
                if line is not None:
                    yield line
                    getters[asyncio.ensure_future(reader.get())] = reader
    finally:
        for fut in getters:
            fut.cancel()
        await asyncio.gather(*getters, return_exceptions=True)


async def read_logs(
    client_factory: ClientFactory,
    container: str,
    options: LogOptions,
    call_timeout: float,
) -> AsyncGenerator[LogLine, None]:
    """The lines of `container` that `options` select (see the module docstring)."""
    streams = _streams(options)
    if not streams:
        return
    cutoff = time.time() if options.follow else None
    if options.tail != 0:
        backlog = _Readers(client_factory, container, call_timeout)
        try:
            readers = [
                backlog.open(
                    s,
                    _params(s, follow=False, since=options.since, until=cutoff, tail=options.tail),
                )
                for s in streams
            ]
            async with contextlib.aclosing(_merged_by_time(readers)) as merged:
                if options.tail is None:
                    async for line in merged:
                        yield line
                else:
                    last: collections.deque[LogLine] = collections.deque(maxlen=options.tail)
                    async for line in merged:
                        last.append(line)
                    for line in last:
                        yield line
        finally:
            await backlog.close()
    if cutoff is None:
        return
    since = cutoff if options.since is None else max(cutoff, options.since)
    live = _Readers(client_factory, container, None)
    try:
        readers = [live.open(s, _params(s, since=since, follow=True)) for s in streams]
        async with contextlib.aclosing(_merged_by_arrival(readers)) as merged:
            async for line in merged:
                yield line
    finally:
        await live.close()


__all__ = ["LineSplitter", "StreamReader", "parse_line", "parse_timestamp", "read_logs"]
