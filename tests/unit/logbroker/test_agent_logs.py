"""The agent's log publisher against FakeControllers and a recorded PublishLogs stream."""

from __future__ import annotations

import asyncio

import pytest

from swarmd.agent import logs as agentlogs
from swarmd.agent.exec import LogOptions
from swarmd.api import logs_pb2, objects_pb2, specs_pb2
from swarmd.errors import NotFound
from swarmd.testing.fake_executor import Behaviour, FakeExecutor

OUT = logs_pb2.LOG_STREAM_STDOUT
ERR = logs_pb2.LOG_STREAM_STDERR


def _task(tid: str, service: str = "s1", node: str = "n1", state: int = 512):
    t = objects_pb2.Task(id=tid, service_id=service, node_id=node)
    t.spec.CopyFrom(specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="busybox")))
    t.service_annotations.name = "web"
    t.status.state = state
    return t


class Call:
    """A PublishLogs call that records what was written."""

    def __init__(self):
        self.sent: list[logs_pb2.PublishLogsMessage] = []
        self.finished = asyncio.Event()
        self.cancelled = False

    async def write(self, msg):
        self.sent.append(msg)

    async def done_writing(self):
        self.finished.set()

    def __await__(self):
        return asyncio.sleep(0, logs_pb2.PublishLogsResponse()).__await__()

    def cancel(self):
        self.cancelled = True

    def lines(self):
        return [(m.context.task_id, m.stream, m.data) for s in self.sent for m in s.messages]


class Stub:
    def __init__(self):
        self.calls: list[Call] = []

    def PublishLogs(self):  # noqa: N802 - gRPC method name
        self.calls.append(Call())
        return self.calls[-1]


class Node:
    """Tasks of a FakeExecutor as Worker.controllers() would list them."""

    def __init__(self):
        self.executor = FakeExecutor(default=Behaviour(stdout=("a", "b"), stderr=("c",)))
        self.tasks: dict[str, tuple[objects_pb2.Task, object]] = {}

    async def run(self, task):
        ctlr = self.executor.controller(task)
        await ctlr.prepare()
        await ctlr.start()
        self.tasks[task.id] = (task, ctlr)
        return ctlr

    def listed(self):
        return list(self.tasks.values())


def _sub(*, follow=False, tail=0, services=("s1",), tasks=(), sub_id="sub1"):
    msg = logs_pb2.SubscriptionMessage(id=sub_id)
    msg.selector.service_ids.extend(services)
    msg.selector.task_ids.extend(tasks)
    msg.options.follow = follow
    msg.options.tail = tail
    return msg


def test_options_follow_the_wire_conventions():
    opts = logs_pb2.LogSubscriptionOptions(tail=0)
    assert agentlogs.log_options(opts) == LogOptions()
    assert agentlogs.log_options(logs_pb2.LogSubscriptionOptions(tail=-1)).tail == 0
    assert agentlogs.log_options(logs_pb2.LogSubscriptionOptions(tail=-4)).tail == 3
    assert agentlogs.log_options(logs_pb2.LogSubscriptionOptions(tail=-4), later=True).tail is None
    only_err = logs_pb2.LogSubscriptionOptions(streams=[ERR], follow=True)
    only_err.since.FromNanoseconds(1_500_000_000)
    assert agentlogs.log_options(only_err) == LogOptions(
        stdout=False, stderr=True, follow=True, since=1.5
    )


def test_the_selector_is_a_union_of_services_tasks_and_nodes():
    sel = logs_pb2.LogSelector(service_ids=["s1"], task_ids=["t9"], node_ids=["n7"])
    assert agentlogs.matches(sel, _task("t1", service="s1"))
    assert agentlogs.matches(sel, _task("t9", service="other"))
    assert agentlogs.matches(sel, _task("t5", service="other", node="n7"))
    assert not agentlogs.matches(sel, _task("t5", service="other", node="n1"))


