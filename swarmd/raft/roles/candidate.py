"""Pre-candidate and candidate handlers: count votes; yield to a leader of our term.

Raft core layer; listed in `roles.ROLE_HANDLERS`. Both roles share every handler except the
one counting votes: a pre-candidate counts PRE_VOTE_RESP, a candidate VOTE_RESP (a stale
response of the other kind is ignored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.raft.errors import ProposalDropped
from swarmd.raft.roles.follower import accept_append, accept_heartbeat, accept_snapshot
from swarmd.raft.roles.handler import drop_proposal, is_local
from swarmd.raft.types import Message, MessageType

if TYPE_CHECKING:
    from swarmd.raft.raft import Raft
    from swarmd.raft.roles.handler import Handler


def _yield_to_leader(raft: Raft, msg: Message) -> None:
    # A leader of our term (or later: the term rules already moved us) exists (Raft §5.2).
    raft.become_follower(msg.term, msg.from_)


def on_append(raft: Raft, msg: Message) -> None:
    """Another member won this term: follow it and take its entries."""
    _yield_to_leader(raft, msg)
    accept_append(raft, msg)


def on_heartbeat(raft: Raft, msg: Message) -> None:
    """Another member won this term: follow it."""
    _yield_to_leader(raft, msg)
    accept_heartbeat(raft, msg)


def on_snapshot(raft: Raft, msg: Message) -> None:
    """Another member won this term: follow it and install its snapshot."""
    _yield_to_leader(raft, msg)
    accept_snapshot(raft, msg)


def on_vote_resp(raft: Raft, msg: Message) -> None:
    """Count a vote; win or lose the election when a majority decided."""
    raft.on_vote_response(msg)


def on_read_index(raft: Raft, msg: Message) -> None:
    """No leader during an election: a local read fails, a forwarded one is dropped."""
    if is_local(msg):
        raise ProposalDropped(f"raft member {raft.id:x} is campaigning, no leader to read from")


_COMMON: dict[MessageType, Handler] = {
    MessageType.PROP: drop_proposal,
    MessageType.APP: on_append,
    MessageType.HEARTBEAT: on_heartbeat,
    MessageType.SNAP: on_snapshot,
    MessageType.READ_INDEX: on_read_index,
}

PRE_CANDIDATE_HANDLERS: dict[MessageType, Handler] = {
    **_COMMON,
    MessageType.PRE_VOTE_RESP: on_vote_resp,
}

CANDIDATE_HANDLERS: dict[MessageType, Handler] = {
    **_COMMON,
    MessageType.VOTE_RESP: on_vote_resp,
}
