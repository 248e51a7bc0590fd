"""`swarmctl service logs SERVICE` and `swarmctl task logs TASK`: task output from the nodes.

swarmctl layer; `register` adds the `logs` verb to the `service` and `task` groups (call it after
their modules registered them). The manager gathers the lines from the agents of the nodes
running the tasks (swarmd.manager.logbroker) and streams them back; each line is printed as
`<task name>@<node hostname> | <line>` (with `--timestamps`, the line's RFC 3339 time first),
container stdout on stdout and container stderr on stderr, as `docker service logs` does. A node
that is down or does not answer in time is a gap, printed as `swarmctl: warning: <gap>` on
stderr while the other nodes' lines still come; without `--follow` the command always ends.

Unlike other verbs, this handler writes as lines arrive (a follow never returns), so it prints
itself and returns the empty string.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterable, Sequence
from datetime import UTC, datetime
from typing import TextIO

from google.protobuf import timestamp_pb2

from swarmctl import resolve
from swarmctl.client import Client, open_channel
from swarmctl.command import Parser, add_verb
from swarmctl.commands.task import task_display_name
from swarmctl.flags import FlagError, parse_duration_nanos
from swarmd import errors
from swarmd.api import control_pb2, logs_pb2, logs_pb2_grpc, objects_pb2

_NANOS = 1_000_000_000


def parse_tail(text: str) -> int:
    """`--tail`: `all` or a line count, as the wire wants it (0 all, -(n+1) the last n)."""
    if text.strip().lower() == "all":
        return 0
    try:
        n = int(text, 10)
    except ValueError:
        raise FlagError(f"invalid tail {text!r}: must be a number of lines or 'all'") from None
    if n < 0:
        raise FlagError(f"invalid tail {text!r}: must not be negative")
    return -(n + 1)


def parse_since(text: str, now: float | None = None) -> timestamp_pb2.Timestamp:
    """`--since`: a duration back from now (`10m`), an RFC 3339 time or unix seconds."""
    value = text.strip()
    current = time.time() if now is None else now
    ts = timestamp_pb2.Timestamp()
    try:
        ts.FromNanoseconds(int(current * _NANOS) - parse_duration_nanos(value))
        return ts
    except FlagError:
        pass
    try:
        ts.FromNanoseconds(round(float(value) * _NANOS))
        return ts
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise FlagError(
            f"invalid since {text!r}: use a duration (10m, 1h30m), "
            "an RFC 3339 time (2026-01-02T15:04:05Z) or unix seconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ts.FromDatetime(when)
    return ts


def format_timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 with nanoseconds in UTC, as docker prints log times."""
    base = datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ts.nanos:09d}Z"


def format_line(source: str, msg: logs_pb2.LogMessage, timestamps: bool) -> str:
    """One printed line: `[time ]<task>@<node> | <text>` with a newline."""
    text = msg.data.decode(errors="replace").rstrip("\n")
    head = f"{format_timestamp(msg.timestamp)} " if timestamps else ""
    return f"{head}{source} | {text}\n"


class Names:
    """Task and node names for printed lines, fetched once each from the Control API."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._tasks: dict[str, str] = {}
        self._nodes: dict[str, str] = {}
        self._services: dict[str, str] = {}

    async def preload(self, service_ids: Sequence[str]) -> None:
        """Names of every node and service, and of the tasks of `service_ids`."""
        c = self._client
        for svc in await resolve.list_all(c, resolve.SERVICE):
            self._services[svc.id] = svc.spec.annotations.name
        for node in await resolve.list_all(c, resolve.NODE):
            self._nodes[node.id] = node.description.hostname or node.id
        if not service_ids:
            return
        req = control_pb2.ListTasksRequest(service_ids=service_ids)
        for task in (await c.control.ListTasks(req, timeout=c.timeout)).tasks:
            self._tasks[task.id] = self._task_name(task)

    def _task_name(self, task: objects_pb2.Task) -> str:
        service = self._services.get(task.service_id) or task.service_annotations.name
        return task_display_name(task, service or task.service_id)

    async def source(self, ctx: logs_pb2.LogContext) -> str:
        """`<task name>@<node hostname>` for a line's context."""
        return f"{await self._task(ctx.task_id)}@{await self._node(ctx.node_id)}"

    async def _task(self, task_id: str) -> str:
        if task_id not in self._tasks:
            # A task that started after the command did (a follow across a restart).
            c = self._client
            try:
                resp = await c.control.GetTask(
                    control_pb2.GetTaskRequest(task_id=task_id), timeout=c.timeout
                )
                self._tasks[task_id] = self._task_name(resp.task)
            except Exception:  # noqa: BLE001 - a name is cosmetic: fall back to the id
                self._tasks[task_id] = task_id
        return self._tasks[task_id]

    async def _node(self, node_id: str) -> str:
        if node_id not in self._nodes:
            c = self._client
            try:
                resp = await c.control.GetNode(
                    control_pb2.GetNodeRequest(node_id=node_id), timeout=c.timeout
                )
                self._nodes[node_id] = resp.node.description.hostname or node_id
            except Exception:  # noqa: BLE001 - a name is cosmetic: fall back to the id
                self._nodes[node_id] = node_id
        return self._nodes[node_id]


