"""Message handlers of each raft role, one function per (role, message type).

Raft core layer; `Raft.step` (raft.py) looks the handler up in `ROLE_HANDLERS` after the
common term and vote rules. A message type absent from a role's table is ignored by that role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from swarmd.raft.roles import candidate, follower, leader
from swarmd.raft.types import MessageType, StateType

if TYPE_CHECKING:
    from swarmd.raft.roles.handler import Handler

ROLE_HANDLERS: Mapping[StateType, Mapping[MessageType, Handler]] = {
    StateType.FOLLOWER: follower.HANDLERS,
    StateType.PRE_CANDIDATE: candidate.PRE_CANDIDATE_HANDLERS,
    StateType.CANDIDATE: candidate.CANDIDATE_HANDLERS,
    StateType.LEADER: leader.HANDLERS,
}

__all__ = ["ROLE_HANDLERS"]