async def test_without_follow_every_selected_task_is_sent_then_close():
    node = Node()
    await node.run(_task("t1"))
    await node.run(_task("t2"))
    await node.run(_task("t3", service="s2"))
    node.tasks["t4"] = (_task("t4"), node.executor.controller(_task("t4")))  # no container
    stub = Stub()
    await agentlogs._Subscription(_sub(tail=-3), node.listed).serve(stub)
    (call,) = stub.calls
    assert call.sent[0] == logs_pb2.PublishLogsMessage(subscription_id="sub1")
    assert call.sent[-1] == logs_pb2.PublishLogsMessage(subscription_id="sub1", close=True)
    assert call.finished.is_set()
    got = call.lines()
    for tid in ("t1", "t2"):
        assert [(s, d) for t, s, d in got if t == tid] == [(OUT, b"b"), (ERR, b"c")]
    assert {t for t, _, _ in got} == {"t1", "t2"}
    ctx = call.sent[1].messages[0].context
    assert (ctx.service_id, ctx.node_id) == ("s1", "n1")


async def test_follow_streams_new_lines_and_tasks_that_start_later(monkeypatch):
    monkeypatch.setattr(agentlogs, "RESCAN", 0.01)
    node = Node()
    await node.run(_task("t1"))
    stub = Stub()
    job = asyncio.get_running_loop().create_task(
        agentlogs._Subscription(_sub(follow=True, tail=-1), node.listed).serve(stub)
    )
    try:

        async def lines(n):
            async with asyncio.timeout(5):
                while len(stub.calls[0].lines()) < n:  # noqa: ASYNC110 - polling a recording
                    await asyncio.sleep(0.01)
            return stub.calls[0].lines()

        await asyncio.sleep(0.05)
        node.executor.write("t1", "live")
        assert await lines(1) == [("t1", OUT, b"live")]
        await node.run(_task("t2"))  # a replacement task starting after the subscription
        assert (await lines(4))[1:] == [("t2", OUT, b"a"), ("t2", OUT, b"b"), ("t2", ERR, b"c")]
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
    assert stub.calls[0].cancelled


class Listen:
    """A ListenSubscriptions stream fed by the test."""

    def __init__(self):
        self.queue: asyncio.Queue[logs_pb2.SubscriptionMessage | None] = asyncio.Queue()

    def __aiter__(self):
        return self

    async def __anext__(self):
        msg = await self.queue.get()
        if msg is None:
            raise StopAsyncIteration
        return msg

    def cancel(self):
        pass


async def test_a_close_from_the_manager_stops_serving_that_subscription():
    node = Node()
    await node.run(_task("t1"))
    stub = Stub()
    listen = Listen()
    stub.ListenSubscriptions = lambda _req: listen
    publisher = agentlogs.LogPublisher(node.listed)
    runner = asyncio.get_running_loop().create_task(publisher._listen(stub))
    listen.queue.put_nowait(_sub(follow=True))
    async with asyncio.timeout(5):
        while not stub.calls or len(stub.calls[0].lines()) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    listen.queue.put_nowait(logs_pb2.SubscriptionMessage(id="sub1", close=True))
    async with asyncio.timeout(5):
        while not stub.calls[0].cancelled:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    listen.queue.put_nowait(None)
    await asyncio.wait_for(runner, 5)


async def test_fake_controller_logs_filter_like_the_docker_one():
    node = Node()
    ctlr = await node.run(_task("t1"))
    node.executor.write("t1", "late", ERR)

    async def collect(**kw):
        return [ln.data async for ln in ctlr.logs(LogOptions(**kw))]

    assert await collect() == [b"a", b"b", b"c", b"late"]
    assert await collect(tail=2) == [b"c", b"late"]
    assert await collect(stderr=False) == [b"a", b"b"]
    assert await collect(tail=0) == []
    last = [ln async for ln in ctlr.logs(LogOptions())][-1]
    assert await collect(since=last.timestamp_ns / 1e9) == [b"late"]
    node.executor.exit("t1", 0)
    assert await asyncio.wait_for(collect(follow=True, tail=1), 2) == [b"late"]
    missing = node.executor.controller(_task("t9"))
    with pytest.raises(NotFound, match="task t9 has no container"):
        [ln async for ln in missing.logs(LogOptions())]
