"""Follower handlers: accept the leader's appends, heartbeats and snapshots; forward requests.

Raft core layer; listed in `roles.ROLE_HANDLERS`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from swarmd.raft.errors import ProposalDropped
from swarmd.raft.roles.handler import drop_proposal, is_local
from swarmd.raft.types import NONE, Message, MessageType, ReadState

if TYPE_CHECKING:
    from swarmd.raft.raft import Raft
    from swarmd.raft.roles.handler import Handler


def _hear_leader(raft: Raft, msg: Message) -> None:
    raft.election_elapsed = 0
    raft.lead = msg.from_


def on_append(raft: Raft, msg: Message) -> None:
    """The leader replicates entries."""
    _hear_leader(raft, msg)
    raft.handle_append_entries(msg)


def on_heartbeat(raft: Raft, msg: Message) -> None:
    """The leader is alive; it tells us how far we may commit."""
    _hear_leader(raft, msg)
    raft.handle_heartbeat(msg)


def on_snapshot(raft: Raft, msg: Message) -> None:
    """The leader sends a snapshot because the entries we need are compacted."""
    _hear_leader(raft, msg)
    raft.handle_snapshot(msg)


def _forward_to_leader(raft: Raft, msg: Message, what: str) -> None:
    if raft.lead == NONE:
        if is_local(raft, msg):
            raise ProposalDropped(f"raft member {raft.id:x} knows no leader to {what}")
        raft.logger.debug("dropped forwarded request without leader", id=raft.id, what=what)
        return
    raft.send(dataclasses.replace(msg, to=raft.lead, term=0))


def on_transfer_leader(raft: Raft, msg: Message) -> None:
    """Leadership transfer is the leader's job: pass the request on."""
    _forward_to_leader(raft, msg, "transfer leadership")


def on_read_index(raft: Raft, msg: Message) -> None:
    """Only the leader can confirm a read index: pass the request on."""
    _forward_to_leader(raft, msg, "confirm a read")


def on_read_index_resp(raft: Raft, msg: Message) -> None:
    """The leader confirmed our read: it may be served once applied reaches msg.index."""
    raft.read_states.append(ReadState(index=msg.index, request_ctx=msg.context))


def on_timeout_now(raft: Raft, msg: Message) -> None:
    """The leader hands leadership to us: campaign at once (no pre-vote, past any lease)."""
    raft.logger.info("received timeout-now", id=raft.id, term=raft.term, source=msg.from_)
    raft.campaign_transfer()


HANDLERS: dict[MessageType, Handler] = {
    MessageType.PROP: drop_proposal,
    MessageType.APP: on_append,
    MessageType.HEARTBEAT: on_heartbeat,
    MessageType.SNAP: on_snapshot,
    MessageType.TRANSFER_LEADER: on_transfer_leader,
    MessageType.READ_INDEX: on_read_index,
    MessageType.READ_INDEX_RESP: on_read_index_resp,
    MessageType.TIMEOUT_NOW: on_timeout_now,
}
