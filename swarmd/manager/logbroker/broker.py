"""The log broker: fans client log subscriptions out to agents and their lines back, with gaps.

Manager layer; `swarmd.manager.manager.Manager` makes one, serves it through the servicers of
`server.py` and runs `run()` as a leader component (subscriptions need the leader's store and
the agents' sessions). SwarmKit: `manager/logbroker/broker.go`, with one difference that is
the point of users.md 4.8: a client is never left waiting on a node that is gone.

- Agents call `listen(node_id)` (ListenSubscriptions, over their own outbound connection: no
  port is opened on workers) and get every subscription that concerns them; they answer each
  with one `publish()` stream (PublishLogs) that ends with a close message.
- A client's `subscribe()` is resolved against the store to the nodes holding the selected
  tasks (a union of the selected services, tasks and nodes, as SwarmKit does). A node that is
  not connected is reported at once as a gap; one that disconnects, stops publishing, or (without
  follow) is silent for `deadline` seconds is reported when that happens. Without follow the
  stream ends when every node has closed or gapped, so the command always returns.
- With `follow` the subscription also goes to every other connected node and to nodes that
  connect later, because a task of the service may start anywhere (agents resolve the selector
  against their own tasks, so a restart's new task is picked up); a node that comes back after
  a loss gets it again with `since` the time of the loss, so its lines continue without repeats.

Lines are checked, not trusted: a node may only publish lines whose context names itself
(PermissionDenied otherwise, as in SwarmKit). Log content is never logged.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog

from swarmd import errors
from swarmd.api import logs_pb2, objects_pb2
from swarmd.clock import Clock, SystemClock
from swarmd.identity import new_id
from swarmd.manager.logbroker.subscription import SubscriptionState, gap_text, node_label
from swarmd.manager.store import MemoryStore
from swarmd.manager.store.tx import ReadTx

_log = structlog.get_logger(component="logbroker")

#: Without follow, a node must be heard from within this many seconds (users.md 4.8 target:
#: `service logs` returns in under 2 s when a node is down).
NODE_DEADLINE = 1.5
#: Log batches held for a slow client before its nodes' publish streams are made to wait.
CLIENT_QUEUE = 256


@dataclass(eq=False)
class _Listener:
    """One agent's ListenSubscriptions stream; None in the queue ends it."""

    node_id: str
    queue: asyncio.Queue[logs_pb2.SubscriptionMessage | None] = field(default_factory=asyncio.Queue)


@dataclass(eq=False)
class _Client:
    """One SubscribeLogs call."""

    id: str
    request: logs_pb2.SubscribeLogsRequest
    state: SubscriptionState
    #: Nodes that had selected tasks when the subscription started: their loss is a gap.
    expected: set[str]
    out: asyncio.Queue[logs_pb2.SubscribeLogsMessage | None] = field(default_factory=asyncio.Queue)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    #: Which listener each node got the subscription on.
    sent: dict[str, _Listener] = field(default_factory=dict)
    #: With follow: wall time a node was lost, so that a resend continues from there.
    lost_at: dict[str, float] = field(default_factory=dict)

    @property
    def follow(self) -> bool:
        return self.request.options.follow

    def wake(self) -> None:
        self.out.put_nowait(None)

    def push_gap(self, text: str | None) -> None:
        if text is not None:
            _log.info("log subscription gap", subscription_id=self.id, gap=text)
            self.out.put_nowait(logs_pb2.SubscribeLogsMessage(gap=text))


def _validate(request: logs_pb2.SubscribeLogsRequest) -> None:
    sel = request.selector
    if not (sel.service_ids or sel.task_ids or sel.node_ids):
        raise errors.InvalidArgument("a log subscription must select services, tasks or nodes")
    if request.options.tail > 0:
        raise errors.InvalidArgument(
            "log option tail must be 0 (all), -1 (none) or -(n+1) (the last n lines)"
        )


