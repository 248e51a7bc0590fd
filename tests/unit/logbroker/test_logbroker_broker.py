"""LogBroker without gRPC: subscriptions resolved against the store, fanned out, gaps, ends."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from swarmd import errors
from swarmd.api import logs_pb2, objects_pb2
from swarmd.manager.logbroker import LogBroker
from swarmd.manager.store import MemoryStore, Tx

DEADLINE = 0.3


async def _store() -> MemoryStore:
    store = MemoryStore()

    def fill(tx: Tx) -> None:
        for nid, host in (("n1", "wrk1"), ("n2", "wrk2"), ("n3", "wrk3")):
            node = objects_pb2.Node(id=nid)
            node.description.hostname = host
            tx.nodes.create(node)
        svc = objects_pb2.Service(id="s1")
        svc.spec.annotations.name = "web"
        tx.services.create(svc)
        tx.tasks.create(objects_pb2.Task(id="t1", service_id="s1", node_id="n1", slot=1))
        tx.tasks.create(objects_pb2.Task(id="t2", service_id="s1", node_id="n2", slot=2))

    await store.update(fill)
    return store


@pytest.fixture
async def broker():
    b = LogBroker(await _store(), deadline=DEADLINE)
    runner = asyncio.get_running_loop().create_task(b.run())
    await asyncio.sleep(0)
    yield b
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner


def _req(*, follow: bool = False, service: str = "s1", tail: int = 0):
    req = logs_pb2.SubscribeLogsRequest()
    req.selector.service_ids.append(service)
    req.options.follow = follow
    req.options.tail = tail
    return req


def _line(task: str, text: bytes, node: str = "") -> logs_pb2.LogMessage:
    return logs_pb2.LogMessage(
        context=logs_pb2.LogContext(service_id="s1", node_id=node, task_id=task), data=text
    )


async def _publish(broker, node, sub_id, *msgs, close=True):
    async def stream():
        yield logs_pb2.PublishLogsMessage(subscription_id=sub_id)
        for m in msgs:
            yield logs_pb2.PublishLogsMessage(subscription_id=sub_id, messages=[m])
        if close:
            yield logs_pb2.PublishLogsMessage(subscription_id=sub_id, close=True)

    await broker.publish(node, stream())


class Publisher:
    """An agent's PublishLogs stream that stays open, as it does while following."""

    def __init__(self, broker, node, sub_id):
        self.sub_id = sub_id
        self.queue: asyncio.Queue[logs_pb2.LogMessage] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(broker.publish(node, self._stream()))

    async def _stream(self):
        yield logs_pb2.PublishLogsMessage(subscription_id=self.sub_id)
        while True:
            line = await self.queue.get()
            yield logs_pb2.PublishLogsMessage(subscription_id=self.sub_id, messages=[line])

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class Client:
    """A subscription consumed in the background."""

    def __init__(self, broker, req):
        self.lines: list[logs_pb2.LogMessage] = []
        self.gaps: list[str] = []
        self.task = asyncio.get_running_loop().create_task(self._run(broker, req))

    async def _run(self, broker, req):
        async for msg in broker.subscribe(req):
            self.lines.extend(msg.messages)
            if msg.gap:
                self.gaps.append(msg.gap)

    async def ended(self, within=2.0):
        async with asyncio.timeout(within):
            await self.task

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class Agent:
    """A node's ListenSubscriptions stream consumed in the background."""

    def __init__(self, broker, node_id):
        self.node_id = node_id
        self.received: asyncio.Queue[logs_pb2.SubscriptionMessage] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(broker))

    async def _run(self, broker):
        async for msg in broker.listen(self.node_id):
            self.received.put_nowait(msg)

    async def next(self, within=2.0) -> logs_pb2.SubscriptionMessage:
        async with asyncio.timeout(within):
            return await self.received.get()

    async def leave(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _listening(broker, *nodes):
    agents = [Agent(broker, n) for n in nodes]
    async with asyncio.timeout(2):
        while broker.connected() != sorted(nodes):  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)
    return agents


async def test_lines_come_back_and_a_node_not_connected_is_an_immediate_gap(broker):
    (a1,) = await _listening(broker, "n1")
    client = Client(broker, _req())
    sub = await a1.next()
    assert list(sub.selector.service_ids) == ["s1"]
    await _publish(broker, "n1", sub.id, _line("t1", b"hello"), _line("t1", b"bye", node="n1"))
    await client.ended()
    assert client.gaps == ["no logs from node wrk2 (n2): not connected"]
    assert [(ln.context.node_id, ln.data) for ln in client.lines] == [
        ("n1", b"hello"),  # the broker fills in the publishing node
        ("n1", b"bye"),
    ]
    await a1.leave()


