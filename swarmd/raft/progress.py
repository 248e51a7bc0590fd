"""What the leader knows about each member: progress (match/next), inflight window, tracker.

Raft core layer; the leader's handlers (`roles/leader.py`) drive it. A follower's progress is
in one of three states (etcd's design, tracker/progress.go):

- PROBE: we do not know where its log ends; send one append per heartbeat, wait for the answer.
- REPLICATE: it is caught up; stream appends optimistically, at most `max_inflight` unanswered.
- SNAPSHOT: the entries it needs are compacted; a snapshot is in flight, send nothing else.

`ProgressTracker` also holds the membership (voters, learners) and the votes of an election,
and answers the quorum questions through `quorum.py`.
"""

from __future__ import annotations

import enum
from collections import deque

from swarmd.raft.errors import RaftInvariantError
from swarmd.raft.quorum import VoteResult, committed_index, vote_result
from swarmd.raft.types import ConfState, RaftID


class ProgressState(enum.Enum):
    """How the leader currently replicates to a member."""

    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """A sliding window of appends sent but not acknowledged, by the last index each carried."""

    def __init__(self, capacity: int) -> None:
        """A window of at most `capacity` messages."""
        if capacity < 1:
            raise RaftInvariantError(f"inflight capacity {capacity} must be positive")
        self.capacity = capacity
        self._indexes: deque[int] = deque()

    def __len__(self) -> int:
        """Messages in flight."""
        return len(self._indexes)

    def add(self, index: int) -> None:
        """Record an append whose last entry is `index` (indexes only grow)."""
        if self.full():
            raise RaftInvariantError("cannot add to a full inflight window")
        if self._indexes and index <= self._indexes[-1]:
            raise RaftInvariantError(f"inflight index {index} is not after {self._indexes[-1]}")
        self._indexes.append(index)

    def free_le(self, index: int) -> None:
        """Acknowledge every message up to and including `index`."""
        while self._indexes and self._indexes[0] <= index:
            self._indexes.popleft()

    def free_first_one(self) -> None:
        """Forget the oldest message (it was probably lost), making room for one more."""
        if self._indexes:
            self._indexes.popleft()

    def full(self) -> bool:
        """True when no more appends may be sent."""
        return len(self._indexes) >= self.capacity

    def reset(self) -> None:
        """Empty the window."""
        self._indexes.clear()


class Progress:
    """The leader's view of one member's log."""

    def __init__(self, next_index: int, max_inflight: int, *, is_learner: bool) -> None:
        """A member we know nothing about yet: probe from `next_index`."""
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        # Heard from it since the last check-quorum round; new members count as active so a
        # fresh leader does not step down before they have had a chance to answer.
        self.recent_active = True
        self.probe_sent = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner

    def __repr__(self) -> str:
        """Compact form for transcripts: state, match, next."""
        text = f"{self.state.value} match={self.match} next={self.next}"
        if self.state is ProgressState.SNAPSHOT:
            text += f" pending-snap={self.pending_snapshot}"
        if self.is_learner:
            text += " learner"
        return text

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Go back to probing, after a rejection, an unreachable report or a snapshot."""
        if self.state is ProgressState.SNAPSHOT:
            # The snapshot (if it arrived) moved the follower to pending_snapshot at least.
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        """The follower's log end is known: stream entries."""
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """A snapshot at `snapshot_index` is being sent."""
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged `index`; False if that is old news."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append after `rejected`; back up. False if stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # an old rejection, overtaken by a later acknowledgement
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # not the answer to our latest probe
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, count: int, last_index: int) -> None:
        """An append with `count` entries ending at `last_index` was sent."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True
        else:
            raise RaftInvariantError("sending entries to a member in snapshot state")

    def is_paused(self) -> bool:
        """Should the leader hold back appends to this member for now?"""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True


class ProgressTracker:
    """Membership, per-member progress and election votes."""

    def __init__(self, max_inflight: int) -> None:
        """An empty membership."""
        self.max_inflight = max_inflight
        self.voters: set[RaftID] = set()
        self.learners: set[RaftID] = set()
        self.progress: dict[RaftID, Progress] = {}
        self.votes: dict[RaftID, bool] = {}

    def conf_state(self) -> ConfState:
        """The membership as a value."""
        return ConfState(voters=frozenset(self.voters), learners=frozenset(self.learners))

    def members(self) -> list[RaftID]:
        """Voters and learners, sorted (message order stays deterministic)."""
        return sorted(self.voters | self.learners)

    def apply_conf_state(self, conf_state: ConfState, next_index: int) -> None:
        """Adopt a membership; new members get a fresh progress, gone members lose theirs."""
        self.voters = set(conf_state.voters)
        self.learners = set(conf_state.learners)
        for member in list(self.progress):
            if member not in self.voters and member not in self.learners:
                del self.progress[member]
        for member in self.voters | self.learners:
            pr = self.progress.get(member)
            if pr is None:
                pr = Progress(next_index, self.max_inflight, is_learner=member in self.learners)
                self.progress[member] = pr
            pr.is_learner = member in self.learners
        self.votes = {v: g for v, g in self.votes.items() if v in self.voters}

    def committed(self) -> int:
        """The index a majority of voters have (quorum.committed_index)."""
        return committed_index(self.voters, {m: pr.match for m, pr in self.progress.items()})

    def quorum_active(self, self_id: RaftID) -> bool:
        """Did a majority of voters (counting ourselves) talk to us since the last check?"""
        votes = {m: pr.recent_active or m == self_id for m, pr in self.progress.items()}
        return vote_result(self.voters, votes) is VoteResult.WON

    def reset_votes(self) -> None:
        """Forget the votes of the previous election."""
        self.votes = {}

    def record_vote(self, member: RaftID, granted: bool) -> None:
        """Count one vote (only the first answer of a member counts)."""
        self.votes.setdefault(member, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        """Granted and rejected counts among voters, and the election result."""
        granted = sum(1 for v, g in self.votes.items() if g and v in self.voters)
        rejected = sum(1 for v, g in self.votes.items() if not g and v in self.voters)
        return granted, rejected, vote_result(self.voters, self.votes)
