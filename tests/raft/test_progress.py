"""Progress (probe/replicate/snapshot), the inflight window and the tracker's quorum checks."""

from __future__ import annotations

import pytest

from swarmd.raft import ConfState, RaftID, RaftInvariantError
from swarmd.raft.progress import Inflights, Progress, ProgressState, ProgressTracker


def test_inflights_window_fills_and_frees() -> None:
    window = Inflights(3)
    for index in (5, 7, 9):
        window.add(index)
    assert window.full()
    with pytest.raises(RaftInvariantError):
        window.add(10)
    window.free_le(7)
    assert len(window) == 1
    assert not window.full()
    window.free_first_one()
    assert len(window) == 0


def test_inflights_indexes_must_grow() -> None:
    window = Inflights(3)
    window.add(5)
    with pytest.raises(RaftInvariantError):
        window.add(5)


def test_progress_probe_pauses_after_one_append() -> None:
    pr = Progress(5, 4, is_learner=False)
    assert not pr.is_paused()
    pr.sent_entries(2, 6)
    assert pr.is_paused()
    assert pr.next == 5  # probing does not advance next optimistically
    assert pr.maybe_update(6)
    assert not pr.is_paused()
    assert (pr.match, pr.next) == (6, 7)


def test_progress_replicate_streams_until_window_full() -> None:
    pr = Progress(1, 2, is_learner=False)
    pr.become_replicate()
    pr.sent_entries(3, 3)
    pr.sent_entries(2, 5)
    assert pr.next == 6
    assert pr.is_paused()
    pr.inflights.free_le(3)
    assert not pr.is_paused()


def test_progress_decrease_in_probe_uses_hint_and_ignores_stale() -> None:
    pr = Progress(10, 4, is_learner=False)
    assert not pr.maybe_decrease_to(7, 3)  # not the answer to our probe at 9
    assert pr.maybe_decrease_to(9, 4)
    assert pr.next == 5


def test_progress_decrease_in_replicate_goes_back_to_match() -> None:
    pr = Progress(1, 4, is_learner=False)
    pr.maybe_update(4)
    pr.become_replicate()
    pr.sent_entries(4, 8)
    assert not pr.maybe_decrease_to(3, 0)  # older than match: stale
    assert pr.maybe_decrease_to(6, 5)
    assert pr.next == 5


def test_progress_snapshot_then_probe_resumes_after_snapshot() -> None:
    pr = Progress(3, 4, is_learner=False)
    pr.become_snapshot(20)
    assert pr.is_paused()
    assert pr.state is ProgressState.SNAPSHOT
    pr.become_probe()
    assert pr.next == 21


def test_tracker_committed_and_quorum_active() -> None:
    ids = [RaftID(i) for i in (1, 2, 3)]
    tracker = ProgressTracker(8)
    tracker.apply_conf_state(
        ConfState(voters=frozenset(ids), learners=frozenset({RaftID(4)})), next_index=1
    )
    tracker.progress[ids[0]].match = 5
    tracker.progress[ids[1]].match = 4
    tracker.progress[RaftID(4)].match = 9  # a learner's acknowledgement does not count
    assert tracker.committed() == 4
    for pr in tracker.progress.values():
        pr.recent_active = False
    assert not tracker.quorum_active(ids[0])
    tracker.progress[ids[2]].recent_active = True
    assert tracker.quorum_active(ids[0])


def test_tracker_membership_change_drops_and_adds_progress() -> None:
    tracker = ProgressTracker(8)
    tracker.apply_conf_state(ConfState(voters=frozenset({RaftID(1), RaftID(2)})), next_index=3)
    tracker.apply_conf_state(ConfState(voters=frozenset({RaftID(1), RaftID(3)})), next_index=7)
    assert sorted(tracker.progress) == [1, 3]
    assert tracker.progress[RaftID(3)].next == 7
