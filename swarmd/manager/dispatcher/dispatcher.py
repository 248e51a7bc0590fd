"""Dispatcher servicer: agent sessions, heartbeats, node liveness, assignments, task status.

Served on the cluster port (mTLS) to workers and managers; the caller's node id comes from its
certificate (`swarmd.rpc.auth.current_peer`). The manager runs `run()` beside the servicer to mark
nodes DOWN when they miss heartbeats. `Assignments` streams a node's tasks (a complete set, then
incremental changes, see `assignments.py`); `UpdateTaskStatus` takes the agents' reports
(`taskstatus.py`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import structlog
from grpc import aio

from swarmd import errors
from swarmd.api import dispatcher_pb2, dispatcher_pb2_grpc, objects_pb2, types_pb2
from swarmd.clock import Clock, SystemClock
from swarmd.manager.dispatcher.assignments import AssignmentTracker
from swarmd.manager.dispatcher.nodes import HeartbeatTracker
from swarmd.manager.dispatcher.taskstatus import TaskStatusWriter
from swarmd.manager.store import Commit, Event, EventKind, MemoryStore, Tx
from swarmd.rpc.auth import current_peer
from swarmd.rpc.identity import caller_address

_log = structlog.get_logger(component="dispatcher")

DEFAULT_HEARTBEAT_PERIOD = 2.0
# A node is DOWN after missing this many periods (SwarmKit: 3).
GRACE_MULTIPLIER = 3.0
# A node whose session stream broke is DOWN after this many periods unless it reconnects.
DISCONNECT_GRACE_MULTIPLIER = 1.0
# Seconds before marking a node DOWN again after the write failed.
DOWN_RETRY = 1.0
_READY = objects_pb2.NodeStatus.STATE_READY
_DOWN = objects_pb2.NodeStatus.STATE_DOWN
_DISCONNECTED = objects_pb2.NodeStatus.STATE_DISCONNECTED
# Changes that arrive this close together go out as one incremental assignments message.
ASSIGNMENT_BATCH_WINDOW = 0.01


def _peer_ip(context: aio.ServicerContext[Any, Any]) -> str:
    # The agent's own address, also when a follower forwarded its session here.
    peer = caller_address(context)
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return ""


class DispatcherServicer(dispatcher_pb2_grpc.DispatcherServicer):
    """Registers agents, accepts heartbeats and tracks node liveness."""

    def __init__(self, store: MemoryStore, root_ca_pem: bytes, clock: Clock | None = None) -> None:
        self._store = store
        self._root_ca = root_ca_pem
        self._clock = clock or SystemClock()
        self._period = self._cluster_period()
        self._tracker = HeartbeatTracker(self._period * GRACE_MULTIPLIER)
        self._changed = asyncio.Event()
        self._status_writer = TaskStatusWriter(store)
        self._closing: set[asyncio.Future[None]] = set()  # writes of sessions that closed

    def _cluster_period(self) -> float:
        clusters = self._store.view(lambda tx: tx.clusters.list())
        if clusters:
            hb = clusters[0].spec.dispatcher.heartbeat_period
            secs = hb.seconds + hb.nanos / 1e9
            if secs > 0:
                return secs
        return DEFAULT_HEARTBEAT_PERIOD

    def _managers(self) -> list[types_pb2.WeightedPeer]:
        nodes = self._store.view(lambda tx: tx.nodes.list())
        return [
            types_pb2.WeightedPeer(node_id=n.id, addr=n.manager_status.addr, weight=1)
            for n in nodes
            if n.role == types_pb2.NODE_ROLE_MANAGER and n.manager_status.addr
        ]

    async def _set_status(
        self,
        node_id: str,
        state: int,
        message: str,
        addr: str = "",
        description: types_pb2.NodeDescription | None = None,
    ) -> objects_pb2.Node | None:
        def fn(tx: Tx) -> objects_pb2.Node | None:
            node = tx.nodes.get(node_id)
            if node is None:
                return None
            node.status.state = state  # type: ignore[assignment]
            node.status.message = message
            if addr:
                node.status.addr = addr
            if description is not None:
                node.description.CopyFrom(description)
            return tx.nodes.update(node)

        return await self._store.update(fn)

    async def Session(  # noqa: N802 - gRPC method name
        self,
        request: dispatcher_pb2.SessionRequest,
        context: aio.ServicerContext[dispatcher_pb2.SessionRequest, dispatcher_pb2.SessionMessage],
    ) -> AsyncIterator[dispatcher_pb2.SessionMessage]:
        peer = current_peer()
        if peer is None:
            raise errors.Unauthenticated("a session needs a node certificate")
        node_id = peer.node_id
        if self._store.view(lambda tx: tx.nodes.get(node_id)) is None:
            raise errors.NotFound("node", node_id, f"node {node_id} is not part of this cluster")
        session_id = self._tracker.register(node_id, self._clock.monotonic())
        node = await self._set_status(
            node_id,
            _READY,
            "",
            addr=_peer_ip(context),
            description=request.description if request.HasField("description") else None,
        )
        log = _log.bind(node_id=node_id, session_id=session_id)
        log.info("node registered")
        try:
            managers = self._managers()
            yield dispatcher_pb2.SessionMessage(
                session_id=session_id,
                node=node,
                managers=managers,
                root_ca=self._root_ca,
            )
            desired = node.spec.desired_role if node is not None else None
            while self._tracker.is_current(node_id, session_id):
                # Re-announce the manager list and the node's desired role when they change
                # (the agent renews its certificate to take a new role); otherwise idle.
                await asyncio.sleep(self._period)
                update = dispatcher_pb2.SessionMessage(session_id=session_id)
                now_managers = self._managers()
                if now_managers != managers:
                    managers = now_managers
                    update.managers.extend(managers)
                current = self._store.view(lambda tx: tx.nodes.get(node_id))
                if current is not None and current.spec.desired_role != desired:
                    desired = current.spec.desired_role
                    update.node.CopyFrom(current)
                if update.managers or update.HasField("node"):
                    yield update
            log.info("session superseded")
        finally:
            if self._tracker.end_session(node_id, session_id):
                log.info("session closed")
                # Shielded: a client that went away cancels this handler, not the write.
                job = asyncio.ensure_future(self._mark_disconnected(node_id))
                self._closing.add(job)
                job.add_done_callback(self._closing.discard)
                await asyncio.shield(job)

    async def drain(self, within: float) -> None:
        """Wait, at most `within` seconds, for the writes of sessions that just closed.

        The manager calls it on its way down, after its servers stopped and before its raft
        member does, so the nodes whose sessions the stop closed are recorded DISCONNECTED.
        """
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=within)

    async def _mark_disconnected(self, node_id: str) -> None:
        try:
            node = self._store.view(lambda tx: tx.nodes.get(node_id))
            if node is not None and node.status.state == _READY:
                await self._set_status(node_id, _DISCONNECTED, "session closed")
            # It gets one heartbeat period to come back before it is DOWN.
            self._tracker.disconnected(
                node_id, self._clock.monotonic(), self._period * DISCONNECT_GRACE_MULTIPLIER
            )
        except errors.SwarmError as err:
            _log.warning("cannot mark node disconnected", node_id=node_id, error=str(err))

    async def Heartbeat(  # noqa: N802 - gRPC method name
        self,
        request: dispatcher_pb2.HeartbeatRequest,
        context: aio.ServicerContext[
            dispatcher_pb2.HeartbeatRequest, dispatcher_pb2.HeartbeatResponse
        ],
    ) -> dispatcher_pb2.HeartbeatResponse:
        peer = current_peer()
        if peer is None:
            raise errors.Unauthenticated("a heartbeat needs a node certificate")
        self._tracker.heartbeat(peer.node_id, request.session_id, self._clock.monotonic())
        # Jitter spreads the beats of many nodes (SwarmKit: +-10 %).
        period = self._period * random.uniform(0.9, 1.0)
        resp = dispatcher_pb2.HeartbeatResponse()
        resp.period.FromNanoseconds(int(period * 1e9))
        return resp

    def _session_node(self, session_id: str) -> str:
        """The calling node's id, when `session_id` is its current session."""
        peer = current_peer()
        if peer is None:
            raise errors.Unauthenticated("this call needs a node certificate")
        if not self._tracker.is_current(peer.node_id, session_id):
            raise errors.InvalidArgument(
                f"session {session_id or '(none)'} of node {peer.node_id} is not active; "
                "open a new session"
            )
        return peer.node_id

    async def UpdateTaskStatus(  # noqa: N802 - gRPC method name
        self,
        request: dispatcher_pb2.UpdateTaskStatusRequest,
        context: aio.ServicerContext[
            dispatcher_pb2.UpdateTaskStatusRequest, dispatcher_pb2.UpdateTaskStatusResponse
        ],
    ) -> dispatcher_pb2.UpdateTaskStatusResponse:
        node_id = self._session_node(request.session_id)
        updates = [(u.task_id, u.status) for u in request.updates if u.task_id]
        if updates:
            await self._status_writer.submit(node_id, updates)
        return dispatcher_pb2.UpdateTaskStatusResponse()

    async def Assignments(  # noqa: N802 - gRPC method name
        self,
        request: dispatcher_pb2.AssignmentsRequest,
        context: aio.ServicerContext[
            dispatcher_pb2.AssignmentsRequest, dispatcher_pb2.AssignmentsMessage
        ],
    ) -> AsyncIterator[dispatcher_pb2.AssignmentsMessage]:
        node_id = self._session_node(request.session_id)
        tracker = AssignmentTracker(node_id)

        def concerns(ev: Event) -> bool:
            obj, old = ev.obj, ev.old
            return getattr(obj, "node_id", "") == node_id or (
                old is not None and getattr(old, "node_id", "") == node_id
            )

        # Watch before reading, so no change falls between the view and the subscription.
        async with self._store.watch(kinds={"task"}, predicate=concerns) as sub:
            tasks = self._store.view(lambda tx: tx.tasks.find_by_node(node_id))
            yield tracker.complete(tasks)
            changed: dict[str, objects_pb2.Task] = {}
            removed: set[str] = set()
            events = sub.__aiter__()
            while self._tracker.is_current(node_id, request.session_id):
                try:
                    async with asyncio.timeout(self._period):
                        item = await events.__anext__()
                except TimeoutError:
                    continue
                except StopAsyncIteration:
                    return
                if isinstance(item, Commit):
                    # Let a burst of commits (a scale-up) collect into one message.
                    if sub.pending() == 0:
                        await asyncio.sleep(ASSIGNMENT_BATCH_WINDOW)
                    if sub.pending() > 0:
                        continue
                    msg = tracker.incremental(changed.values(), removed)
                    changed, removed = {}, set()
                    if msg is not None:
                        yield msg
                    continue
                _collect(item, changed, removed)

    async def run(self) -> None:
        """Mark nodes DOWN when they miss their heartbeats; runs until cancelled."""
        now = self._clock.monotonic()
        for node in self._store.view(lambda tx: tx.nodes.list()):
            if node.status.state != _DOWN:
                self._tracker.watch_unknown(node.id, now)
        while True:
            await self._clock.sleep(min(self._period / 4, 1.0))
            period = self._cluster_period()
            if period != self._period:
                self._period = period
                self._tracker.set_grace(period * GRACE_MULTIPLIER)
            for node_id in self._tracker.expired(self._clock.monotonic()):
                _log.info("heartbeat expired", node_id=node_id)
                try:
                    await self._set_status(node_id, _DOWN, "heartbeat failure")
                except errors.SwarmError as err:
                    # expired() forgot the node: without a new deadline a failed write (no
                    # quorum for a moment) would leave a dead node READY, its tasks unmoved.
                    _log.warning("cannot mark node down; retrying", node_id=node_id, error=str(err))
                    self._tracker.disconnected(node_id, self._clock.monotonic(), DOWN_RETRY)


def _collect(ev: Event, changed: dict[str, objects_pb2.Task], removed: set[str]) -> None:
    task = ev.obj
    if not isinstance(task, objects_pb2.Task):
        return
    if ev.action is EventKind.REMOVE:
        changed.pop(task.id, None)
        removed.add(task.id)
    else:
        removed.discard(task.id)
        changed[task.id] = task


__all__ = ["DEFAULT_HEARTBEAT_PERIOD", "GRACE_MULTIPLIER", "DispatcherServicer"]