async def print_logs(
    messages: AsyncIterable[logs_pb2.SubscribeLogsMessage],
    names: Names,
    *,
    timestamps: bool,
    out: TextIO,
    err: TextIO,
    idle_timeout: float | None,
) -> None:
    """Print every line and gap as it comes; `idle_timeout`: the longest silence allowed.

    Raises:
        errors.DeadlineExceeded: nothing came for `idle_timeout` seconds.
    """
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as guard:
            if idle_timeout is not None:
                guard.reschedule(loop.time() + idle_timeout)
            async for msg in messages:
                if msg.gap:
                    err.write(f"swarmctl: warning: {msg.gap}\n")
                for line in msg.messages:
                    text = format_line(await names.source(line.context), line, timestamps)
                    (err if line.stream == logs_pb2.LOG_STREAM_STDERR else out).write(text)
                out.flush()
                err.flush()
                if idle_timeout is not None:
                    guard.reschedule(loop.time() + idle_timeout)
    except TimeoutError:
        raise errors.DeadlineExceeded(
            f"no log lines from swarmd in {idle_timeout:g}s; giving up"
        ) from None


def _request(ns: argparse.Namespace) -> logs_pb2.SubscribeLogsRequest:
    req = logs_pb2.SubscribeLogsRequest()
    req.options.follow = ns.follow
    req.options.tail = ns.tail
    if ns.since is not None:
        req.options.since.CopyFrom(ns.since)
    return req


async def _stream(
    client: Client, ns: argparse.Namespace, req: logs_pb2.SubscribeLogsRequest
) -> str:
    names = Names(client)
    await names.preload(req.selector.service_ids)
    # The Control stub's channel is not shared with us: Logs gets its own, to the same target.
    channel = open_channel(client.target)
    try:
        call = logs_pb2_grpc.LogsStub(channel).SubscribeLogs(req)
        try:
            await print_logs(
                call,
                names,
                timestamps=ns.timestamps,
                out=sys.stdout,
                err=sys.stderr,
                idle_timeout=None if req.options.follow else client.timeout,
            )
        except BrokenPipeError:
            pass  # `swarmctl service logs web | head`: the reader left
        finally:
            call.cancel()
    finally:
        await channel.close()
    return ""


async def service_logs(client: Client, ns: argparse.Namespace) -> str:
    """Print the logs of every task of a service."""
    svc = await resolve.resolve(client, resolve.SERVICE, ns.service)
    req = _request(ns)
    req.selector.service_ids.append(svc.id)
    return await _stream(client, ns, req)


async def task_logs(client: Client, ns: argparse.Namespace) -> str:
    """Print the logs of one task."""
    task = await resolve.resolve(client, resolve.TASK, ns.task)
    req = _request(ns)
    req.selector.task_ids.append(task.id)
    return await _stream(client, ns, req)


def _add_options(parser: Parser) -> None:
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument(
        "--tail",
        type=parse_tail,
        default=0,
        metavar="N",
        help="only the last N lines of each task ('all', the default, for every line)",
    )
    parser.add_argument(
        "--since",
        type=parse_since,
        default=None,
        metavar="TIME",
        help="only lines since TIME: a duration back from now (10m) or a time (RFC 3339)",
    )
    parser.add_argument(
        "-t", "--timestamps", action="store_true", help="show each line's time (RFC 3339)"
    )


def add_service_logs(verbs: argparse._SubParsersAction[Parser]) -> None:
    """`service logs` in the service group's verbs."""
    p = add_verb(verbs, "logs", service_logs, "print the logs of a service's tasks")
    p.add_argument("service", help="service name, id or id prefix")
    _add_options(p)


def add_task_logs(verbs: argparse._SubParsersAction[Parser]) -> None:
    """`task logs` in the task group's verbs."""
    p = add_verb(verbs, "logs", task_logs, "print the logs of a task")
    p.add_argument("task", help="task id or id prefix")
    _add_options(p)


def _verbs_of(
    sub: argparse._SubParsersAction[Parser], group: str
) -> argparse._SubParsersAction[Parser]:
    parser = sub.choices.get(group)
    if parser is not None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
    raise LookupError(f"swarmctl: the {group} commands must be registered before logs")


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `logs` to the `service` and `task` groups (registered before this)."""
    add_service_logs(_verbs_of(sub, "service"))
    add_task_logs(_verbs_of(sub, "task"))


__all__ = [
    "Names",
    "add_service_logs",
    "add_task_logs",
    "format_line",
    "format_timestamp",
    "parse_since",
    "parse_tail",
    "print_logs",
    "register",
    "service_logs",
    "task_logs",
]
