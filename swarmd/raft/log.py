"""The raft log: persisted entries (Storage) followed by the unstable tail not yet persisted.

Raft core layer; owned by the state machine in `raft.py`. `Unstable` holds what the core
appended (or the snapshot it received) since the last `advance`; the driver persists it from
`Ready.entries` / `Ready.snapshot`, then `stable_to` drops it from here. `RaftLog` answers
questions about the whole log (terms, slices, up-to-dateness) and tracks the committed and
applied indexes.
"""

from __future__ import annotations

from swarmd.raft.errors import CompactedError, RaftInvariantError, UnavailableError
from swarmd.raft.logger import RaftLogger
from swarmd.raft.storage import Storage
from swarmd.raft.types import Entry, Snapshot, limit_size

NO_LIMIT = 1 << 62


class Unstable:
    """Entries (and possibly a snapshot) not yet in Storage; entries[i] has index offset + i."""

    def __init__(self, offset: int) -> None:
        """An empty tail whose first entry, once appended, will have index `offset`."""
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        """The first index of the log when an unstable snapshot defines it."""
        return self.snapshot.metadata.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        """The last index, when the unstable part defines it."""
        if self.entries:
            return self.offset + len(self.entries) - 1
        return self.snapshot.metadata.index if self.snapshot is not None else None

    def maybe_term(self, index: int) -> int | None:
        """The term at `index` when the unstable part knows it."""
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == index:
                return self.snapshot.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to `index` were persisted; drop them unless they were replaced since."""
        if self.maybe_term(index) != term or index < self.offset:
            return  # replaced by a newer append after the Ready was taken, or already stable
        self.entries = self.entries[index + 1 - self.offset :]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        """The snapshot at `index` was persisted."""
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        """Replace everything by a snapshot received from the leader."""
        self.offset = snapshot.metadata.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, entries: list[Entry]) -> None:
        """Append entries, first dropping any unstable entries at or after entries[0].index."""
        after = entries[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= self.offset:
            # Replaces the whole unstable part (and, in storage, the suffix from `after`).
            self.offset = after
            self.entries = list(entries)
        else:
            self.entries = [*self.entries[: after - self.offset], *entries]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Unstable entries in [lo, hi)."""
        upper = self.offset + len(self.entries)
        if lo > hi or lo < self.offset or hi > upper:
            raise RaftInvariantError(f"unstable slice [{lo}, {hi}) out of [{self.offset}, {upper})")
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    """The log as the state machine sees it: storage + unstable, committed and applied."""

    def __init__(self, storage: Storage, logger: RaftLogger) -> None:
        """Start from what storage holds: committed and applied sit at its snapshot."""
        self.storage = storage
        self.logger = logger
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1

    def first_index(self) -> int:
        """The first index still in the log (after the latest snapshot)."""
        index = self.unstable.maybe_first_index()
        return index if index is not None else self.storage.first_index()

    def last_index(self) -> int:
        """The index of the last entry (stable or not)."""
        index = self.unstable.maybe_last_index()
        return index if index is not None else self.storage.last_index()

    def last_term(self) -> int:
        """The term of the last entry."""
        return self.term(self.last_index())

    def term(self, index: int) -> int:
        """The term at `index`.

        Raises:
            CompactedError: index is before the snapshot.
            UnavailableError: index is after the last entry.
        """
        dummy = self.first_index() - 1
        if index < dummy:
            raise CompactedError(f"index {index} is compacted")
        if index > self.last_index():
            raise UnavailableError(f"index {index} is beyond the last index")
        term = self.unstable.maybe_term(index)
        return term if term is not None else self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        """The term at `index`, or 0 when the log does not have it."""
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def match_term(self, index: int, term: int) -> bool:
        """True when the log has an entry at `index` with `term` (the log matching check)."""
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Is a log ending at (last_index, term) at least as up to date as ours (Raft §5.4.1)."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """The index of the first entry that disagrees with the log, 0 when none does."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term`, and that term.

        A follower rejecting an append sends this as a hint, so the leader can skip every
        entry of a conflicting term in one round trip instead of one index per round trip.
        """
        while index > 0:
            try:
                our_term = self.term(index)
            except (CompactedError, UnavailableError):
                return index, 0
            if our_term <= term:
                return index, our_term
            index -= 1
        return 0, 0

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Append entries that follow (index, log_term), if our log has that entry.

        Returns the index of the last new entry, or None when the log does not match (the
        leader must back up). Conflicting entries are overwritten (Raft §5.3); entries we
        already have are kept, so a stale or duplicated append never truncates the log.
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise RaftInvariantError(
                    f"entry {conflict} conflicts with committed index {self.committed}"
                )
            self.append(list(entries[conflict - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, entries: list[Entry]) -> int:
        """Append entries to the unstable tail, truncating a conflicting suffix. Returns last."""
        if not entries:
            return self.last_index()
        if entries[0].index - 1 < self.committed:
            raise RaftInvariantError(
                f"append at {entries[0].index} would truncate committed index {self.committed}"
            )
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def commit_to(self, index: int) -> None:
        """Move the commit index forward (never back)."""
        if self.committed < index:
            if self.last_index() < index:
                raise RaftInvariantError(
                    f"commit index {index} is beyond the last index {self.last_index()}"
                )
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to `index` if its entry is of `term` (Raft §5.4.2: own-term entries only)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        """The application applied everything up to `index`."""
        if index == 0:
            return
        if self.committed < index or index < self.applied:
            raise RaftInvariantError(
                f"applied index {index} outside [{self.applied}, {self.committed}]"
            )
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (index, term) are persisted."""
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        """The snapshot at `index` is persisted."""
        self.unstable.stable_snap_to(index)

    def unstable_entries(self) -> list[Entry]:
        """Entries the driver has to persist."""
        return list(self.unstable.entries)

    def has_next_committed(self) -> bool:
        """Are there committed entries not applied yet?"""
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed(self, max_size: int = NO_LIMIT) -> list[Entry]:
        """Committed entries not applied yet (from after the snapshot at the earliest)."""
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_size)
        return []

    def snapshot(self) -> Snapshot:
        """The newest snapshot: the unstable one, else storage's."""
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def entries(self, lo: int, max_size: int) -> list[Entry]:
        """Entries from `lo` to the end, within `max_size`.

        Raises:
            CompactedError: lo is before the first index.
        """
        if lo > self.last_index():
            return []
        return self.slice(lo, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        """Every entry still in the log (tests and the simulator use it)."""
        return self.entries(self.first_index(), NO_LIMIT)

    def slice(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries in [lo, hi) from storage then unstable, within `max_size`.

        Raises:
            CompactedError: lo is before the first index.
        """
        if lo > hi:
            raise RaftInvariantError(f"invalid slice [{lo}, {hi})")
        if lo < self.first_index():
            raise CompactedError(f"entries from index {lo} are compacted")
        if hi > self.last_index() + 1:
            raise RaftInvariantError(f"slice [{lo}, {hi}) beyond last index {self.last_index()}")
        if lo == hi:
            return []
        result: list[Entry] = []
        offset = self.unstable.offset
        if lo < offset:
            stored = self.storage.entries(lo, min(hi, offset), max_size)
            if len(stored) < min(hi, offset) - lo:
                return stored  # hit the size limit inside storage
            result = stored
        if hi > offset:
            result = [*result, *self.unstable.slice(max(lo, offset), hi)]
        return limit_size(result, max_size)

    def restore(self, snapshot: Snapshot) -> None:
        """Reset the log to a snapshot received from the leader."""
        self.logger.info(
            "log restored from snapshot",
            index=snapshot.metadata.index,
            term=snapshot.metadata.term,
        )
        self.committed = snapshot.metadata.index
        self.unstable.restore(snapshot)
