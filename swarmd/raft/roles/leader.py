"""Leader handlers: replicate, commit by quorum, heartbeats, reads, transfers, check-quorum.

Raft core layer; listed in `roles.ROLE_HANDLERS`. Per-follower replication is a small state
machine in `progress.py`; these handlers feed it the followers' answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.raft import confchange
from swarmd.raft.errors import ConfChangeRejected, ProposalDropped, RaftInvariantError
from swarmd.raft.progress import ProgressState
from swarmd.raft.quorum import VoteResult, vote_result
from swarmd.raft.readonly import ReadIndexStatus
from swarmd.raft.roles.handler import is_local
from swarmd.raft.types import (
    NONE,
    ConfChange,
    EntryType,
    Message,
    MessageType,
    RaftID,
    ReadState,
)

if TYPE_CHECKING:
    from swarmd.raft.raft import Raft
    from swarmd.raft.roles.handler import Handler


def on_beat(raft: Raft, msg: Message) -> None:
    """Heartbeat time: assert leadership, carrying the newest pending read context."""
    raft.bcast_heartbeat(raft.read_only.last_pending_ctx())


def on_check_quorum(raft: Raft, msg: Message) -> None:
    """Step down when a majority did not answer during the last election timeout.

    Otherwise a leader cut off from the majority would keep serving stale reads and taking
    proposals that can never commit, while the majority elects someone else.
    """
    if not raft.tracker.quorum_active(raft.id):
        raft.logger.warning("stepped down: quorum not active", id=raft.id, term=raft.term)
        raft.become_follower(raft.term, NONE)
        return
    for member, pr in raft.tracker.progress.items():
        if member != raft.id:
            pr.recent_active = False


def _check_conf_change(raft: Raft, data: bytes) -> None:
    if raft.pending_conf_index > raft.log.applied:
        raise ConfChangeRejected(
            f"a conf change at index {raft.pending_conf_index} is not applied yet "
            f"(applied {raft.log.applied}); one change at a time"
        )
    try:
        change = ConfChange.unmarshal(data)
    except ValueError as err:
        raise ConfChangeRejected(f"invalid conf change entry: {err}") from err
    confchange.validate(raft.tracker.conf_state(), change)


def on_propose(raft: Raft, msg: Message) -> None:
    """Append proposed entries and replicate them.

    Raises:
        ProposalDropped: we were removed, or are handing leadership over.
        ConfChangeRejected: a conf change is pending, or this one does not fit.
    """
    if not msg.entries:
        raise RaftInvariantError("proposal without entries")
    if raft.id not in raft.tracker.progress:
        raise ProposalDropped(f"raft member {raft.id:x} was removed from the cluster")
    if raft.lead_transferee != NONE:
        raise ProposalDropped(
            f"raft member {raft.id:x} is transferring leadership to {raft.lead_transferee:x}"
        )
    changes = [i for i, e in enumerate(msg.entries) if e.type is EntryType.CONF_CHANGE]
    if len(changes) > 1:
        raise ConfChangeRejected("one conf change per proposal")
    if changes:
        _check_conf_change(raft, msg.entries[changes[0]].data)
        raft.pending_conf_index = raft.log.last_index() + changes[0] + 1
    raft.append_entries(list(msg.entries))
    raft.bcast_append()


def _answer_read(raft: Raft, requester: RaftID, index: int, context: bytes) -> None:
    if requester in (NONE, raft.id):
        raft.read_states.append(ReadState(index=index, request_ctx=context))
    else:
        raft.send(
            Message(type=MessageType.READ_INDEX_RESP, to=requester, index=index, context=context)
        )


def on_read_index(raft: Raft, msg: Message) -> None:
    """Confirm leadership with a heartbeat round, then answer with the commit index."""
    if raft.tracker.voters == {raft.id}:
        _answer_read(raft, msg.from_, raft.log.committed, msg.context)
        return
    if raft.log.term_or_zero(raft.log.committed) != raft.term:
        # Until an entry of our term commits we do not know the real commit index
        # (Raft §8): hold the read until then.
        raft.pending_read_index.append(msg)
        return
    _start_read(raft, msg)


def _start_read(raft: Raft, msg: Message) -> None:
    requester = NONE if is_local(msg) else msg.from_
    raft.read_only.add_request(raft.log.committed, msg.context, requester)
    raft.read_only.recv_ack(raft.id, msg.context)
    raft.bcast_heartbeat(msg.context)


def release_pending_reads(raft: Raft) -> None:
    """An entry of our term committed: start the reads that waited for it."""
    pending, raft.pending_read_index = raft.pending_read_index, []
    for msg in pending:
        _start_read(raft, msg)


def on_append_resp(raft: Raft, msg: Message) -> None:
    """A follower accepted or rejected an append: update its progress, maybe commit."""
    pr = raft.tracker.progress.get(msg.from_)
    if pr is None:
        return
    pr.recent_active = True
    if msg.reject:
        next_probe = msg.reject_hint
        if msg.log_term > 0:
            # Skip, on our side too, every entry whose term is above the follower's.
            next_probe, _ = raft.log.find_conflict_by_term(msg.reject_hint, msg.log_term)
        if pr.maybe_decrease_to(msg.index, next_probe):
            raft.logger.debug("append rejected, backing up", id=raft.id, to=msg.from_, next=pr.next)
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
            raft.send_append(msg.from_)
        return
    was_paused = pr.is_paused()
    if not pr.maybe_update(msg.index):
        return
    if pr.state is ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state is ProgressState.SNAPSHOT and pr.match + 1 >= raft.log.first_index():
        # The snapshot (or a later append) brought it up to our log: replicate from here.
        pr.become_probe()
        pr.become_replicate()
    elif pr.state is ProgressState.REPLICATE:
        pr.inflights.free_le(msg.index)
    if raft.maybe_commit():
        release_pending_reads(raft)
        raft.bcast_append()
    elif was_paused:
        raft.send_append(msg.from_)
    # Keep the window full (the window may have opened several slots).
    while raft.send_append(msg.from_, send_if_empty=False):
        pass
    if msg.from_ == raft.lead_transferee and pr.match == raft.log.last_index():
        raft.logger.info("transferee caught up, sending timeout-now", to=msg.from_)
        raft.send(Message(type=MessageType.TIMEOUT_NOW, to=msg.from_))


def on_heartbeat_resp(raft: Raft, msg: Message) -> None:
    """A follower is alive: resume probing, catch it up, count its read acknowledgement."""
    pr = raft.tracker.progress.get(msg.from_)
    if pr is None:
        return
    pr.recent_active = True
    pr.probe_sent = False
    if pr.state is ProgressState.REPLICATE and pr.inflights.full():
        # The appends filling the window may all be lost: let one more through.
        pr.inflights.free_first_one()
    if pr.match < raft.log.last_index():
        raft.send_append(msg.from_)
    if not msg.context:
        return
    acks = raft.read_only.recv_ack(msg.from_, msg.context)
    if vote_result(raft.tracker.voters, dict.fromkeys(acks, True)) is not VoteResult.WON:
        return
    done: list[ReadIndexStatus] = raft.read_only.advance(msg.context)
    for status in done:
        _answer_read(raft, status.requester, status.index, status.request_ctx)


def on_snap_status(raft: Raft, msg: Message) -> None:
    """The driver reports a snapshot send: on failure, probe again after a heartbeat."""
    pr = raft.tracker.progress.get(msg.from_)
    if pr is None or pr.state is not ProgressState.SNAPSHOT:
        return
    if msg.reject:
        pr.pending_snapshot = 0
    pr.become_probe()
    # Wait for the follower to answer (heartbeat response) before the next append.
    pr.probe_sent = True
    raft.logger.debug("snapshot status", id=raft.id, to=msg.from_, failed=msg.reject)


def on_unreachable(raft: Raft, msg: Message) -> None:
    """The driver could not send to a member: stop streaming, probe instead."""
    pr = raft.tracker.progress.get(msg.from_)
    if pr is not None and pr.state is ProgressState.REPLICATE:
        pr.become_probe()


def on_transfer_leader(raft: Raft, msg: Message) -> None:
    """Hand leadership to msg.from_: catch it up, then tell it to campaign (TIMEOUT_NOW)."""
    transferee = msg.from_
    pr = raft.tracker.progress.get(transferee)
    if pr is None or pr.is_learner:
        raft.logger.info("ignored transfer to non-voter", id=raft.id, to=transferee)
        return
    if raft.lead_transferee == transferee:
        return
    if transferee == raft.id:
        raft.logger.debug("ignored transfer to self", id=raft.id)
        return
    raft.logger.info("starting leader transfer", id=raft.id, term=raft.term, to=transferee)
    # The transfer must finish within one election timeout, or it is abandoned.
    raft.election_elapsed = 0
    raft.lead_transferee = transferee
    if pr.match == raft.log.last_index():
        raft.send(Message(type=MessageType.TIMEOUT_NOW, to=transferee))
    else:
        raft.send_append(transferee)


HANDLERS: dict[MessageType, Handler] = {
    MessageType.BEAT: on_beat,
    MessageType.CHECK_QUORUM: on_check_quorum,
    MessageType.PROP: on_propose,
    MessageType.READ_INDEX: on_read_index,
    MessageType.APP_RESP: on_append_resp,
    MessageType.HEARTBEAT_RESP: on_heartbeat_resp,
    MessageType.SNAP_STATUS: on_snap_status,
    MessageType.UNREACHABLE: on_unreachable,
    MessageType.TRANSFER_LEADER: on_transfer_leader,
}
