"""RaftLog and Unstable: append, conflicts, truncation, commit, compaction, slices."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmd.raft import (
    CompactedError,
    ConfState,
    Entry,
    MemoryStorage,
    RaftInvariantError,
    Snapshot,
    SnapshotMetadata,
)
from swarmd.raft.log import NO_LIMIT, RaftLog, Unstable
from swarmd.raft.logger import DiscardLogger


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [
        Entry(term=t, index=start + i, data=f"{start + i}".encode()) for i, t in enumerate(terms)
    ]


def make_log(stored: list[Entry] | None = None) -> RaftLog:
    storage = MemoryStorage()
    if stored:
        storage.append(stored)
    return RaftLog(storage, DiscardLogger())


def terms(log: RaftLog) -> list[int]:
    return [e.term for e in log.all_entries()]


def test_log_append_after_storage_goes_to_unstable() -> None:
    log = make_log(ents(1, 1))
    assert log.append(ents(2, start=3)) == 3
    assert log.unstable_entries() == ents(2, start=3)
    assert terms(log) == [1, 1, 2]
    assert log.last_term() == 2


def test_log_maybe_append_overwrites_conflicting_suffix() -> None:
    log = make_log(ents(1, 1, 1))
    # The leader's entries 2/3 and 2/4 follow 1/2: entry 3 (term 1) conflicts and is replaced.
    last = log.maybe_append(2, 1, 0, tuple(ents(2, 2, start=3)))
    assert last == 4
    assert terms(log) == [1, 1, 2, 2]


def test_log_maybe_append_keeps_matching_entries_on_stale_append() -> None:
    log = make_log(ents(1, 1, 1, 1))
    # A delayed append carrying only entry 2 must not truncate entries 3 and 4.
    assert log.maybe_append(1, 1, 0, tuple(ents(1, start=2))) == 2
    assert log.last_index() == 4


def test_log_maybe_append_rejects_mismatching_previous_entry() -> None:
    log = make_log(ents(1, 1))
    assert log.maybe_append(2, 2, 0, tuple(ents(2, start=3))) is None
    assert log.maybe_append(5, 1, 0, ()) is None  # gap
    assert terms(log) == [1, 1]


def test_log_maybe_append_commits_at_most_last_new_entry() -> None:
    log = make_log(ents(1, 1, 1))
    log.maybe_append(1, 1, 10, tuple(ents(1, start=2)))
    assert log.committed == 2


def test_log_conflict_with_committed_entry_is_an_invariant_error() -> None:
    log = make_log(ents(1, 1, 1))
    log.commit_to(3)
    with pytest.raises(RaftInvariantError):
        log.maybe_append(1, 1, 3, tuple(ents(2, start=2)))


def test_log_commit_beyond_last_index_is_an_invariant_error() -> None:
    log = make_log(ents(1))
    with pytest.raises(RaftInvariantError):
        log.commit_to(2)


def test_log_maybe_commit_only_entries_of_the_given_term() -> None:
    log = make_log(ents(1, 1, 2))
    assert not log.maybe_commit(2, 2)
    assert log.committed == 0
    assert log.maybe_commit(3, 2)
    assert log.committed == 3


def test_log_find_conflict_by_term_skips_a_whole_term() -> None:
    log = make_log(ents(1, 1, 3, 3, 3))
    assert log.find_conflict_by_term(5, 2) == (2, 1)
    assert log.find_conflict_by_term(5, 3) == (5, 3)
    assert log.find_conflict_by_term(5, 0) == (0, 0)


def test_log_is_up_to_date_compares_last_term_then_index() -> None:
    log = make_log(ents(1, 2, 2))
    assert log.is_up_to_date(1, 3)
    assert log.is_up_to_date(3, 2)
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(10, 1)


def test_log_stable_to_moves_entries_to_storage_view() -> None:
    storage = MemoryStorage()
    log = RaftLog(storage, DiscardLogger())
    log.append(ents(1, 1))
    storage.append(log.unstable_entries())
    log.stable_to(2, 1)
    assert log.unstable_entries() == []
    assert terms(log) == [1, 1]


def test_log_stable_to_ignores_replaced_entries() -> None:
    log = make_log()
    log.append(ents(1, 1))
    log.append(ents(2, start=2))  # replaces 1/2 before the Ready holding it was advanced
    log.stable_to(2, 1)
    assert log.unstable_entries() == ents(1, 2)


def test_log_after_compaction_reads_fail_below_first_index() -> None:
    storage = MemoryStorage()
    storage.append(ents(1, 1, 2, 2))
    storage.create_snapshot(2, ConfState(), b"state")
    storage.compact(2)
    log = RaftLog(storage, DiscardLogger())
    assert log.first_index() == 3
    assert log.term(2) == 1  # the snapshot's term is still known
    with pytest.raises(CompactedError):
        log.term(1)
    with pytest.raises(CompactedError):
        log.entries(2, NO_LIMIT)
    assert log.entries(3, NO_LIMIT) == ents(2, 2, start=3)
    assert log.committed == 2
    assert log.applied == 2


def test_log_restore_replaces_everything_with_the_snapshot() -> None:
    log = make_log(ents(1, 1))
    snap = Snapshot(metadata=SnapshotMetadata(index=10, term=3), data=b"x")
    log.restore(snap)
    assert log.first_index() == 11
    assert log.last_index() == 10
    assert log.term(10) == 3
    assert log.committed == 10
    assert log.snapshot() == snap


def test_log_slice_respects_max_size_but_returns_one_entry() -> None:
    log = make_log(ents(1, 1, 1))
    log.append(ents(1, start=4))
    assert len(log.slice(1, 5, 1)) == 1
    assert len(log.slice(1, 5, NO_LIMIT)) == 4
    assert log.slice(2, 5, NO_LIMIT) == ents(1, 1, 1, start=2)


def test_log_next_committed_returns_entries_after_applied() -> None:
    log = make_log(ents(1, 1, 1))
    log.commit_to(2)
    assert log.next_committed() == ents(1, 1)
    log.applied_to(1)
    assert log.next_committed() == ents(1, start=2)
    with pytest.raises(RaftInvariantError):
        log.applied_to(3)


def test_unstable_truncate_and_append_cases() -> None:
    unstable = Unstable(5)
    unstable.truncate_and_append(ents(1, 1, start=5))
    unstable.truncate_and_append(ents(2, start=7))  # contiguous
    assert [e.index for e in unstable.entries] == [5, 6, 7]
    unstable.truncate_and_append(ents(3, start=6))  # in the middle
    assert [(e.index, e.term) for e in unstable.entries] == [(5, 1), (6, 3)]
    unstable.truncate_and_append(ents(4, start=4))  # before the offset
    assert unstable.offset == 4
    assert [(e.index, e.term) for e in unstable.entries] == [(4, 4)]


@given(
    st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=30),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 8)), max_size=40),
)
def test_log_appends_in_any_order_keep_a_prefix_of_the_leader_log(
    term_steps: list[int], sends: list[tuple[int, int]]
) -> None:
    """Whatever order (or duplication) appends from one leader log arrive in, the follower's
    log stays a prefix of it and its commit index never passes what it has."""
    leader: list[Entry] = []
    term = 1
    for i, step in enumerate(term_steps):
        term += step
        leader.append(Entry(term=term, index=i + 1))
    follower = make_log()
    for start, count in sends:
        prev = min(start, len(leader))
        prev_term = leader[prev - 1].term if prev else 0
        batch = tuple(leader[prev : prev + count])
        follower.maybe_append(prev, prev_term, len(leader), batch)
        have = follower.all_entries()
        assert have == leader[: len(have)]
        assert follower.committed <= follower.last_index()
