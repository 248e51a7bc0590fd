"""Majority arithmetic: a data-driven table (testdata/quorum.txt, REWRITE=1 regenerates it)
and hypothesis properties against naive references."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from swarmd.raft import RaftID
from swarmd.raft.quorum import INFINITE_INDEX, VoteResult, committed_index, vote_result
from tests.raft.datadriven import parse, render

QUORUM_TABLE = Path(__file__).parent / "testdata" / "quorum.txt"


def _pairs(text: str) -> dict[RaftID, str]:
    items = [p for p in text.strip("()").split(",") if p]
    return {RaftID(int(k)): v for k, v in (p.split(":") for p in items)}


def run_quorum_command(command: str) -> str:
    """`committed voters=(..) match=(id:index,..)` or `vote voters=(..) votes=(id:y|n,..)`."""
    name, *args = command.split()
    opts = dict(a.split("=", 1) for a in args)
    voters = frozenset(RaftID(int(v)) for v in opts["voters"].strip("()").split(",") if v)
    if name == "committed":
        match = {k: int(v) for k, v in _pairs(opts["match"]).items()}
        index = committed_index(voters, match)
        if index == INFINITE_INDEX:
            return "committed: everything (no voters)"
        rows = sorted(voters, key=lambda v: (-match.get(v, 0), v))
        lines = [
            f"  {'*' if match.get(v, 0) >= index else ' '} voter {v}: {match.get(v, 0)}"
            for v in rows
        ]
        holders = sum(1 for v in voters if match.get(v, 0) >= index)
        return "\n".join([*lines, f"committed: {index} ({holders} of {len(voters)} voters)"])
    if name == "vote":
        votes = {k: v == "y" for k, v in _pairs(opts["votes"]).items()}
        granted = sum(1 for v in voters if votes.get(v) is True)
        rejected = sum(1 for v in voters if votes.get(v) is False)
        result = vote_result(voters, votes).value
        return f"{result} (granted {granted}, rejected {rejected}, of {len(voters)} voters)"
    raise ValueError(f"unknown quorum command {name!r}")


def test_quorum_table() -> None:
    text = QUORUM_TABLE.read_text()
    blocks = [(head, run_quorum_command(head[-1])) for head, _ in parse(text)]
    rendered = render(blocks)
    if os.environ.get("REWRITE") == "1":
        QUORUM_TABLE.write_text(rendered)
        return
    assert rendered == text


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