def select_nodes(tx: ReadTx, selector: logs_pb2.LogSelector) -> dict[str, str]:
    """Node id -> gap label for every node holding a selected task, or selected itself.

    Raises:
        NotFound: a selected service, task or node does not exist.
    """
    tasks: list[objects_pb2.Task] = []
    for service_id in selector.service_ids:
        if tx.services.get(service_id) is None:
            raise errors.NotFound("service", service_id)
        tasks.extend(tx.tasks.find_by_service(service_id))
    for task_id in selector.task_ids:
        task = tx.tasks.get(task_id)
        if task is None:
            raise errors.NotFound("task", task_id)
        tasks.append(task)
    node_ids = {t.node_id for t in tasks if t.node_id}
    for node_id in selector.node_ids:
        if tx.nodes.get(node_id) is None:
            raise errors.NotFound("node", node_id)
        node_ids.add(node_id)
    return {n: label_of(tx, n) for n in sorted(node_ids)}


def label_of(tx: ReadTx, node_id: str) -> str:
    """A node's gap label from the store (its hostname and id)."""
    node = tx.nodes.get(node_id)
    return node_label(node_id, node.description.hostname if node is not None else "")


class LogBroker:
    """Routes subscriptions to agents and their lines to clients. Loop-confined."""

    def __init__(
        self,
        store: MemoryStore,
        clock: Clock | None = None,
        *,
        deadline: float = NODE_DEADLINE,
        client_queue: int = CLIENT_QUEUE,
    ) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._deadline = deadline
        self._client_queue = client_queue
        self._listeners: dict[str, _Listener] = {}
        self._clients: dict[str, _Client] = {}
        self._running = False
        self._seq = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve while this manager leads; on the way out end every stream."""
        self._running = True
        _log.info("log broker started")
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            for listener in list(self._listeners.values()):
                listener.queue.put_nowait(None)
            for client in list(self._clients.values()):
                client.state.abort()
                client.out.put_nowait(
                    logs_pb2.SubscribeLogsMessage(gap="the log broker stopped on this manager")
                )
            _log.info("log broker stopped")

    def _require_running(self) -> None:
        if not self._running:
            raise errors.Unavailable("the log broker is not running on this manager")

    def connected(self) -> list[str]:
        """Ids of the nodes whose agents listen now, sorted (for tests and status)."""
        return sorted(self._listeners)

    # -- agents ----------------------------------------------------------------------------

    async def listen(self, node_id: str) -> AsyncIterator[logs_pb2.SubscriptionMessage]:
        """The subscriptions for `node_id`'s agent, until it goes or a newer stream replaces it."""
        self._require_running()
        listener = _Listener(node_id)
        old = self._listeners.get(node_id)
        if old is not None:
            old.queue.put_nowait(None)
        self._listeners[node_id] = listener
        log = _log.bind(node_id=node_id)
        log.debug("log listener connected")
        for client in list(self._clients.values()):
            if client.follow:
                self._send(client, listener)
        try:
            while True:
                msg = await listener.queue.get()
                if msg is None:
                    return
                yield msg
        finally:
            if self._listeners.get(node_id) is listener:
                del self._listeners[node_id]
            self._lose(listener, "disconnected")
            log.debug("log listener gone")

    def _send(self, client: _Client, listener: _Listener) -> None:
        node_id = listener.node_id
        msg = logs_pb2.SubscriptionMessage(
            id=client.id, selector=client.request.selector, options=client.request.options
        )
        lost = client.lost_at.pop(node_id, None)
        if lost is not None:
            # Resume after the loss: everything since then, nothing before it again.
            msg.options.tail = 0
            if not msg.options.HasField("since") or msg.options.since.ToNanoseconds() < lost:
                msg.options.since.FromNanoseconds(int(lost))
        client.sent[node_id] = listener
        label = self._store.view(lambda tx: label_of(tx, node_id))
        client.state.expect(node_id, label, self._clock.monotonic())
        listener.queue.put_nowait(msg)
        client.wake()

    def _lose(self, listener: _Listener, reason: str) -> None:
        """The node's stream ended: every subscription it was serving has a gap for it."""
        node_id = listener.node_id
        for client in list(self._clients.values()):
            if client.sent.get(node_id) is not listener:
                continue
            del client.sent[node_id]
            if client.follow:
                client.lost_at[node_id] = self._clock.now() * 1e9
            relevant = node_id in client.expected or client.state.has_published(node_id)
            label = self._store.view(lambda tx: label_of(tx, node_id))
            text = client.state.gap(node_id, label, reason)
            if relevant:
                client.push_gap(text)
            client.wake()

    async def publish(
        self, node_id: str, messages: AsyncIterator[logs_pb2.PublishLogsMessage]
    ) -> None:
        """Take one agent's PublishLogs stream and pass its lines to the subscriber.

        Raises:
            PermissionDenied: a line's context names another node.
        """
        client: _Client | None = None
        closed = False
        async for msg in messages:
            client = self._clients.get(msg.subscription_id)
            if client is None or not client.state.accepts(node_id):
                continue  # the client went away, or this node was already given up on
            for line in msg.messages:
                if not line.context.node_id:
                    line.context.node_id = node_id
                elif line.context.node_id != node_id:
                    raise errors.PermissionDenied(
                        f"node {node_id} may not publish logs of node {line.context.node_id}"
                    )
            await self._deliver(client, node_id, msg)
            if msg.close:
                closed = True
                client.state.closed(node_id)
                client.wake()
                return
        if client is not None and not closed and client.state.accepts(node_id):
            label = self._store.view(lambda tx: label_of(tx, node_id))
            client.push_gap(client.state.gap(node_id, label, "it stopped publishing"))
            client.wake()

    async def _deliver(
        self, client: _Client, node_id: str, msg: logs_pb2.PublishLogsMessage
    ) -> None:
        clock = self._clock
        client.state.heard(node_id, clock.monotonic(), data=bool(msg.messages))
        if not msg.messages:
            return
        client.state.busy(node_id, +1, clock.monotonic())
        try:
            while client.out.qsize() >= self._client_queue:
                client.room.clear()
                await client.room.wait()
        finally:
            client.state.busy(node_id, -1, clock.monotonic())
        if client.state.accepts(node_id):
            client.out.put_nowait(logs_pb2.SubscribeLogsMessage(messages=msg.messages))

    # -- clients ---------------------------------------------------------------------------

    async def subscribe(
        self, request: logs_pb2.SubscribeLogsRequest
    ) -> AsyncIterator[logs_pb2.SubscribeLogsMessage]:
        """The lines and gaps of one subscription; ends by itself unless it follows.

        Raises:
            InvalidArgument: nothing selected, or a bad tail.
            NotFound: a selected service, task or node does not exist.
            Unavailable: the broker does not run here (this manager does not lead).
        """
        self._require_running()
        _validate(request)
        nodes = self._store.view(lambda tx: select_nodes(tx, request.selector))
        follow = request.options.follow
        client = _Client(
            id=f"{new_id()}-{next(self._seq)}",
            request=request,
            state=SubscriptionState(follow=follow, deadline=self._deadline),
            expected=set(nodes),
        )
        self._clients[client.id] = client
        log = _log.bind(subscription_id=client.id)
        log.debug("log subscription started", nodes=len(nodes), follow=follow)
        try:
            for node_id, label in nodes.items():
                listener = self._listeners.get(node_id)
                if listener is None:
                    client.push_gap(client.state.gap(node_id, label, "not connected"))
                else:
                    self._send(client, listener)
            if follow:
                for node_id, listener in list(self._listeners.items()):
                    if node_id not in nodes:
                        self._send(client, listener)
            async for out in self._drain(client):
                yield out
        finally:
            del self._clients[client.id]
            for listener in client.sent.values():
                listener.queue.put_nowait(logs_pb2.SubscriptionMessage(id=client.id, close=True))
            log.debug("log subscription ended")

    async def _drain(self, client: _Client) -> AsyncIterator[logs_pb2.SubscribeLogsMessage]:
        clock = self._clock
        while True:
            for text in client.state.expired(clock.monotonic()):
                client.push_gap(text)
            if client.out.empty() and client.state.done:
                return
            deadline = client.state.next_deadline()
            try:
                async with asyncio.timeout(
                    None if deadline is None else max(0.0, deadline - clock.monotonic())
                ):
                    item = await client.out.get()
            except TimeoutError:
                continue
            if client.out.qsize() < self._client_queue:
                client.room.set()
            if item is not None:
                yield item


__all__ = ["CLIENT_QUEUE", "NODE_DEADLINE", "LogBroker", "gap_text", "label_of", "select_nodes"]
