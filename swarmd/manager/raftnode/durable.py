"""DurableStorage: the raft core's Storage, kept in memory and persisted to SQLite first.

Manager layer, raft node. `RaftNode` (node.py) builds one per manager and hands it to the
`RawNode` as its `Storage`; the driver persists each Ready through its async mutators. Reads
(`entries`, `term`, ...) are served from a `MemoryStorage` mirror, so the core never waits on
disk; every write goes to `RaftStorage` (storage.py: SQLite in WAL mode with synchronous=FULL,
snapshot payloads as atomically written files, all disk work in a worker thread, one operation
at a time) and only once it is durable to the mirror. A crash therefore loses nothing the core
was told was stored, and a restart (`open`) rebuilds the mirror from disk. The disk work runs
on a thread of its own, one operation at a time.

The mirror holds the log since the latest snapshot. The tail of entries a compaction keeps
before the snapshot (for slow followers) is in memory only until the next restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from swarmd import errors
from swarmd.manager.raftnode import codec
from swarmd.manager.raftnode import storage as disk
from swarmd.raft import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    RaftID,
    Snapshot,
    SnapshotMetadata,
)

_log = structlog.get_logger(component="raftstorage")

_READ_CHUNK = 4096


class DurableStorage:
    """A `swarmd.raft.Storage` whose writes are durable before they become visible.

    Loop-confined. The read methods implement the core's Storage protocol (synchronous, from
    memory); the async mutators are for the driver only, called in Ready order (snapshot, then
    entries with the hard state) and never concurrently with each other.
    """

    def __init__(
        self,
        disk_storage: disk.RaftStorage,
        mirror: MemoryStorage,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._disk = disk_storage
        self._mem = mirror
        self._executor = executor

    @classmethod
    async def open(cls, state_dir: Path | str) -> DurableStorage:
        """Open (or create) the raft state in state_dir and load it into memory.

        Raises:
            disk.StorageError: the database or the snapshot file is unreadable or damaged.
        """
        # One thread of its own: raft fsyncs neither wait behind nor hold up other blocking work.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raft-disk")
        try:
            raft_storage = await disk.RaftStorage.open(state_dir, executor=executor)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        try:
            mirror = await _load(raft_storage)
        except BaseException:
            await raft_storage.close()
            executor.shutdown(wait=False)
            raise
        return cls(raft_storage, mirror, executor)

    @property
    def path(self) -> Path:
        """The SQLite database file (for messages)."""
        return self._disk.path

    def is_empty(self) -> bool:
        """True for a member that never stored anything (a new or joining member)."""
        hard, _ = self._mem.initial_state()
        return self._mem.last_index() == 0 and hard.is_empty()

    # The core's Storage protocol (reads, from memory)

    def initial_state(self) -> tuple[HardState, ConfState]:
        """See `swarmd.raft.Storage.initial_state`."""
        return self._mem.initial_state()

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """See `swarmd.raft.Storage.entries`."""
        return self._mem.entries(lo, hi, max_size)

    def term(self, index: int) -> int:
        """See `swarmd.raft.Storage.term`."""
        return self._mem.term(index)

    def first_index(self) -> int:
        """See `swarmd.raft.Storage.first_index`."""
        return self._mem.first_index()

    def last_index(self) -> int:
        """See `swarmd.raft.Storage.last_index`."""
        return self._mem.last_index()

    def snapshot(self) -> Snapshot:
        """See `swarmd.raft.Storage.snapshot`."""
        return self._mem.snapshot()

    # The driver's mutators (durable first, then visible)

    async def append(
        self, entries: Sequence[Entry], hard_state: HardState | None, *, sync: bool = True
    ) -> None:
        """Durably append entries (replacing a conflicting suffix) and set the hard state.

        Both go in one SQLite transaction, so a crash keeps both or neither. With sync=False
        the transaction is not fsynced: it survives the process being killed, not a power
        cut, until the next synced write (for a hard state that only moves the commit index).

        Raises:
            disk.StorageError: the write failed; nothing changed in memory.
        """
        first = self._mem.first_index()
        kept = [e for e in entries if e.index >= first]  # already covered by the snapshot
        if not kept and hard_state is None:
            return
        rows = [disk.LogEntry(e.index, e.term, disk.EntryType(e.type.value), e.data) for e in kept]
        disk_hard = (
            None
            if hard_state is None
            else disk.HardState(hard_state.term, hard_state.vote, hard_state.commit)
        )
        await self._disk.append(rows, disk_hard, sync=sync)
        self._mem.append(kept)
        if hard_state is not None:
            self._mem.set_hard_state(hard_state)

    async def set_hard_state(self, hard_state: HardState) -> None:
        """Durably replace the hard state."""
        await self.append((), hard_state)

    async def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Durably replace the whole log with a snapshot received from the leader.

        Raises:
            errors.FailedPrecondition: the snapshot is not newer than the one held.
            disk.StorageError: the write failed; nothing changed in memory.
        """
        meta = snapshot.metadata
        held = self._mem.snapshot().metadata.index
        if meta.index <= held:
            raise errors.FailedPrecondition(
                f"raft snapshot at index {meta.index} is not newer than the stored one ({held})"
            )
        await self._disk.save_snapshot(_disk_meta(meta), snapshot.data, replace_log=True)
        self._mem.apply_snapshot(snapshot)
        _log.info("raft snapshot installed", index=meta.index, term=meta.term)

    async def create_snapshot(
        self, index: int, conf_state: ConfState, data: bytes, *, keep: int
    ) -> Snapshot:
        """Durably record a snapshot of the applied state at `index`, then compact the log.

        Entries up to `index - keep` are dropped; the `keep` before the snapshot stay so a
        slightly slow follower still gets entries rather than the whole snapshot.

        Raises:
            errors.FailedPrecondition: index is not after the latest snapshot.
            disk.StorageError: the write failed; nothing changed in memory.
        """
        held = self._mem.snapshot().metadata.index
        if index <= held or index > self._mem.last_index():
            raise errors.FailedPrecondition(
                f"cannot snapshot at index {index} (snapshot {held}, last {self._mem.last_index()})"
            )
        meta = SnapshotMetadata(index=index, term=self._mem.term(index), conf_state=conf_state)
        await self._disk.save_snapshot(_disk_meta(meta), data)
        snap = self._mem.create_snapshot(index, conf_state, data)
        await self.compact(index - keep)
        return snap

    async def compact(self, upto: int) -> None:
        """Durably drop the entries up to `upto` (at most the snapshot index); a no-op when
        they are gone already.

        Raises:
            errors.FailedPrecondition: upto is beyond the latest snapshot.
            disk.StorageError: the write failed; nothing changed in memory.
        """
        held = self._mem.snapshot().metadata.index
        if upto > held:
            raise errors.FailedPrecondition(
                f"cannot compact the raft log to {upto}: the latest snapshot is at {held}"
            )
        if upto < self._mem.first_index():
            return
        await self._disk.compact(upto)
        self._mem.compact(upto)

    async def close(self) -> None:
        """Close the database (waits for the write in progress) and its disk thread."""
        await self._disk.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # idle now: the close above was its last job


