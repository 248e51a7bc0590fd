"""The agent's side of the log broker: serve the manager's log subscriptions from local tasks.

Agent layer; `swarmd.agent.agent.Agent` runs `LogPublisher.run(stub)` as one loop of each
session, over the session's own outbound channel (workers open no port for logs). The manager
sends subscriptions on ListenSubscriptions; for each one this node resolves the selector against
its own tasks (`Worker.controllers()`), reads each selected task's lines from its controller
(`Controller.logs()`), and publishes them on one PublishLogs stream per subscription:

- first an empty message, which tells the broker this node is alive and working on it;
- then the lines, batched as they come, each with its service, node and task ids;
- without follow, a close message once every task's lines are sent;
- with follow, it goes on until the manager closes the subscription, and every RESCAN seconds
  it also attaches tasks of the selection that started since (a restarted task's replacement).

Trouble with logs never ends the session: a failed listen is retried with back-off, a task
whose container is gone is skipped. Log content is never logged.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable

import grpc
import structlog

from swarmd import errors
from swarmd.agent.exec import Controller, LogLine, LogOptions
from swarmd.api import logs_pb2, logs_pb2_grpc, objects_pb2, types_pb2
from swarmd.rpc.backoff import Backoff

_log = structlog.get_logger(component="agent")

#: With follow, how often the node's tasks are checked for newly started ones of the selection.
RESCAN = 0.5
#: Most lines per published message.
BATCH = 128
#: How long a closing publish stream may take to flush before it is dropped.
CLOSE_TIMEOUT = 5.0
#: A follow attaches a task once its container exists (it is created while PREPARING).
_ATTACHABLE = types_pb2.TASK_STATE_READY

TaskSource = Callable[[], Iterable[tuple[objects_pb2.Task, Controller]]]


def matches(selector: logs_pb2.LogSelector, task: objects_pb2.Task) -> bool:
    """Whether the selector picks the task: a union of its services, tasks and nodes."""
    return (
        task.id in selector.task_ids
        or task.service_id in selector.service_ids
        or (bool(task.node_id) and task.node_id in selector.node_ids)
    )


def log_options(options: logs_pb2.LogSubscriptionOptions, *, later: bool = False) -> LogOptions:
    """The controller options for a subscription's options (`later`: a task attached later).

    A task attached after the subscription started gets all its lines (since the
    subscription's `since`): they are all new to the reader.
    """
    streams = set(options.streams)
    tail: int | None
    if later or options.tail == 0:
        tail = None
    elif options.tail < 0:
        tail = -options.tail - 1
    else:
        raise errors.InvalidArgument(f"log option tail {options.tail} is not supported")
    since = options.since.ToNanoseconds() / 1e9 if options.HasField("since") else None
    return LogOptions(
        stdout=not streams or logs_pb2.LOG_STREAM_STDOUT in streams,
        stderr=not streams or logs_pb2.LOG_STREAM_STDERR in streams,
        follow=options.follow,
        tail=tail,
        since=since if since else None,
    )


def log_message(task: objects_pb2.Task, line: LogLine) -> logs_pb2.LogMessage:
    """The wire form of one line of `task`."""
    msg = logs_pb2.LogMessage(
        context=logs_pb2.LogContext(
            service_id=task.service_id, node_id=task.node_id, task_id=task.id
        ),
        stream=line.stream,
        data=line.data,
    )
    msg.timestamp.FromNanoseconds(line.timestamp_ns)
    return msg


class _Subscription:
    """One subscription being served: readers per task feeding one publish stream."""

    def __init__(self, msg: logs_pb2.SubscriptionMessage, tasks: TaskSource) -> None:
        self.msg = msg
        self._tasks = tasks
        self._queue: asyncio.Queue[logs_pb2.LogMessage | None] = asyncio.Queue(maxsize=BATCH * 4)
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._live = 0
        self._log = _log.bind(subscription_id=msg.id)

    def _attach(self, task: objects_pb2.Task, controller: Controller, *, later: bool) -> None:
        options = log_options(self.msg.options, later=later)
        reader = asyncio.get_running_loop().create_task(
            self._read(task, controller, options), name=f"logs-{task.id}"
        )
        self._readers[task.id] = reader
        self._live += 1

    async def _read(
        self, task: objects_pb2.Task, controller: Controller, options: LogOptions
    ) -> None:
        lines = controller.logs(options)
        try:
            async for line in lines:
                await self._queue.put(log_message(task, line))
        except errors.NotFound:
            self._log.debug("no logs for task: no container", task_id=task.id)
        except errors.SwarmError as err:
            self._log.info("reading task logs failed", task_id=task.id, error=str(err))
        except Exception:  # noqa: BLE001 - one reader's unforeseen failure must not stall the rest
            self._log.exception("reading task logs failed", task_id=task.id)
        finally:
            # Controllers return async generators: close them now, not when the loop gets
            # round to it, so that what they hold (Docker stream threads) goes at once.
            aclose = getattr(lines, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._queue.put(None)  # this reader is done (not reached when cancelled)

    def _scan(self, *, later: bool) -> None:
        sel = self.msg.selector
        for task, controller in self._tasks():
            if task.id in self._readers or not matches(sel, task):
                continue
            if self.msg.options.follow and task.status.state < _ATTACHABLE:
                continue  # no container yet: a later scan attaches it
            self._attach(task, controller, later=later)

    async def serve(self, stub: logs_pb2_grpc.LogBrokerAsyncStub) -> None:
        """Publish until every reader is done (without follow) or until cancelled."""
        call = stub.PublishLogs()
        sub_id = self.msg.id
        try:
            await call.write(logs_pb2.PublishLogsMessage(subscription_id=sub_id))
            self._scan(later=False)
            self._log.debug("serving log subscription", tasks=len(self._readers))
            rescans = (
                asyncio.get_running_loop().create_task(self._rescan())
                if self.msg.options.follow
                else None
            )
            try:
                await self._pump(call)
            finally:
                if rescans is not None:
                    rescans.cancel()
                    await asyncio.gather(rescans, return_exceptions=True)
            await call.write(logs_pb2.PublishLogsMessage(subscription_id=sub_id, close=True))
            await call.done_writing()
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await call
        finally:
            for reader in self._readers.values():
                reader.cancel()
            await asyncio.gather(*self._readers.values(), return_exceptions=True)
            call.cancel()

    async def _rescan(self) -> None:
        while True:
            await asyncio.sleep(RESCAN)
            self._scan(later=True)

    async def _pump(
        self,
        call: grpc.aio.StreamUnaryCall[logs_pb2.PublishLogsMessage, logs_pb2.PublishLogsResponse],
    ) -> None:
        """Send lines in batches until the readers are done (never, while following)."""
        while self._live or self.msg.options.follow:
            first = await self._queue.get()
            batch: list[logs_pb2.LogMessage] = []
            for item in self._take(first):
                if item is None:
                    self._live -= 1
                else:
                    batch.append(item)
            if batch:
                await call.write(
                    logs_pb2.PublishLogsMessage(subscription_id=self.msg.id, messages=batch)
                )

    def _take(self, first: logs_pb2.LogMessage | None) -> list[logs_pb2.LogMessage | None]:
        items = [first]
        while len(items) < BATCH and not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items


def _forget(serving: dict[str, asyncio.Task[None]], sub_id: str, job: asyncio.Task[None]) -> None:
    if serving.get(sub_id) is job:
        del serving[sub_id]


class LogPublisher:
    """Listens for log subscriptions and serves each on its own publish stream."""

    def __init__(self, tasks: TaskSource) -> None:
        self._tasks = tasks
        self._backoff = Backoff(0.1, 5.0)

    async def run(self, stub: logs_pb2_grpc.LogBrokerAsyncStub) -> None:
        """Listen until cancelled; a failed listen is retried, it never ends the session."""
        while True:
            try:
                await self._listen(stub)
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.aio.AioRpcError) else None
                _log.debug("log subscriptions stream ended", code=str(code))
            await asyncio.sleep(self._backoff.next())

    async def _listen(self, stub: logs_pb2_grpc.LogBrokerAsyncStub) -> None:
        stream = stub.ListenSubscriptions(logs_pb2.ListenSubscriptionsRequest())
        serving: dict[str, asyncio.Task[None]] = {}
        try:
            async for msg in stream:
                self._backoff.reset()
                if msg.close:
                    job = serving.pop(msg.id, None)
                    if job is not None:
                        job.cancel()
                    continue
                if msg.id in serving:
                    continue
                job = asyncio.get_running_loop().create_task(
                    self._serve(stub, msg), name=f"logsub-{msg.id}"
                )
                serving[msg.id] = job
                job.add_done_callback(functools.partial(_forget, serving, msg.id))
        finally:
            stream.cancel()
            jobs = list(serving.values())
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)

    async def _serve(
        self, stub: logs_pb2_grpc.LogBrokerAsyncStub, msg: logs_pb2.SubscriptionMessage
    ) -> None:
        try:
            await _Subscription(msg, self._tasks).serve(stub)
        except (grpc.RpcError, grpc.aio.UsageError, errors.SwarmError, TimeoutError) as err:
            # The manager went or dropped the subscription; it reports the gap to the client.
            _log.debug("publishing logs failed", subscription_id=msg.id, error=str(err))


__all__ = ["LogPublisher", "log_message", "log_options", "matches"]
