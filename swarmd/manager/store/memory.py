"""MemoryStore: the manager's in-memory, replicated object store (docs/design/store-api.md).

Manager layer. The control API, dispatcher, orchestrators and scheduler read it with `view()`,
write with `update()`/`batch()` and follow it with `watch()`; the raft node feeds it commits made
elsewhere (`apply_committed()`) and snapshots (`snapshot()`/`restore()`).

A write runs in this order: callback against copy-on-write layers over the committed tables
and the writes still waiting for their commit -> the transaction joins the open group of
`Pending` (pending.py: group commit) -> the committer task proposes the groups one at a time,
each as one set of StoreActions (timestamps already stamped from the Clock) -> apply to the
tables with the returned version -> events and a Commit to the watchers -> the callers of the
group's transactions return. As with swarmkit's updateLock, one proposal at a time is in
flight; unlike it, the writers that come meanwhile do not queue for a lock but share the next
proposal. Once proposed, a group is applied even if its callers are cancelled (the committer is
a task of its own), so the store never lags its log. Applying is deterministic: it only stamps
the version, never reads a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import structlog
from google.protobuf import timestamp_pb2

from swarmd import errors
from swarmd.api import store_pb2
from swarmd.clock import Clock, SystemClock
from swarmd.manager.store import snapshot as _snapshot
from swarmd.manager.store.kinds import BY_NAME, KINDS, copy_of
from swarmd.manager.store.pending import Group, Pending
from swarmd.manager.store.proposer import Proposer
from swarmd.manager.store.table import Table
from swarmd.manager.store.tx import (
    Batch,
    Change,
    ReadTx,
    Tx,
    reject_async,
    reject_awaitable,
)
from swarmd.manager.store.watch import Event, EventKind, Hub, Predicate, Subscription

_log = structlog.get_logger(component="store")

R = TypeVar("R")

MAX_CHANGES_PER_TRANSACTION = 200  # swarmkit store.MaxChangesPerTransaction
# A group of transactions takes no more once its actions encode to this (raft refuses entries
# above 1.5 MiB; a single larger transaction still goes alone and is refused there).
MAX_GROUP_BYTES = 1024 * 1024
DEFAULT_HISTORY = 1024
DEFAULT_WATCH_QUEUE = 10000

_TO_ACTION = {
    EventKind.CREATE: store_pb2.STORE_ACTION_KIND_CREATE,
    EventKind.UPDATE: store_pb2.STORE_ACTION_KIND_UPDATE,
    EventKind.REMOVE: store_pb2.STORE_ACTION_KIND_REMOVE,
}
_FROM_ACTION = {v: k for k, v in _TO_ACTION.items()}


class MemoryStore:
    """Tables of cluster objects with transactions, optimistic versions and watches.

    Loop-confined: call every method from the event loop's thread.

    Args:
        proposer: commits transactions (Raft, LocalProposer); None applies them locally with
            consecutive versions (tests, tools).
        clock: source of created_at/updated_at (default: the system clock).
        history: number of recent commits kept for `watch_from()` (0 disables replay).
        batch_limit: actions per transaction in `batch()`.
    """

    def __init__(
        self,
        proposer: Proposer | None = None,
        *,
        clock: Clock | None = None,
        history: int = DEFAULT_HISTORY,
        batch_limit: int = MAX_CHANGES_PER_TRANSACTION,
    ) -> None:
        self._proposer = proposer
        self._clock: Clock = clock or SystemClock()
        self._tables: dict[str, Table[Any]] = {k.name: Table(k) for k in KINDS}
        self._version = 0
        self._hub = Hub(history)
        self._batch_limit = batch_limit
        self._read_tx = ReadTx(self._tables)
        self._pending = Pending(self._tables, batch_limit, MAX_GROUP_BYTES)
        self._committer: asyncio.Task[None] | None = None

    @property
    def version(self) -> int:
        """Version (log index) of the last committed transaction."""
        return self._version

    def view(self, fn: Callable[[ReadTx], R]) -> R:
        """Run fn on the committed state and return its result.

        Raises:
            TypeError: fn is async (or returned an awaitable).
        """
        reject_async(fn)
        result = fn(self._read_tx)
        reject_awaitable(result)
        return result

    async def update(self, fn: Callable[[Tx], R]) -> R:
        """Run fn as one atomic write transaction, commit its writes and return its result.

        If fn raises, nothing is proposed and the store is unchanged. A transaction without
        writes is not proposed.

        Raises:
            TypeError: fn is async (or returned an awaitable).
            errors.Unavailable, errors.NotLeader: from the proposer; nothing was applied.
        """
        reject_async(fn)
        pending = self._pending
        if self._proposer is None:
            tx = Tx(self._tables, self._version + 1, self._now())
            result = fn(tx)
            reject_awaitable(result)
            if tx.changes:
                self._apply(tx.changes, tx.version)
            return result
        tx = Tx(pending.readers, pending.next_version(self._version), self._now(), self._version)
        result = fn(tx)
        reject_awaitable(result)
        if not tx.changes:
            await self._settle()  # what it read must have committed
            return result
        size = _size(tx.changes)
        group = pending.group_for(self._version, size)
        pending.push(tx.layers())
        pending.add(group, tx.changes, tx.handed, size)
        await self._wait_for(group)
        return result

    async def batch(self, fn: Callable[[Batch], R]) -> R:
        """Run fn with a `Batch`; commit the units it ran in transactions of ~batch_limit actions.

        Not atomic as a whole: the chunks commit in order and, if proposing one fails, the
        earlier ones stay committed. If fn itself raises, nothing is proposed.

        Raises:
            TypeError: fn is async (or returned an awaitable).
            errors.Unavailable, errors.NotLeader: from the proposer.
        """
        reject_async(fn)
        pending = self._pending
        if self._proposer is None:
            b = Batch(self._tables, self._version + 1, self._now(), self._batch_limit)
            result = fn(b)
            reject_awaitable(result)
            for chunk in b.chunks:
                if chunk.changes:
                    self._apply(chunk.changes, self._version + 1)
            return result
        first = (pending.groups[-1].version if pending.groups else self._version) + 1
        b = Batch(pending.readers, first, self._now(), self._batch_limit, self._version)
        result = fn(b)
        reject_awaitable(result)
        chunks = [c for c in b.chunks if c.changes]
        if not chunks:
            await self._settle()
            return result
        pending.push(b.layers)
        groups = [pending.new_group(self._version) for _ in chunks]
        for group, chunk in zip(groups, chunks, strict=True):
            pending.add(group, chunk.changes, (), _size(chunk.changes))
        groups[-1].handed.extend(b.handed)  # resolved once the last chunk committed
        await self._wait_for(groups[-1])  # a failed chunk fails every later one
        return result

    def watch(
        self,
        kinds: Collection[str] | None = None,
        predicate: Predicate | None = None,
        maxsize: int = DEFAULT_WATCH_QUEUE,
        *,
        all_commits: bool = False,
    ) -> Subscription:
        """Subscribe to changes committed from now on.

        Args:
            kinds: kind names ("service", "task", ...) to receive; None for all.
            predicate: further filter on events.
            maxsize: queue bound; on overflow the subscription is closed with Unavailable.
            all_commits: also deliver `Commit` for transactions without a matching event.

        Raises:
            ValueError: an unknown kind name.
        """
        _check_kinds(kinds)
        return self._hub.subscribe(kinds, predicate, maxsize, all_commits)

    def watch_from(
        self,
        version: int,
        kinds: Collection[str] | None = None,
        predicate: Predicate | None = None,
        maxsize: int = DEFAULT_WATCH_QUEUE,
        *,
        all_commits: bool = False,
    ) -> Subscription:
        """Like `watch()`, first replaying the changes committed after `version`.

        Raises:
            errors.FailedPrecondition: the commits after version are no longer in the history
                (or version is ahead of the store, or the replay exceeds maxsize).
            ValueError: an unknown kind name.
        """
        _check_kinds(kinds)
        if version > self._version:
            raise errors.FailedPrecondition(
                f"cannot watch from version {version}: the store is at version {self._version}"
            )
        return self._hub.subscribe(kinds, predicate, maxsize, all_commits, since=version)

    def snapshot(self) -> store_pb2.StoreSnapshot:
        """A copy of every object, in id order per kind (taken at `version`)."""
        return _snapshot.take(self._tables)

    def snapshot_refs(self) -> _snapshot.Refs:
        """The stored objects as of `version`, for `encode_snapshot` on a worker thread.

        Cheap (references, no copies): stored instances never change once committed, so
        encoding them later, while the store goes on, still gives the state at this version.
        """
        return _snapshot.refs(self._tables)

    @staticmethod
    def encode_snapshot(refs: _snapshot.Refs) -> bytes:
        """The serialized `StoreSnapshot` of `snapshot_refs()`; thread-safe."""
        return _snapshot.encode(refs)

    @staticmethod
    def build_tables(snap: store_pb2.StoreSnapshot) -> _snapshot.BuiltTables:
        """Tables holding the snapshot's objects, for `restore_built`; thread-safe."""
        return _snapshot.build(snap)

    def restore(self, snap: store_pb2.StoreSnapshot, version: int) -> None:
        """Replace all contents with the snapshot's, at version (see `restore_built`)."""
        self.restore_built(_snapshot.build(snap), version)

    def restore_built(self, built: _snapshot.BuiltTables, version: int) -> None:
        """Replace all contents with tables from `build_tables`, at version.

        Watchers are closed with errors.Unavailable (they missed changes) and the replay history
        is dropped; writes waiting for their commit fail with errors.Unavailable.
        """
        self._pending.fail(errors.Unavailable("the store was restored from a snapshot"))
        total = _snapshot.adopt(built, self._tables)
        self._version = version
        self._hub.reset(version, "store restored from a snapshot")
        _log.info("store restored", version=version, objects=total)

    def apply_committed(self, actions: Sequence[store_pb2.StoreAction], version: int) -> None:
        """Apply a transaction committed elsewhere (a leader's, or replayed from the log).

        The actions' objects are copied and stamped with version; timestamps are taken as they
        are. An empty list just advances the version (entries that carry no store change).

        Raises:
            errors.FailedPrecondition: version is not after the store's version.
        """
        if version <= self._version:
            raise errors.FailedPrecondition(
                f"cannot apply version {version}: the store is already at version {self._version}"
            )
        changes: list[Change] = []
        for action in actions:
            target = action.WhichOneof("target")
            kind = BY_NAME.get(target or "")
            what = _FROM_ACTION.get(action.action)
            if kind is None or what is None:
                _log.warning(
                    "skipping malformed store action", version=version, target=target or ""
                )
                continue
            changes.append(Change(kind, what, copy_of(getattr(action, kind.action_field))))
        self._apply(changes, version)

    def _now(self) -> timestamp_pb2.Timestamp:
        ts = timestamp_pb2.Timestamp()
        ts.FromNanoseconds(int(self._clock.now() * 1e9))
        return ts

    async def _wait_for(self, group: Group) -> None:
        """Have the committer propose the waiting groups; return once `group` is applied."""
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(
                self._commit_groups(), name="store-commit"
            )
        await asyncio.shield(group.done)

    async def _settle(self) -> None:
        """Wait until every write waiting now has committed (raise if one failed)."""
        groups = self._pending.groups
        if groups:
            await self._wait_for(groups[-1])

    async def _commit_groups(self) -> None:
        """Propose the waiting groups in order, each once the one before committed."""
        proposer = self._proposer
        assert proposer is not None
        pending = self._pending
        while pending.groups:
            group = pending.groups[0]
            group.proposed = True
            try:
                version = await proposer.propose([_to_action(c) for c in group.changes])
                if version <= self._version:
                    raise errors.FailedPrecondition(
                        f"proposer returned version {version}, not after store version "
                        f"{self._version}"
                    )
            except BaseException as err:
                if group.done.done():
                    continue  # failed meanwhile (a restore): the groups are gone already
                pending.fail(err)
                if not isinstance(err, Exception):
                    raise  # cancelled (the loop is closing): the callers were told
                continue
            if group.done.done():
                continue  # failed meanwhile (a restore); raft applies the entry itself
            self._apply(group.changes, version)
            pending.committed(group, version)
            group.done.set_result(None)

    def _apply(self, changes: list[Change], version: int) -> None:
        """Apply one committed transaction: stamp, store, then publish its events."""
        events: list[Event] = []
        for change in changes:
            name = change.kind.name
            table = self._tables[name]
            obj = change.obj
            if change.action is EventKind.REMOVE:
                old = table.remove(obj.id)
                if old is None:
                    _log.warning("removing a missing object", kind=name, id=obj.id)
                    continue
                events.append(Event(name, EventKind.REMOVE, old, None, version))
                continue
            obj.meta.version.index = version
            # The replaced instance leaves the table here, so the event may own it uncopied.
            old = table.put(obj)
            action = EventKind.CREATE if old is None else EventKind.UPDATE
            events.append(Event(name, action, copy_of(obj), old, version))
        self._version = version
        self._hub.publish(version, events)


def _size(changes: list[Change]) -> int:
    """Encoded bytes of the changed objects (what a proposal of them carries, about)."""
    return sum(c.obj.ByteSize() for c in changes)


def _to_action(change: Change) -> store_pb2.StoreAction:
    action = store_pb2.StoreAction(action=_TO_ACTION[change.action])
    getattr(action, change.kind.action_field).CopyFrom(change.obj)
    return action


def _check_kinds(kinds: Collection[str] | None) -> None:
    if kinds is None:
        return
    unknown = sorted(set(kinds) - BY_NAME.keys())
    if unknown:
        raise ValueError(f"unknown store kinds {unknown} (known: {sorted(BY_NAME)})")


__all__ = ["DEFAULT_HISTORY", "DEFAULT_WATCH_QUEUE", "MAX_CHANGES_PER_TRANSACTION", "MemoryStore"]