def _disk_meta(meta: SnapshotMetadata) -> disk.SnapshotMeta:
    return disk.SnapshotMeta(meta.index, meta.term, codec.encode_conf_state(meta.conf_state))


async def _load(raft_storage: disk.RaftStorage) -> MemoryStorage:
    """Build the memory mirror from what is on disk: snapshot, then entries, then hard state."""
    mirror = MemoryStorage()
    loaded = await raft_storage.load_snapshot()
    if loaded is not None:
        meta, data = loaded
        try:
            conf = codec.decode_conf_state(meta.conf)
        except errors.InvalidArgument as err:
            raise disk.StorageError(raft_storage.path, str(err)) from err
        mirror.apply_snapshot(
            Snapshot(
                metadata=SnapshotMetadata(index=meta.index, term=meta.term, conf_state=conf),
                data=data,
            )
        )
    lo = max(raft_storage.first_index, mirror.first_index())
    hi = raft_storage.last_index + 1
    while lo < hi:
        rows = await raft_storage.entries(lo, min(lo + _READ_CHUNK, hi))
        if not rows or rows[0].index != lo:
            raise disk.StorageError(raft_storage.path, f"raft log entry {lo} is missing")
        mirror.append([Entry(r.term, r.index, EntryType(int(r.type)), r.data) for r in rows])
        lo = rows[-1].index + 1
    hard = await raft_storage.hard_state()
    hard_state = HardState(term=hard.term, vote=RaftID(hard.vote), commit=hard.commit)
    if hard_state.commit > mirror.last_index():
        raise disk.StorageError(
            raft_storage.path,
            f"hard state commit {hard_state.commit} is beyond the last entry {mirror.last_index()}",
        )
    # A snapshot installed after the hard state was written may be ahead of its commit.
    snap_index = mirror.snapshot().metadata.index
    if hard_state.commit < snap_index:
        hard_state = HardState(term=hard_state.term, vote=hard_state.vote, commit=snap_index)
    mirror.set_hard_state(hard_state)
    _log.info(
        "raft storage loaded",
        path=str(raft_storage.path),
        snapshot_index=snap_index,
        first_index=mirror.first_index(),
        last_index=mirror.last_index(),
        term=hard_state.term,
        commit=hard_state.commit,
    )
    return mirror


__all__ = ["DurableStorage"]
