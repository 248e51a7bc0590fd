"""LocalProposer: a single-voter durable log implementing the store's Proposer protocol.

Manager layer, raft node; stands in for Raft until replication lands. `swarmd.node` wires it:

    proposer = await LocalProposer.open(raft_dir)
    store = MemoryStore(proposer=proposer)
    await proposer.recover(store)          # snapshot + log replay: the state before the restart
    ...
    await proposer.close()

Each proposal becomes one log entry (term 1, NORMAL, data = serialized InternalRaftRequest),
fsynced before `propose` returns its index. Proposals that arrive while a write is in flight are
group-committed: the next write takes everything queued in one SQLite transaction (one fsync).
Every `snapshot_interval` entries the store is snapshotted and the log compacted, keeping the last
`keep_entries` entries (a tail a future Raft leader can still send to a slow follower).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path

import structlog
from google.protobuf.message import DecodeError

from swarmd import errors
from swarmd.api import store_pb2
from swarmd.manager.raftnode.snapshots import SNAPSHOT_FORMAT
from swarmd.manager.raftnode.storage import (
    EntryType,
    HardState,
    LogEntry,
    RaftStorage,
    SnapshotMeta,
    StorageError,
)
from swarmd.manager.store import MemoryStore

_log = structlog.get_logger(component="raftnode")

TERM = 1  # a single voter never holds an election
VOTER_ID = 1
DEFAULT_SNAPSHOT_INTERVAL = 10000
DEFAULT_KEEP_ENTRIES = 500
_REPLAY_CHUNK = 1000

_Pending = tuple[bytes, "asyncio.Future[int]"]


class LocalProposer:
    """Durable single-voter log for one MemoryStore. Loop-confined.

    Args:
        storage: the opened raft storage it owns (closed by `close()`).
        snapshot_interval: snapshot the store after this many entries since the last snapshot.
        keep_entries: entries kept before the snapshot index when compacting.
    """

    def __init__(
        self,
        storage: RaftStorage,
        *,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        keep_entries: int = DEFAULT_KEEP_ENTRIES,
    ) -> None:
        if snapshot_interval < 1 or keep_entries < 0:
            raise ValueError("snapshot_interval must be >= 1 and keep_entries >= 0")
        self._storage = storage
        self._interval = snapshot_interval
        self._keep = keep_entries
        self._store: MemoryStore | None = None
        self._last_index = storage.last_index
        self._snapshot_index = storage.snapshot_index
        self._queue: list[_Pending] = []
        self._request_ids = itertools.count(1)
        self._flusher: asyncio.Task[None] | None = None
        self._snapshotter: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        state_dir: Path | str,
        *,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        keep_entries: int = DEFAULT_KEEP_ENTRIES,
    ) -> LocalProposer:
        """Open (or create) the log in state_dir.

        Raises:
            StorageError: the database or snapshot is unreadable (the message names the file).
        """
        storage = await RaftStorage.open(state_dir)
        return cls(storage, snapshot_interval=snapshot_interval, keep_entries=keep_entries)

    @property
    def last_index(self) -> int:
        """Index of the last durable entry."""
        return self._last_index

    @property
    def snapshot_index(self) -> int:
        """Index of the latest durable snapshot (0 when none)."""
        return self._snapshot_index

    async def recover(self, store: MemoryStore) -> None:
        """Load the latest snapshot into store, then replay the entries after it.

        Call once, with a fresh store, before the first proposal; the store is then the one
        snapshotted every `snapshot_interval` entries.

        Raises:
            StorageError: the snapshot or an entry cannot be read or decoded.
        """
        if self._store is not None:
            raise errors.FailedPrecondition("the raft log was already recovered into a store")
        loaded = await self._storage.load_snapshot()
        if loaded is not None:
            meta, data = loaded
            try:
                snap = store_pb2.Snapshot.FromString(data)
            except DecodeError as err:
                raise StorageError(
                    self._storage.path, f"cannot decode snapshot {meta.index}: {err}"
                ) from err
            store.restore(snap.store, meta.index)
        replayed = 0
        lo, hi = max(self._storage.first_index, store.version + 1), self._last_index + 1
        while lo < hi:
            batch = await self._storage.entries(lo, min(lo + _REPLAY_CHUNK, hi))
            if not batch or batch[0].index != lo:
                raise StorageError(self._storage.path, f"log entry {lo} is missing")
            for entry in batch:
                self._replay(store, entry)
            replayed += len(batch)
            lo = batch[-1].index + 1
        self._store = store
        _log.info(
            "raft log recovered",
            snapshot_index=self._snapshot_index,
            replayed=replayed,
            version=store.version,
        )

    def _replay(self, store: MemoryStore, entry: LogEntry) -> None:
        if entry.type is not EntryType.NORMAL:
            store.apply_committed((), entry.index)
            return
        try:
            request = store_pb2.InternalRaftRequest.FromString(entry.data)
        except DecodeError as err:
            raise StorageError(
                self._storage.path, f"cannot decode log entry {entry.index}: {err}"
            ) from err
        store.apply_committed(request.action, entry.index)

    async def propose(self, actions: Sequence[store_pb2.StoreAction]) -> int:
        """Durably append one transaction; return its log index.

        Raises:
            errors.Unavailable: the proposer is closed or the append failed.
            errors.FailedPrecondition: `recover()` has not run.
        """
        if self._closed:
            raise errors.Unavailable("the raft log is closed")
        store = self._store
        if store is None:
            raise errors.FailedPrecondition("recover the store from the raft log before proposing")
        self._maybe_snapshot(store)
        request = store_pb2.InternalRaftRequest(id=next(self._request_ids), action=actions)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((request.SerializeToString(), fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="raft-log-flush")
        return await fut

    async def _flush(self) -> None:
        """Write everything queued, one SQLite transaction per round, until the queue is empty."""
        while self._queue:
            batch, self._queue = self._queue, []
            first = self._last_index + 1
            entries = [
                LogEntry(first + i, TERM, EntryType.NORMAL, data)
                for i, (data, _) in enumerate(batch)
            ]
            last = entries[-1].index
            try:
                await self._storage.append(entries, HardState(TERM, VOTER_ID, last))
            except errors.SwarmError as err:
                _log.error("raft log append failed", error=str(err), entries=len(batch))
                _fail(batch, err)
                continue
            except BaseException as err:
                _fail(batch, errors.Unavailable(f"raft log append interrupted: {err!r}"))
                raise
            self._last_index = last
            for index, (_, fut) in enumerate(batch, start=first):
                if not fut.done():
                    fut.set_result(index)

    def _maybe_snapshot(self, store: MemoryStore) -> None:
        """Start a snapshot when enough entries accumulated (store is at a committed state)."""
        if self._snapshotter is not None and not self._snapshotter.done():
            return
        if store.version - self._snapshot_index < self._interval:
            return
        # Taken synchronously: every entry up to store.version is durable and applied, and no
        # apply can interleave, so the snapshot is exactly the state at that index.
        index = store.version
        data = store_pb2.Snapshot(
            version=SNAPSHOT_FORMAT, store=store.snapshot(), store_version=index
        ).SerializeToString()
        self._snapshotter = asyncio.create_task(
            self._write_snapshot(index, data), name="raft-snapshot"
        )

    async def snapshot(self) -> int:
        """Snapshot the store now and compact the log; returns the snapshot index."""
        store = self._store
        if store is None:
            raise errors.FailedPrecondition("recover the store from the raft log first")
        if self._snapshotter is not None:
            await self._snapshotter
        index = store.version
        data = store_pb2.Snapshot(
            version=SNAPSHOT_FORMAT, store=store.snapshot(), store_version=index
        ).SerializeToString()
        await self._write_snapshot(index, data)
        return index

    async def _write_snapshot(self, index: int, data: bytes) -> None:
        try:
            await self._storage.save_snapshot(SnapshotMeta(index, TERM), data)
            self._snapshot_index = index
            upto = index - self._keep
            if upto >= self._storage.first_index:
                await self._storage.compact(upto)
        except errors.SwarmError as err:
            # The log still holds everything; the next interval retries.
            _log.error("raft snapshot failed", index=index, error=str(err))
            return
        _log.info("raft snapshot saved", index=index, size=len(data), compacted_to=max(upto, 0))

    async def close(self) -> None:
        """Finish queued writes and the snapshot in progress, then close the storage."""
        if self._closed:
            return
        self._closed = True
        for task in (self._flusher, self._snapshotter):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        await self._storage.close()
        _log.info("raft log closed", last_index=self._last_index)


def _fail(batch: list[_Pending], err: errors.SwarmError) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(errors.Unavailable(f"raft log append failed: {err}"))


__all__ = ["DEFAULT_KEEP_ENTRIES", "DEFAULT_SNAPSHOT_INTERVAL", "LocalProposer"]
