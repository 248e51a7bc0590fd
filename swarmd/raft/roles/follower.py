"""Follower handlers: accept the leader's appends, heartbeats and snapshots; forward requests.

Raft core layer; listed in `roles.ROLE_HANDLERS`. `accept_append`, `accept_heartbeat` and
`accept_snapshot` are also what a (pre-)candidate does after yielding to a leader.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from swarmd.raft.errors import ProposalDropped, RaftInvariantError
from swarmd.raft.roles.handler import drop_proposal, is_local
from swarmd.raft.types import NONE, Message, MessageType, ReadState, Snapshot, StateType

if TYPE_CHECKING:
    from swarmd.raft.raft import Raft
    from swarmd.raft.roles.handler import Handler


def accept_append(raft: Raft, msg: Message) -> None:
    """Append the leader's entries if our log matches at msg.index (Raft §5.3)."""
    if msg.index < raft.log.committed:
        raft.send(Message(type=MessageType.APP_RESP, to=msg.from_, index=raft.log.committed))
        return
    last_new = raft.log.maybe_append(msg.index, msg.log_term, msg.commit, msg.entries)
    if last_new is not None:
        raft.send(Message(type=MessageType.APP_RESP, to=msg.from_, index=last_new))
        return
    hint_index, hint_term = raft.log.find_conflict_by_term(
        min(msg.index, raft.log.last_index()), msg.log_term
    )
    raft.logger.debug(
        "rejected append",
        id=raft.id,
        index=msg.index,
        log_term=msg.log_term,
        hint_index=hint_index,
        hint_term=hint_term,
    )
    raft.send(
        Message(
            type=MessageType.APP_RESP,
            to=msg.from_,
            index=msg.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )
    )


def accept_heartbeat(raft: Raft, msg: Message) -> None:
    """Learn the commit index, echo the read context."""
    raft.log.commit_to(msg.commit)
    raft.send(Message(type=MessageType.HEARTBEAT_RESP, to=msg.from_, context=msg.context))


def accept_snapshot(raft: Raft, msg: Message) -> None:
    """Install the leader's snapshot if it is ahead of our commit index."""
    if msg.snapshot is None:
        raise RaftInvariantError("snapshot message without a snapshot")
    if restore(raft, msg.snapshot):
        raft.send(Message(type=MessageType.APP_RESP, to=msg.from_, index=raft.log.last_index()))
    else:
        raft.send(Message(type=MessageType.APP_RESP, to=msg.from_, index=raft.log.committed))


def restore(raft: Raft, snapshot: Snapshot) -> bool:
    """Reset log and membership to a snapshot; False when it brings nothing new."""
    meta = snapshot.metadata
    if meta.index <= raft.log.committed:
        return False
    if raft.state is not StateType.FOLLOWER:
        raise RaftInvariantError(f"restoring a snapshot as {raft.state.value}")
    conf = meta.conf_state
    if raft.id not in conf.voters and raft.id not in conf.learners:
        # A member added after the leader's latest snapshot: it learns its own membership
        # from the entries that follow. Rejecting the snapshot would loop forever (the
        # leader has nothing older to send). Not being in the tracker only means this
        # member is not promotable yet.
        raft.logger.info("installing snapshot that predates this member", id=raft.id)
    if raft.log.match_term(meta.index, meta.term):
        # We already have the snapshot's last entry: just fast-forward the commit index.
        raft.log.commit_to(meta.index)
        return False
    raft.log.restore(snapshot)
    raft.tracker.progress.clear()
    raft.tracker.apply_conf_state(conf, raft.log.last_index() + 1)
    return True


def _hear_leader(raft: Raft, msg: Message) -> None:
    raft.election_elapsed = 0
    raft.lead = msg.from_


def on_append(raft: Raft, msg: Message) -> None:
    """The leader replicates entries."""
    _hear_leader(raft, msg)
    accept_append(raft, msg)


def on_heartbeat(raft: Raft, msg: Message) -> None:
    """The leader is alive; it tells us how far we may commit."""
    _hear_leader(raft, msg)
    accept_heartbeat(raft, msg)


def on_snapshot(raft: Raft, msg: Message) -> None:
    """The leader sends a snapshot because the entries we need are compacted."""
    _hear_leader(raft, msg)
    accept_snapshot(raft, msg)


def _forward_to_leader(raft: Raft, msg: Message, what: str) -> None:
    if raft.lead == NONE:
        if is_local(msg):
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
