"""The shape of a role handler, and the checks handlers of several roles share.

Raft core layer; imported by the role modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from swarmd.raft.errors import ProposalDropped
from swarmd.raft.types import NONE, Message

if TYPE_CHECKING:
    from swarmd.raft.raft import Raft

Handler: TypeAlias = "Callable[[Raft, Message], None]"


def is_local(msg: Message) -> bool:
    """Did the message come from our own RawNode (rather than being forwarded by a peer)?

    Local requests carry no sender; a forwarded one keeps its requester as sender, even when
    that is us (our own read forwarded to a member that forwarded it back).
    """
    return msg.from_ == NONE


def drop_proposal(raft: Raft, msg: Message) -> None:
    """Only the leader appends proposals; the driver routes writes to it (leaderproxy).

    Raises:
        ProposalDropped: always, naming the leader when one is known.
    """
    if raft.lead != NONE:
        raise ProposalDropped(f"raft member {raft.id:x} is not the leader ({raft.lead:x} is)")
    raise ProposalDropped(f"raft member {raft.id:x} is not the leader and knows no leader")
