"""Scheduler: the leader's actor that assigns PENDING tasks to nodes (swarmkit manager/scheduler).

Manager layer, the thin async shell around the pure core: the manager runs `Scheduler.run()` on
the leader, in its leader-only TaskGroup, and cancels it on leadership loss.

What it does:
- Subscribes to node and task events, then (without yielding in between, so nothing is missed or
  seen twice) loads a `NodeSet` from a store view, and keeps it current from the events.
- After changes it waits for the store to go quiet (50 ms after the last commit, at most 1 s
  after the first; swarmkit's batching), then runs one pass: `plan()` over the pending tasks,
  and a store batch that writes every decision, each in its own small transaction.
- An assignment sets node_id, state ASSIGNED, message "scheduler assigned task to node" and the
  timestamp (stamped before the write), and clears the error. It is written only if neither the
  task nor the node changed since the plan was made (meta.version); otherwise it is skipped, and
  the change that caused the conflict triggers the next pass anyway.
- A task that fits nowhere stays PENDING with status.err = the reason; the error is written only
  when it changes, so a pass over an unchanged cluster writes nothing. Every later node or task
  change triggers a new pass, which is what places a pending task as soon as a suitable node
  joins (or resources free up).
- A task still PENDING whose desired state moved past RUNNING (scaled away before it was
  placed) is moved to SHUTDOWN, since no agent will ever get it.
- A lost watch (queue overflow, store restore) reloads the state from a fresh view; a failed
  write (no quorum) is retried after `retry` seconds.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from google.protobuf import timestamp_pb2

from swarmd import errors, log
from swarmd.api import objects_pb2, types_pb2
from swarmd.clock import Clock
from swarmd.manager.scheduler.nodeset import NodeSet, is_cancelled, is_pending
from swarmd.manager.scheduler.pipeline import Pipeline
from swarmd.manager.scheduler.planner import Assignment, Plan, Unplaced, plan
from swarmd.manager.store import Batch, Commit, EventKind, MemoryStore, Subscription, Tx

_log = structlog.get_logger(component="scheduler")

ASSIGNED_MESSAGE = "scheduler assigned task to node"
CANCELLED_MESSAGE = "task shut down before it was scheduled"
# A pass waits until commits stop for DEBOUNCE (swarmkit scheduler.go waits 50 ms). Ours is
# shorter: the store commits a whole plan as one transaction and commits that come together
# arrive within a millisecond of each other, so 20 ms still gathers them into one pass, and a
# new task is placed 30 ms sooner (create 1: the scheduler was 52 ms of the 90 ms between
# the API call and the container create).
DEBOUNCE = 0.02
MAX_DELAY = 1.0  # ... and the longest a pass is put off by a stream of commits
RETRY = 1.0  # after a failed write


class Scheduler:
    """Assigns pending tasks to nodes; run it on the leader.

    Args:
        store: the manager's store.
        clock: time for debouncing and timestamps.
        debounce: quiet time after the last commit before a pass.
        max_delay: longest a pass waits once changes started arriving.
        retry: delay before retrying after the store refused a write.
        pipeline: the filters (default: all of swarmd's).
    """

    def __init__(
        self,
        store: MemoryStore,
        clock: Clock,
        *,
        debounce: float = DEBOUNCE,
        max_delay: float = MAX_DELAY,
        retry: float = RETRY,
        pipeline: Pipeline | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._debounce = debounce
        self._max_delay = max_delay
        self._retry = retry
        self._pipeline = pipeline or Pipeline()
        self._wake = asyncio.Event()
        self._first_change = 0.0
        self._last_change = 0.0
        self._passes = 0

    @property
    def passes(self) -> int:
        """Scheduling passes run so far (for tests and metrics)."""
        return self._passes

    async def run(self) -> None:
        """Schedule until cancelled."""
        _log.info("scheduler started")
        try:
            while True:
                try:
                    await self._run_watch()
                except* errors.Unavailable as group:
                    _log.warning("scheduler watch lost, reloading", error=str(group.exceptions[0]))
        finally:
            _log.info("scheduler stopped")

    async def _run_watch(self) -> None:
        """One subscription's life: load, then follow events and run passes until it fails."""
        sub = self._store.watch(kinds=("node", "task"))
        try:
            state = NodeSet()
            self._store.view(lambda tx: state.load(tx.nodes.list(), tx.tasks.list()))
            self._changed()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow(sub, state), name="scheduler-follow")
                group.create_task(self._passes_loop(state), name="scheduler-passes")
        finally:
            sub.close()

    async def _follow(self, sub: Subscription, state: NodeSet) -> None:
        async for item in sub:
            if isinstance(item, Commit):
                self._changed()
                continue
            obj = item.obj
            if isinstance(obj, objects_pb2.Node):
                if item.action is EventKind.REMOVE:
                    state.remove_node(obj.id)
                else:
                    state.put_node(obj)
            elif isinstance(obj, objects_pb2.Task):
                if item.action is EventKind.REMOVE:
                    state.remove_task(obj.id)
                else:
                    state.put_task(obj)
        raise errors.Unavailable("scheduler watch closed")

    def _changed(self) -> None:
        now = self._clock.monotonic()
        self._last_change = now
        if not self._wake.is_set():
            self._first_change = now
            self._wake.set()

    async def _passes_loop(self, state: NodeSet) -> None:
        while True:
            await self._wake.wait()
            await self._settle()
            self._wake.clear()
            if state.has_pending():
                await self._pass(state)

    async def _settle(self) -> None:
        """Wait until no commit came for `debounce`, or `max_delay` after the first one."""
        while True:
            deadline = min(self._last_change + self._debounce, self._first_change + self._max_delay)
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return
            await self._clock.sleep(left)

    async def _pass(self, state: NodeSet) -> None:
        self._passes += 1
        # Versions are taken now: events keep updating `state` while the write waits for the
        # store, and a decision must be checked against what it was made from.
        basis = _Basis.of(state)
        decided = plan(state.nodes, state.pending(), self._pipeline, now=self._clock.now())
        unplaced = [u for u in decided.unplaced if _reason_changed(state, u)]
        cancelled = [t.id for t in state.cancelled()]
        if not decided.assignments and not unplaced and not cancelled:
            return
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(int(self._clock.now() * 1e9))
        work = Plan(decided.assignments, tuple(unplaced))
        write = functools.partial(_write, basis, work, cancelled, stamp)
        try:
            written = await self._store.batch(write)
        except errors.SwarmError as err:
            _log.warning("scheduler write failed, retrying", error=str(err), retry=self._retry)
            await self._clock.sleep(self._retry)
            self._changed()
            return
        for task in written:
            state.put_task(task, known_only=True)
        assigned = sum(1 for t in written if t.status.state == types_pb2.TASK_STATE_ASSIGNED)
        _log.info(
            "scheduling pass committed",
            assigned=assigned,
            planned=len(decided.assignments),
            unplaced=len(decided.unplaced),
            cancelled=len(cancelled),
        )