async def test_a_node_may_not_publish_for_another(broker):
    (a1, _) = await _listening(broker, "n1", "n2")
    client = Client(broker, _req())
    sub = await a1.next()
    with pytest.raises(errors.PermissionDenied, match="node n1 may not publish logs of node n2"):
        await _publish(broker, "n1", sub.id, _line("t2", b"forged", node="n2"))
    await client.stop()
    assert client.lines == []


async def test_a_node_that_leaves_or_stops_publishing_is_a_gap_and_the_stream_ends(broker):
    a1, a2 = await _listening(broker, "n1", "n2")
    client = Client(broker, _req())
    sub = await a1.next()
    await a2.next()
    await _publish(broker, "n1", sub.id, _line("t1", b"partial"), close=False)
    await a2.leave()
    await client.ended()
    assert sorted(client.gaps) == [
        "no logs from node wrk1 (n1): it stopped publishing",
        "no logs from node wrk2 (n2): disconnected",
    ]
    assert [ln.data for ln in client.lines] == [b"partial"]


async def test_a_silent_node_is_a_gap_after_the_deadline(broker):
    a1, a2 = await _listening(broker, "n1", "n2")
    client = Client(broker, _req())
    sub = await a1.next()
    await a2.next()
    await _publish(broker, "n1", sub.id, _line("t1", b"ok"))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await client.ended()
    assert DEADLINE * 0.9 <= loop.time() - t0 < DEADLINE + 1.0
    assert client.gaps == [f"no logs from node wrk2 (n2): no answer within {DEADLINE:g}s"]


async def test_follow_reaches_nodes_that_connect_later_and_resumes_after_a_loss(broker):
    (a1,) = await _listening(broker, "n1")
    client = Client(broker, _req(follow=True, tail=-3))
    sub = await a1.next()
    await asyncio.sleep(0.01)
    assert client.gaps == ["no logs from node wrk2 (n2): not connected"]
    # n3 has no task of the service yet but may get one: it is sent the subscription too.
    (a3,) = [Agent(broker, "n3")]
    assert (await a3.next()).id == sub.id
    # n1 goes and comes back: it gets the subscription again, from the time it was lost.
    pub = Publisher(broker, "n1", sub.id)
    pub.queue.put_nowait(_line("t1", b"before"))
    await asyncio.sleep(0.05)
    await pub.stop()
    await a1.leave()
    a1 = Agent(broker, "n1")
    again = await a1.next()
    assert again.id == sub.id
    assert again.options.tail == 0
    assert again.options.HasField("since")
    pub = Publisher(broker, "n1", sub.id)
    pub.queue.put_nowait(_line("t1", b"after"))
    await asyncio.sleep(0.05)
    assert [ln.data for ln in client.lines] == [b"before", b"after"]
    assert client.gaps[-1] == "no logs from node wrk1 (n1): disconnected"
    await pub.stop()
    # The client leaves: every node still listening is told to stop.
    await client.stop()
    assert (await a1.next()).close
    assert (await a3.next()).close
    await a1.leave()
    await a3.leave()


async def test_bad_subscriptions_are_refused(broker):
    with pytest.raises(errors.NotFound, match="service nope not found"):
        await anext(broker.subscribe(_req(service="nope")))
    with pytest.raises(errors.InvalidArgument, match="must select"):
        await anext(broker.subscribe(logs_pb2.SubscribeLogsRequest()))
    with pytest.raises(errors.InvalidArgument, match="tail"):
        await anext(broker.subscribe(_req(tail=3)))


async def test_a_subscription_without_nodes_ends_at_once(broker):
    def add(tx: Tx) -> None:
        svc = objects_pb2.Service(id="s2")
        svc.spec.annotations.name = "idle"
        tx.services.create(svc)

    await broker._store.update(add)
    client = Client(broker, _req(service="s2"))
    await client.ended(within=0.5)
    assert client.lines == []
    assert client.gaps == []


async def test_nothing_is_served_while_the_broker_is_stopped():
    b = LogBroker(await _store())
    with pytest.raises(errors.Unavailable, match="not running"):
        await anext(b.subscribe(_req()))
    with pytest.raises(errors.Unavailable, match="not running"):
        await anext(b.listen("n1"))


async def test_stopping_the_broker_ends_follows_with_a_gap():
    b = LogBroker(await _store())
    runner = asyncio.get_running_loop().create_task(b.run())
    await asyncio.sleep(0)
    (a1,) = await _listening(b, "n1")
    client = Client(b, _req(follow=True))
    await a1.next()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await client.ended()
    assert client.gaps[-1] == "the log broker stopped on this manager"
    await a1.task
