"""Majority arithmetic: the committed index of a voter set and the result of an election.

Raft core layer; called by the progress tracker (`progress.py`). Both functions take the voter
set and a mapping from voter to what it reported; a voter missing from the mapping has not
reported (match index 0, vote pending).
"""

from __future__ import annotations

import enum
import heapq
import sys
from collections.abc import Collection, Mapping

from swarmd.raft.types import RaftID

# An empty voter set "commits everything": it places no constraint, which is what makes the
# result compose under intersection (etcd's joint quorums rely on it). With single-step changes
# the core never has an empty voter set while leading, but the arithmetic stays total.
INFINITE_INDEX = sys.maxsize


class VoteResult(enum.Enum):
    """Outcome of an election so far."""

    PENDING = "pending"  # neither a quorum of grants nor of rejections yet
    LOST = "lost"
    WON = "won"


def quorum_size(voters: Collection[RaftID]) -> int:
    """How many voters make a majority."""
    return len(voters) // 2 + 1


def committed_index(voters: Collection[RaftID], match: Mapping[RaftID, int]) -> int:
    """The largest index that a majority of voters have acknowledged.

    That is the q-th largest match index, q the quorum size: q voters are at or above it.
    A heap of q elements finds it without sorting every voter.
    """
    if not voters:
        return INFINITE_INDEX
    acked = (match.get(v, 0) for v in voters)
    return heapq.nlargest(quorum_size(voters), acked)[-1]


def vote_result(voters: Collection[RaftID], votes: Mapping[RaftID, bool]) -> VoteResult:
    """WON with a majority of grants, LOST once a majority can no longer be reached."""
    if not voters:
        return VoteResult.WON
    granted = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    quorum = quorum_size(voters)
    if granted >= quorum:
        return VoteResult.WON
    if granted + missing >= quorum:
        return VoteResult.PENDING
    return VoteResult.LOST
