"""MemoryStorage: the Storage contract (ranges, errors) and the driver-side mutators."""

from __future__ import annotations

import pytest

from swarmd.raft import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    RaftID,
    RaftInvariantError,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDateError,
    UnavailableError,
)


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(term=t, index=start + i, data=b"xxxx") for i, t in enumerate(terms)]


@pytest.fixture
def storage() -> MemoryStorage:
    s = MemoryStorage()
    s.append(ents(1, 1, 2, 2, 3))
    return s


def test_storage_empty_has_no_entries() -> None:
    s = MemoryStorage()
    assert (s.first_index(), s.last_index()) == (1, 0)
    assert s.term(0) == 0
    assert s.entries(1, 1, 100) == []
    assert s.initial_state() == (HardState(), ConfState())
    assert s.snapshot().is_empty()


def test_storage_entries_half_open_range(storage: MemoryStorage) -> None:
    assert [e.index for e in storage.entries(2, 4, 1 << 20)] == [2, 3]
    with pytest.raises(UnavailableError):
        storage.entries(2, 7, 1 << 20)


def test_storage_entries_size_limit_keeps_at_least_one(storage: MemoryStorage) -> None:
    assert len(storage.entries(1, 6, 0)) == 1
    assert len(storage.entries(1, 6, 2 * 20)) == 2  # each entry counts 4 + 16 bytes


def test_storage_term_bounds(storage: MemoryStorage) -> None:
    assert storage.term(5) == 3
    with pytest.raises(UnavailableError):
        storage.term(6)


def test_storage_compact_keeps_term_of_compaction_point(storage: MemoryStorage) -> None:
    storage.compact(3)
    assert storage.first_index() == 4
    assert storage.term(3) == 2
    with pytest.raises(CompactedError):
        storage.term(2)
    with pytest.raises(CompactedError):
        storage.entries(3, 5, 100)
    with pytest.raises(CompactedError):
        storage.compact(2)
    with pytest.raises(RaftInvariantError):
        storage.compact(9)


def test_storage_append_replaces_conflicting_suffix(storage: MemoryStorage) -> None:
    storage.append(ents(4, 4, start=3))
    assert [e.term for e in storage.entries(1, 5, 1 << 20)] == [1, 1, 4, 4]
    assert storage.last_index() == 4


def test_storage_append_with_gap_is_an_invariant_error(storage: MemoryStorage) -> None:
    with pytest.raises(RaftInvariantError):
        storage.append(ents(3, start=8))


def test_storage_append_ignores_compacted_prefix(storage: MemoryStorage) -> None:
    storage.compact(4)
    storage.append(ents(2, 2, 3, 3, start=3))
    assert storage.first_index() == 5
    assert [e.index for e in storage.entries(5, 7, 1 << 20)] == [5, 6]


def test_storage_snapshot_create_and_apply(storage: MemoryStorage) -> None:
    conf = ConfState(voters=frozenset({RaftID(1), RaftID(2)}))
    snap = storage.create_snapshot(4, conf, b"state")
    assert snap.metadata == SnapshotMetadata(index=4, term=2, conf_state=conf)
    assert storage.initial_state()[1] == conf
    with pytest.raises(SnapshotOutOfDateError):
        storage.create_snapshot(3, conf, b"older")

    other = MemoryStorage()
    other.append(ents(1))
    newer = Snapshot(metadata=SnapshotMetadata(index=10, term=5, conf_state=conf), data=b"s")
    other.apply_snapshot(newer)
    assert (other.first_index(), other.last_index(), other.term(10)) == (11, 10, 5)
    with pytest.raises(SnapshotOutOfDateError):
        other.apply_snapshot(snap)
