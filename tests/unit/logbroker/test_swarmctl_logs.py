"""swarmctl's logs verbs without a manager: flags, registration, how lines and gaps print."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import pytest

from swarmctl.command import Parser, UsageError
from swarmctl.commands import logs, service, task
from swarmd import errors
from swarmd.api import logs_pb2


def _parser() -> Parser:
    parser = Parser(prog="swarmctl")
    sub = parser.add_subparsers(dest="resource")
    service.register(sub)
    task.register(sub)
    logs.register(sub)
    return parser


def test_tail_all_or_a_count_becomes_the_wire_encoding():
    assert logs.parse_tail("all") == 0
    assert logs.parse_tail("0") == -1
    assert logs.parse_tail("10") == -11
    with pytest.raises(logs.FlagError, match="invalid tail '-2': must not be negative"):
        logs.parse_tail("-2")
    with pytest.raises(logs.FlagError, match="must be a number of lines or 'all'"):
        logs.parse_tail("some")


def test_since_takes_a_duration_a_time_or_unix_seconds():
    now = 1_700_000_000.0
    assert logs.parse_since("10m", now).seconds == 1_700_000_000 - 600
    assert logs.parse_since("1700000000.5", now).ToNanoseconds() == 1_700_000_000_500_000_000
    ts = logs.parse_since("2026-01-02T15:04:05Z", now)
    assert ts.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 2, 15, 4, 5, tzinfo=UTC)
    with pytest.raises(logs.FlagError, match="invalid since 'yesterday'"):
        logs.parse_since("yesterday", now)


def test_logs_verbs_are_registered_under_service_and_task():
    ns = _parser().parse_args(["service", "logs", "web", "-f", "--tail", "5", "-t"])
    assert (ns.service, ns.follow, ns.tail, ns.timestamps, ns.since) == (
        "web",
        True,
        -6,
        True,
        None,
    )
    assert ns.handler is logs.service_logs
    ns = _parser().parse_args(["task", "logs", "abc", "--since", "1h"])
    assert (ns.task, ns.follow, ns.tail) == ("abc", False, 0)
    assert ns.since.seconds > 0
    assert ns.handler is logs.task_logs
    with pytest.raises(UsageError, match="argument --tail: invalid tail"):
        _parser().parse_args(["service", "logs", "web", "--tail", "x"])


def _msg(text: bytes, stream=logs_pb2.LOG_STREAM_STDOUT, task_id="t1", node_id="n1"):
    m = logs_pb2.LogMessage(
        context=logs_pb2.LogContext(task_id=task_id, node_id=node_id), stream=stream, data=text
    )
    m.timestamp.FromNanoseconds(1_767_366_245_000_000_042)
    return m


def test_a_line_names_task_and_node_and_may_start_with_its_time():
    assert logs.format_line("web.1@wrk1", _msg(b"hello\n"), False) == "web.1@wrk1 | hello\n"
    assert (
        logs.format_line("web.1@wrk1", _msg(b"hi"), True)
        == "2026-01-02T15:04:05.000000042Z web.1@wrk1 | hi\n"
    )
    assert logs.format_line("x@y", _msg(b"\xff"), False) == "x@y | \ufffd\n"


class FakeNames:
    async def source(self, ctx):
        return {"t1": "web.1", "t2": "web.2"}[ctx.task_id] + "@" + {"n1": "wrk1"}[ctx.node_id]


async def _stream(*msgs):
    for m in msgs:
        yield m


async def test_lines_go_to_their_stream_and_gaps_are_warnings():
    out, err = io.StringIO(), io.StringIO()
    await logs.print_logs(
        _stream(
            logs_pb2.SubscribeLogsMessage(messages=[_msg(b"one"), _msg(b"two", task_id="t2")]),
            logs_pb2.SubscribeLogsMessage(gap="no logs from node wrk2 (n2): not connected"),
            logs_pb2.SubscribeLogsMessage(messages=[_msg(b"oops", logs_pb2.LOG_STREAM_STDERR)]),
        ),
        FakeNames(),
        timestamps=False,
        out=out,
        err=err,
        idle_timeout=5.0,
    )
    assert out.getvalue() == "web.1@wrk1 | one\nweb.2@wrk1 | two\n"
    assert err.getvalue() == (
        "swarmctl: warning: no logs from node wrk2 (n2): not connected\nweb.1@wrk1 | oops\n"
    )


async def test_a_silent_manager_without_follow_is_an_error_not_a_hang():
    async def silent():
        await asyncio.sleep(10)
        yield logs_pb2.SubscribeLogsMessage()

    with pytest.raises(errors.DeadlineExceeded, match=r"no log lines from swarmd in 0\.05s"):
        await logs.print_logs(
            silent(),
            FakeNames(),
            timestamps=False,
            out=io.StringIO(),
            err=io.StringIO(),
            idle_timeout=0.05,
        )
