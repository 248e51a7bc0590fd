"""Majority arithmetic against naive references (hypothesis) and a few table cases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swarmd.raft import RaftID
from swarmd.raft.quorum import INFINITE_INDEX, VoteResult, committed_index, vote_result

voter_sets = st.sets(st.integers(min_value=1, max_value=9), min_size=1, max_size=7).map(
    lambda ids: frozenset(RaftID(i) for i in ids)
)


@st.composite
def voters_and_matches(draw):
    voters = draw(voter_sets)
    match = {v: draw(st.integers(min_value=0, max_value=20)) for v in voters if draw(st.booleans())}
    # Non-voters' acknowledgements must not count.
    match[RaftID(100)] = draw(st.integers(min_value=0, max_value=50))
    return voters, match


def sorted_reference(voters: frozenset[RaftID], match: dict[RaftID, int]) -> int:
    """Sort the voters' match indexes descending; the majority-th one is committed."""
    acked: list[int] = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[len(voters) // 2]


@given(voters_and_matches())
def test_quorum_committed_index_matches_sort_reference(case) -> None:
    voters, match = case
    assert committed_index(voters, match) == sorted_reference(voters, match)


@given(voters_and_matches())
def test_quorum_committed_index_is_held_by_a_majority(case) -> None:
    voters, match = case
    index = committed_index(voters, match)
    holders = [v for v in voters if match.get(v, 0) >= index]
    assert len(holders) > len(voters) / 2
    # and no larger index is held by a majority
    assert len([v for v in voters if match.get(v, 0) >= index + 1]) <= len(voters) / 2


def test_quorum_committed_index_table() -> None:
    ids = [RaftID(i) for i in (1, 2, 3, 4, 5)]
    assert committed_index(ids[:1], {ids[0]: 7}) == 7
    assert committed_index(ids[:3], {ids[0]: 5, ids[1]: 3}) == 3
    assert committed_index(ids[:3], {ids[0]: 5}) == 0
    assert committed_index(ids[:4], {ids[0]: 9, ids[1]: 8, ids[2]: 2, ids[3]: 1}) == 2
    assert committed_index(ids, dict.fromkeys(ids, 4)) == 4
    assert committed_index([], {}) == INFINITE_INDEX


def vote_reference(voters, votes) -> VoteResult:
    """Enumerate how the missing voters could still vote."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    need = len(voters) // 2 + 1
    if granted >= need:
        return VoteResult.WON
    possible = any(granted + extra >= need for extra in range(missing + 1))
    return VoteResult.PENDING if possible else VoteResult.LOST


@given(voter_sets, st.data())
def test_quorum_vote_result_matches_reference(voters, data) -> None:
    votes = {v: data.draw(st.booleans()) for v in voters if data.draw(st.booleans())}
    votes[RaftID(100)] = True  # a non-voter's grant never counts
    assert vote_result(voters, votes) == vote_reference(voters, votes)


def test_quorum_vote_result_table() -> None:
    one, two, three = RaftID(1), RaftID(2), RaftID(3)
    voters = [one, two, three]
    assert vote_result(voters, {}) is VoteResult.PENDING
    assert vote_result(voters, {one: True}) is VoteResult.PENDING
    assert vote_result(voters, {one: True, two: True}) is VoteResult.WON
    assert vote_result(voters, {one: True, two: False}) is VoteResult.PENDING
    assert vote_result(voters, {one: False, two: False}) is VoteResult.LOST
    assert vote_result([one], {one: True}) is VoteResult.WON
    assert vote_result([], {}) is VoteResult.WON
