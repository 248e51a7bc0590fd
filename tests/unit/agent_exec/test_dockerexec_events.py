"""events.py: parsing engine events, routing them per task, and the reconnecting stream."""

from __future__ import annotations

import asyncio
import threading
import time

from swarmd.dockerexec.events import RESYNC, EngineEvent, EventHub, EventStream, parse_event


def raw(action, task_id="t1", exit_code=None, when=100, etype="container"):
    attrs = {"swarmd.task.id": task_id, "swarmd.node.id": "n1", "name": "web.1.t1"}
    if exit_code is not None:
        attrs["exitCode"] = str(exit_code)
    return {
        "Type": etype,
        "Action": action,
        "Actor": {"ID": "cid", "Attributes": attrs},
        "time": when,
        "timeNano": when * 10**9,
    }


def test_parse_event_die_carries_the_exit_code():
    assert parse_event(raw("die", exit_code=137)) == EngineEvent(
        action="die", container_id="cid", task_id="t1", exit_code=137, time_nano=100 * 10**9
    )
    assert parse_event(raw("health_status: unhealthy")).action == "health_status: unhealthy"
    assert parse_event(raw("start")).exit_code is None


def test_parse_event_ignores_what_it_cannot_route():
    assert parse_event(raw("die", etype="network")) is None
    assert parse_event(raw("die", task_id="")) is None
    assert parse_event({"Type": "container", "Action": "die"}) is None


async def test_hub_routes_by_task_and_resync_reaches_everyone():
    hub = EventHub()
    with hub.subscribe("t1") as q1, hub.subscribe("t2") as q2:
        hub.publish(parse_event(raw("die", task_id="t1", exit_code=0)))
        hub.publish(parse_event(raw("die", task_id="other", exit_code=0)))
        hub.publish(RESYNC)
        assert [q1.get_nowait().action, q1.get_nowait().action] == ["die", "resync"]
        assert q2.get_nowait() is RESYNC
        assert q2.empty()
        assert hub.subscribers == 2
    assert hub.subscribers == 0


class FakeStream:
    """A CancellableStream stand-in: yields scripted events, then fails or blocks."""

    def __init__(self, events, then_fail):
        self._events = events
        self._then_fail = then_fail
        self._closed = threading.Event()

    def __iter__(self):
        yield from self._events
        if self._then_fail:
            raise ConnectionError("engine went away")
        self._closed.wait(30)

    def close(self):
        self._closed.set()


class FakeClient:
    def __init__(self, calls, stream):
        self.api = self
        self._calls = calls
        self._stream = stream

    def events(self, since, filters, decode):
        self._calls.append((since, filters, decode))
        return self._stream

    def close(self):
        pass


async def test_stream_reconnects_with_since_and_publishes_resync():
    calls = []
    t0 = int(time.time()) + 100  # event times ahead of the stream's own start time
    scripts = [
        FakeStream([raw("start", when=t0), raw("die", exit_code=3, when=t0 + 5)], then_fail=True),
        FakeStream([raw("destroy", when=t0 + 6)], then_fail=False),
    ]
    hub = EventHub()
    stream = EventStream(hub, "n1", lambda: FakeClient(calls, scripts.pop(0)))
    with hub.subscribe("t1") as q:
        stream.start()
        got = []
        async with asyncio.timeout(10):
            while len(got) < 4:
                got.append((await q.get()).action)
        await stream.stop()
    assert got == ["start", "die", "resync", "destroy"]
    assert calls[0][0] <= time.time()
    assert calls[1][0] == t0 + 5  # resumed from the last event's time
    _, filters, decode = calls[0]
    assert decode is True
    assert filters == {
        "type": "container",
        "label": ["swarmd.node.id=n1"],
        "event": ["create", "start", "die", "destroy", "health_status", "oom", "kill"],
    }