@dataclass(frozen=True, slots=True)
class _Basis:
    """The task and node versions a pass decided from."""

    tasks: dict[str, int]
    nodes: dict[str, int]

    @classmethod
    def of(cls, state: NodeSet) -> _Basis:
        tasks = {t.id: t.meta.version.index for t in (*state.pending(), *state.cancelled())}
        nodes = {nid: info.node.meta.version.index for nid, info in state.nodes.items()}
        return cls(tasks, nodes)

    def task(
        self, tx: Tx, task_id: str, still: Callable[[objects_pb2.Task], bool] = is_pending
    ) -> objects_pb2.Task | None:
        """The task as stored, if it is still the version decided from (and still `still`)."""
        cur = tx.tasks.get(task_id)
        if cur is None or cur.meta.version.index != self.tasks.get(task_id) or not still(cur):
            return None
        return cur

    def node_unchanged(self, tx: Tx, node_id: str) -> bool:
        node = tx.nodes.get(node_id)
        return node is not None and node.meta.version.index == self.nodes.get(node_id)


def _write(
    basis: _Basis,
    work: Plan,
    cancelled: list[str],
    stamp: timestamp_pb2.Timestamp,
    batch: Batch,
) -> list[objects_pb2.Task]:
    """The batch callback: one unit per decision; returns the tasks it wrote."""
    units: list[Callable[[Tx], objects_pb2.Task | None]] = [
        *(functools.partial(_assign, basis, a, stamp) for a in work.assignments),
        *(functools.partial(_explain, basis, u) for u in work.unplaced),
        *(functools.partial(_shut_down, basis, task_id, stamp) for task_id in cancelled),
    ]
    written: list[objects_pb2.Task] = []
    for unit in units:
        task = batch.update(unit)
        if task is not None:
            written.append(task)
    return written


def _reason_changed(state: NodeSet, unplaced: Unplaced) -> bool:
    task = state.task(unplaced.task_id)
    return task is not None and task.status.err != unplaced.reason


def _assign(
    basis: _Basis, a: Assignment, stamp: timestamp_pb2.Timestamp, tx: Tx
) -> objects_pb2.Task | None:
    cur = basis.task(tx, a.task_id)
    if cur is None or not basis.node_unchanged(tx, a.node_id):
        return None  # the task or node changed after the plan: the next pass decides again
    cur.node_id = a.node_id
    cur.status.state = types_pb2.TASK_STATE_ASSIGNED
    cur.status.message = ASSIGNED_MESSAGE
    cur.status.err = ""
    cur.status.timestamp.CopyFrom(stamp)
    _log.debug("task assigned", **{log.TASK_ID: a.task_id, log.NODE_ID: a.node_id})
    return tx.tasks.update(cur)


def _explain(basis: _Basis, u: Unplaced, tx: Tx) -> objects_pb2.Task | None:
    cur = basis.task(tx, u.task_id)
    if cur is None or cur.status.err == u.reason:
        return None
    cur.status.err = u.reason
    _log.debug("task not placed", reason=u.reason, **{log.TASK_ID: u.task_id})
    return tx.tasks.update(cur)


def _shut_down(
    basis: _Basis, task_id: str, stamp: timestamp_pb2.Timestamp, tx: Tx
) -> objects_pb2.Task | None:
    cur = basis.task(tx, task_id, is_cancelled)
    if cur is None:
        return None
    cur.status.state = types_pb2.TASK_STATE_SHUTDOWN
    cur.status.message = CANCELLED_MESSAGE
    cur.status.err = ""
    cur.status.timestamp.CopyFrom(stamp)
    _log.debug("unscheduled task shut down", **{log.TASK_ID: task_id})
    return tx.tasks.update(cur)


__all__ = ["ASSIGNED_MESSAGE", "CANCELLED_MESSAGE", "DEBOUNCE", "MAX_DELAY", "RETRY", "Scheduler"]
