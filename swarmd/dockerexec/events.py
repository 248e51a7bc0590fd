"""The engine's container events for one node, read by one thread and handed to the loop.

DockerExecutor owns one EventStream and one EventHub. The stream runs `docker events` in its own
thread with its own client (a blocking stream would otherwise pin a pool thread and a pooled
connection forever), filtered to container events of this node's containers (label
swarmd.node.id) and to the actions controllers need, so health probes do not flood it with exec
events (measurements.md section 5). Each event crosses to the loop through
`loop.call_soon_threadsafe(hub.publish, event)`. After an error the thread reconnects with
backoff and `since=` the last event seen, then publishes RESYNC so waiting controllers inspect
their container once more instead of trusting that nothing was missed.

Controllers never poll: they `subscribe(task_id)` before acting (start, wait) and read the
queue. Events are routed by the swarmd.task.id label the engine puts in every event.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import structlog

from swarmd.dockerexec.container import LABEL_NODE_ID, LABEL_TASK_ID

_log = structlog.get_logger(component="dockerexec")

#: The container actions controllers react to (health_status matches "health_status: ...").
ACTIONS = ("create", "start", "die", "destroy", "health_status", "oom", "kill")

HEALTHY = "health_status: healthy"
UNHEALTHY = "health_status: unhealthy"


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One container event of this node. `exit_code` is set for "die"."""

    action: str
    container_id: str
    task_id: str
    exit_code: int | None = None
    time_nano: int = 0


#: Delivered to every subscriber after the stream reconnected: re-inspect, events may be lost.
RESYNC = EngineEvent(action="resync", container_id="", task_id="")


def parse_event(raw: Mapping[str, Any]) -> EngineEvent | None:
    """An EngineEvent from a decoded engine event, or None for one we do not route."""
    if raw.get("Type") != "container":
        return None
    actor = raw.get("Actor")
    if not isinstance(actor, Mapping):
        return None
    attrs = actor.get("Attributes")
    if not isinstance(attrs, Mapping):
        return None
    task_id = attrs.get(LABEL_TASK_ID)
    action = raw.get("Action") or raw.get("status")
    if not task_id or not isinstance(action, str):
        return None
    code: int | None = None
    if action == "die":
        try:
            code = int(attrs.get("exitCode", ""))
        except ValueError:
            code = None
    return EngineEvent(
        action=action,
        container_id=str(actor.get("ID") or raw.get("id") or ""),
        task_id=str(task_id),
        exit_code=code,
        time_nano=int(raw.get("timeNano") or 0),
    )


class EventHub:
    """Routes engine events to per-task subscribers. Loop-confined."""

    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[EngineEvent]]] = {}

    @contextmanager
    def subscribe(self, task_id: str) -> Iterator[asyncio.Queue[EngineEvent]]:
        """A queue of the events of `task_id` (plus RESYNC) for the duration of the block."""
        queue: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._subs.setdefault(task_id, set()).add(queue)
        try:
            yield queue
        finally:
            subs = self._subs.get(task_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subs[task_id]

    def publish(self, event: EngineEvent) -> None:
        """Deliver `event` to the subscribers of its task (all of them for RESYNC)."""
        if event is RESYNC:
            for subs in self._subs.values():
                for q in subs:
                    q.put_nowait(event)
            return
        for q in self._subs.get(event.task_id, ()):
            q.put_nowait(event)

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open (for tests)."""
        return sum(len(s) for s in self._subs.values())


class EventStream:
    """The engine event thread of one node. start() once, stop() once."""

    def __init__(
        self,
        hub: EventHub,
        node_id: str,
        client_factory: Callable[[], docker.DockerClient],
        *,
        max_backoff: float = 5.0,
    ) -> None:
        self._hub = hub
        self._node_id = node_id
        self._client_factory = client_factory
        self._max_backoff = max_backoff
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._closer: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Set (in the loop) once the first connection is up; tests wait on it.
        self.connected = asyncio.Event()
        # Engine time of the last event, whole seconds: the engine's `since` resolution.
        self._since = int(time.time()) - 1

    def start(self) -> None:
        """Start the thread; call from the loop the events should go to."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"dockerexec-events-{self._node_id}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Close the stream and wait for the thread to end."""
        self._stopping.set()
        with self._lock:
            closer = self._closer
        if closer is not None:
            try:
                closer()
            except Exception as err:  # noqa: BLE001 - closing a dead stream may fail any way
                _log.debug("closing event stream failed", error=str(err))
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10.0)

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopping.set()
            return False
        return True

    def _run(self) -> None:
        backoff = 0.1
        first = True
        while not self._stopping.is_set():
            try:
                self._follow(resync=not first)
                first = False
                backoff = 0.1
            except Exception as err:  # noqa: BLE001 - the thread must survive engine trouble
                if self._stopping.is_set():
                    break
                _log.warning("engine event stream failed; reconnecting", error=str(err))
            first = False
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _follow(self, *, resync: bool) -> None:
        client = self._client_factory()
        try:
            stream = client.api.events(
                since=self._since,
                filters={
                    "type": "container",
                    "label": [f"{LABEL_NODE_ID}={self._node_id}"],
                    "event": list(ACTIONS),
                },
                decode=True,
            )
            with self._lock:
                self._closer = stream.close
            if self._stopping.is_set():
                return
            self._to_loop(self.connected.set)
            if resync:
                self._to_loop(self._hub.publish, RESYNC)
            for raw in stream:
                if self._stopping.is_set():
                    return
                self._since = max(self._since, int(raw.get("time") or 0))
                event = parse_event(raw)
                if event is not None and not self._to_loop(self._hub.publish, event):
                    return
        finally:
            with self._lock:
                self._closer = None
            client.close()


__all__ = ["ACTIONS", "HEALTHY", "RESYNC", "UNHEALTHY", "EngineEvent", "EventHub", "EventStream"]
