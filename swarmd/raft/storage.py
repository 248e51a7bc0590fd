"""Storage: the read-only view of the durable log the core reads, and MemoryStorage.

Raft core layer. The core only reads storage; the driver writes it, in Ready order (see
`rawnode.py`): append `Ready.entries`, set `Ready.hard_state`, apply `Ready.snapshot`, and
only then call `RawNode.advance`. `MemoryStorage` is the in-memory implementation used by tests
and, in front of the SQLite WAL, by the driver.
"""

from __future__ import annotations

from typing import Protocol

from swarmd.raft.errors import (
    CompactedError,
    RaftInvariantError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from swarmd.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata, limit_size


class Storage(Protocol):
    """The persisted part of a raft log, as the core sees it.

    The log is the snapshot (everything up to `first_index() - 1`) followed by the entries
    `first_index()..last_index()`. Returned lists belong to the caller; entries are frozen,
    so nobody mutates them. The core calls storage from its own (single) thread of control
    only, and never writes it.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership, read when a RawNode starts."""
        ...

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries with index in the half-open range [lo, hi), at most `max_size` bytes.

        At least one entry is returned when the range is not empty, whatever its size.

        Raises:
            CompactedError: lo <= the snapshot index (those entries are gone).
            UnavailableError: hi > last_index() + 1.
        """
        ...

    def term(self, index: int) -> int:
        """The term of the entry at `index`; valid from first_index() - 1 to last_index().

        Raises:
            CompactedError: index < first_index() - 1.
            UnavailableError: index > last_index().
        """
        ...

    def first_index(self) -> int:
        """The index of the first entry that may be read with `entries` (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """The index of the last entry (the snapshot index when there are no entries)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (the empty snapshot when none was taken)."""
        ...


class MemoryStorage:
    """A Storage held in memory, with the mutators the driver (or a test) calls.

    `_ents[0]` is a dummy entry carrying the snapshot's index and term, so term lookups at
    the compaction point need no special case.
    """

    def __init__(self) -> None:
        """An empty log: no snapshot, no entries, empty hard state and membership."""
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    # Storage protocol

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and the membership of the latest snapshot."""
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """See `Storage.entries`."""
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"entries from index {lo} are compacted (first is {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to index {hi} are beyond the last index")
        if len(self._ents) == 1:
            return []
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        """See `Storage.term`."""
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(f"term of index {index} is compacted")
        if index - offset >= len(self._ents):
            raise UnavailableError(f"term of index {index} is beyond the last index")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        """See `Storage.first_index`."""
        return self._ents[0].index + 1

    def last_index(self) -> int:
        """See `Storage.last_index`."""
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        """See `Storage.snapshot`."""
        return self._snapshot

    # Mutators (the driver's side)

    def set_hard_state(self, hard_state: HardState) -> None:
        """Persist the hard state of a Ready."""
        self._hard_state = hard_state

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader.

        Raises:
            SnapshotOutOfDateError: the snapshot is older than the one held.
        """
        if snapshot.metadata.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at index {snapshot.metadata.index} is not newer than "
                f"{self._snapshot.metadata.index}"
            )
        self._snapshot = snapshot
        self._ents = [Entry(term=snapshot.metadata.term, index=snapshot.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the application state at `index` (an applied index).

        Raises:
            SnapshotOutOfDateError: index is not after the current snapshot.
            RaftInvariantError: index is beyond the last index.
        """
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(f"snapshot at index {index} is out of date")
        if index > self.last_index():
            raise RaftInvariantError(f"snapshot index {index} beyond last {self.last_index()}")
        meta = SnapshotMetadata(index=index, term=self.term(index), conf_state=conf_state)
        self._snapshot = Snapshot(metadata=meta, data=data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop the entries before `index`; `index` becomes the dummy entry.

        Raises:
            CompactedError: index is already compacted.
            RaftInvariantError: index is beyond the last index.
        """
        offset = self._ents[0].index
        if index <= offset:
            raise CompactedError(f"index {index} is already compacted")
        if index > self.last_index():
            raise RaftInvariantError(f"compact index {index} beyond last {self.last_index()}")
        kept = self._ents[index - offset :]
        self._ents = [Entry(term=kept[0].term, index=kept[0].index), *kept[1:]]

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Persist entries of a Ready; a conflicting suffix of the stored log is replaced.

        Raises:
            RaftInvariantError: the entries leave a gap after the last index.
        """
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return  # all already compacted
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        start = entries[0].index - self._ents[0].index
        if start > len(self._ents):
            raise RaftInvariantError(
                f"missing log entries: last {self.last_index()}, appending at {entries[0].index}"
            )
        self._ents = [*self._ents[:start], *entries]
