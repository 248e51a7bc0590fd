"""Raft: the consensus state machine of one member (terms, roles, log, progress).

Raft core layer; `RawNode` (rawnode.py) wraps it for the driver. `step` does what every role
does with a message (term comparison, votes, elections), then hands it to the handler of the
current role for that message type, from the tables in `roles/`. One handler per (role,
message type); a type missing from a role's table is ignored there.

Nothing here does I/O, reads a clock or uses global randomness: time is `tick()`, randomness is
the injected `random.Random`, output is `self.msgs` plus the log's unstable part, collected into
a `Ready` by the RawNode.
"""

from __future__ import annotations

import dataclasses
import enum
import random

from swarmd.raft import confchange
from swarmd.raft.config import Config
from swarmd.raft.errors import (
    CompactedError,
    ConfChangeRejected,
    RaftInvariantError,
    UnavailableError,
)
from swarmd.raft.log import RaftLog
from swarmd.raft.logger import RaftLogger
from swarmd.raft.progress import ProgressTracker
from swarmd.raft.quorum import VoteResult
from swarmd.raft.readonly import ReadOnly
from swarmd.raft.roles import ROLE_HANDLERS
from swarmd.raft.storage import Storage
from swarmd.raft.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftID,
    ReadState,
    SoftState,
    StateType,
)

# VOTE context marking an election started by a leader transfer: voters grant it even while
# they still believe in a live leader (the leader asked for it).
TRANSFER_CONTEXT = b"transfer"

_VOTE_RESPONSE = {
    MessageType.VOTE: MessageType.VOTE_RESP,
    MessageType.PRE_VOTE: MessageType.PRE_VOTE_RESP,
}


class CampaignKind(enum.Enum):
    """Why an election starts."""

    PRE_ELECTION = "pre-election"
    ELECTION = "election"
    TRANSFER = "transfer"


class Raft:
    """One member's raft state. Not thread-safe; drive it from one place (the RawNode)."""

    def __init__(
        self, config: Config, storage: Storage, rng: random.Random, logger: RaftLogger
    ) -> None:
        """Load state from storage and start as a follower.

        Raises:
            ValueError: the config is invalid.
            RaftInvariantError: storage's hard state does not fit its log.
        """
        config.validate()
        self.id = config.id
        self.rng = rng
        self.logger = logger
        self.log = RaftLog(storage, logger)
        self.tracker = ProgressTracker(config.max_inflight)
        self.max_msg_size = config.max_size_per_msg
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote

        self.term = 0
        self.vote = NONE
        self.state = StateType.FOLLOWER
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.read_states: list[ReadState] = []
        self.pending_read_index: list[Message] = []
        self.msgs: list[Message] = []

        hard_state, conf_state = storage.initial_state()
        self.tracker.apply_conf_state(conf_state, self.log.last_index() + 1)
        if not hard_state.is_empty():
            self._load_hard_state(hard_state)
        if config.applied:
            self.log.applied_to(config.applied)
        self.become_follower(self.term, NONE)
        self.logger.info(
            "raft member started",
            id=self.id,
            term=self.term,
            commit=self.log.committed,
            applied=self.log.applied,
            last_index=self.log.last_index(),
            voters=sorted(self.tracker.voters),
            learners=sorted(self.tracker.learners),
        )

    def _load_hard_state(self, hard_state: HardState) -> None:
        if not self.log.committed <= hard_state.commit <= self.log.last_index():
            raise RaftInvariantError(
                f"hard state commit {hard_state.commit} is outside "
                f"[{self.log.committed}, {self.log.last_index()}]"
            )
        self.log.committed = hard_state.commit
        self.term = hard_state.term
        self.vote = hard_state.vote

    # State exposed to the RawNode

    def hard_state(self) -> HardState:
        """Term, vote and commit as they must be persisted."""
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def soft_state(self) -> SoftState:
        """Leader and role."""
        return SoftState(lead=self.lead, state=self.state)

    def promotable(self) -> bool:
        """May this member become leader (is it a voter)?"""
        return self.id in self.tracker.voters

    # Sending

    def send(self, msg: Message) -> None:
        """Queue a message, stamping our id and (except for votes, whose term is explicit and
        for forwarded proposals and reads, which carry none) our term."""
        if msg.type in _VOTE_RESPONSE or msg.type in _VOTE_RESPONSE.values():
            if msg.term == 0:
                raise RaftInvariantError(f"{msg.type.value} message without a term")
        elif msg.term != 0:
            raise RaftInvariantError(f"{msg.type.value} message with explicit term {msg.term}")
        elif msg.type not in (MessageType.PROP, MessageType.READ_INDEX):
            msg = dataclasses.replace(msg, term=self.term)
        if msg.from_ == NONE:
            msg = dataclasses.replace(msg, from_=self.id)
        self.msgs.append(msg)

    def send_append(self, to: RaftID, *, send_if_empty: bool = True) -> bool:
        """Send `to` the entries it needs (a snapshot when they are compacted).

        Returns whether a message was sent.
        """
        pr = self.tracker.progress.get(to)
        if pr is None or pr.is_paused():
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.log.term(prev_index)
            entries = self.log.entries(pr.next, self.max_msg_size)
        except (CompactedError, UnavailableError):
            return self._send_snapshot(to)
        if not entries and not send_if_empty:
            return False
        self.send(
            Message(
                type=MessageType.APP,
                to=to,
                index=prev_index,
                log_term=prev_term,
                entries=tuple(entries),
                commit=self.log.committed,
            )
        )
        pr.sent_entries(len(entries), entries[-1].index if entries else prev_index)
        return True

    def _send_snapshot(self, to: RaftID) -> bool:
        pr = self.tracker.progress[to]
        if not pr.recent_active:
            self.logger.debug("snapshot not sent to inactive member", to=to)
            return False
        snapshot = self.log.snapshot()
        if snapshot.is_empty():
            raise RaftInvariantError("entries are compacted but there is no snapshot")
        index = snapshot.metadata.index
        self.logger.info("sending snapshot", to=to, index=index, match=pr.match)
        pr.become_snapshot(index)
        self.send(Message(type=MessageType.SNAP, to=to, snapshot=snapshot))
        return True

    def send_heartbeat(self, to: RaftID, context: bytes) -> None:
        """Send a heartbeat; its commit never exceeds what `to` is known to have."""
        pr = self.tracker.progress[to]
        commit = min(pr.match, self.log.committed)
        self.send(Message(type=MessageType.HEARTBEAT, to=to, commit=commit, context=context))

    def bcast_append(self) -> None:
        """Send every other member what it needs."""
        for member in self.tracker.members():
            if member != self.id:
                self.send_append(member)

    def bcast_heartbeat(self, context: bytes = b"") -> None:
        """Heartbeat every other member (carrying the newest pending read context)."""
        for member in self.tracker.members():
            if member != self.id:
                self.send_heartbeat(member, context)

    # Role changes

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        # Raft §5.2: each member draws its own timeout, so split votes are rare.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )
        self.lead_transferee = NONE
        self.tracker.reset_votes()
        last = self.log.last_index()
        for member, pr in self.tracker.progress.items():
            pr.match = last if member == self.id else 0
            pr.next = last + 1
            pr.recent_active = member == self.id
            pr.become_probe()
            pr.next = last + 1
        self.pending_conf_index = 0
        self.read_only = ReadOnly()

    def become_follower(self, term: int, lead: RaftID) -> None:
        """Follow `lead` (NONE: unknown) in `term`."""
        self._reset(term)
        self.state = StateType.FOLLOWER
        self.lead = lead
        self.logger.info("became follower", id=self.id, term=term, lead=lead)

    def become_pre_candidate(self) -> None:
        """Ask for pre-votes for term + 1 without changing the term or the vote."""
        if self.state is StateType.LEADER:
            raise RaftInvariantError("leader cannot become pre-candidate")
        # Only votes and state change: a pre-candidate keeps its term and vote (dissertation
        # §9.6), so a failed pre-election disturbs nobody.
        self.tracker.reset_votes()
        self.state = StateType.PRE_CANDIDATE
        self.lead = NONE
        self.logger.info("became pre-candidate", id=self.id, term=self.term)

    def become_candidate(self) -> None:
        """Start a real election: next term, vote for ourselves."""
        if self.state is StateType.LEADER:
            raise RaftInvariantError("leader cannot become candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE
        self.logger.info("became candidate", id=self.id, term=self.term)

    def become_leader(self) -> None:
        """Won the election: replicate from here, starting with an empty entry of our term."""
        if self.state is StateType.FOLLOWER:
            raise RaftInvariantError("follower cannot become leader without an election")
        self._reset(self.term)
        self.lead = self.id
        self.state = StateType.LEADER
        own = self.tracker.progress.get(self.id)
        if own is not None:
            own.become_replicate()
        # Conf changes in the log may not be applied yet: wait for them before proposing one.
        self.pending_conf_index = self.log.last_index()
        # The empty entry lets the leader commit (and so learn the commit index) in its own term
        # (Raft §5.4.2, §8).
        self.append_entries([Entry(term=0, index=0)])
        self.logger.info("became leader", id=self.id, term=self.term)

    # Elections

    def hup(self, kind: CampaignKind) -> None:
        """Start an election if this member may."""
        if self.state is StateType.LEADER:
            self.logger.debug("ignoring hup as leader", id=self.id)
            return
        if not self.promotable():
            self.logger.warning("not promotable, not campaigning", id=self.id)
            return
        if any(e.type is EntryType.CONF_CHANGE for e in self._unapplied_conf_changes()):
            self.logger.warning("pending conf change not applied, not campaigning", id=self.id)
            return
        self.logger.info("starting election", id=self.id, term=self.term, kind=kind.value)
        self.campaign(kind)

    def _unapplied_conf_changes(self) -> list[Entry]:
        """Committed conf changes not applied yet (bootstrap ones are applied already)."""
        return [
            e
            for e in self.log.next_committed()
            if e.type is EntryType.CONF_CHANGE
            and not confchange.is_noop(self.tracker.conf_state(), ConfChange.unmarshal(e.data))
        ]

    def campaign(self, kind: CampaignKind) -> None:
        """Become (pre-)candidate and ask every voter for its vote."""
        if kind is CampaignKind.PRE_ELECTION:
            self.become_pre_candidate()
            vote_type, term = MessageType.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            vote_type, term = MessageType.VOTE, self.term
        if self.poll(self.id, vote_type, granted=True) is VoteResult.WON:
            # A single voter wins at once.
            self._won(kind)
            return
        context = TRANSFER_CONTEXT if kind is CampaignKind.TRANSFER else b""
        for voter in sorted(self.tracker.voters):
            if voter == self.id:
                continue
            self.send(
                Message(
                    type=vote_type,
                    to=voter,
                    term=term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    context=context,
                )
            )

    def _won(self, kind: CampaignKind) -> None:
        if kind is CampaignKind.PRE_ELECTION:
            self.campaign(CampaignKind.ELECTION)
        else:
            self.become_leader()
            self.bcast_append()

    def poll(self, member: RaftID, vote_type: MessageType, *, granted: bool) -> VoteResult:
        """Count a (pre-)vote and return the election result so far."""
        self.logger.debug(
            "received vote", id=self.id, type=vote_type.value, source=member, granted=granted
        )
        self.tracker.record_vote(member, granted)
        return self.tracker.tally_votes()[2]

    def campaign_transfer(self) -> None:
        """A leader asked us to take over (TIMEOUT_NOW): elect now, skipping the pre-vote."""
        self.hup(CampaignKind.TRANSFER)

    def on_vote_response(self, msg: Message) -> None:
        """A (pre-)candidate counts a response: win, lose, or keep waiting."""
        result = self.poll(msg.from_, msg.type, granted=not msg.reject)
        if result is VoteResult.WON:
            kind = (
                CampaignKind.PRE_ELECTION
                if self.state is StateType.PRE_CANDIDATE
                else CampaignKind.ELECTION
            )
            self._won(kind)
        elif result is VoteResult.LOST:
            self.become_follower(self.term, NONE)

    # The common step

    def step(self, msg: Message) -> None:
        """Process one message: term rules first, then the role's handler (Raft fig. 2)."""
        if msg.term > self.term:
            if not self._accept_higher_term(msg):
                return
        elif 0 < msg.term < self.term:
            self._reply_to_stale(msg)
            return

        if msg.type is MessageType.HUP:
            self.hup(CampaignKind.PRE_ELECTION if self.pre_vote else CampaignKind.ELECTION)
        elif msg.type in _VOTE_RESPONSE:
            self._handle_vote_request(msg)
        else:
            handler = ROLE_HANDLERS[self.state].get(msg.type)
            if handler is None:
                self.logger.debug(
                    "ignored message", id=self.id, state=self.state.value, type=msg.type.value
                )
                return
            handler(self, msg)

    def _accept_higher_term(self, msg: Message) -> bool:
        """React to a message from a later term; False when it must be dropped."""
        if msg.type in _VOTE_RESPONSE:
            force = msg.context == TRANSFER_CONTEXT
            in_lease = (
                self.check_quorum
                and self.lead != NONE
                and self.election_elapsed < self.election_timeout
            )
            if in_lease and not force:
                # We heard from a leader within the minimum election timeout: a member that
                # cannot hear it must not depose it (dissertation §4.2.3).
                self.logger.info(
                    "ignored vote request within leader lease",
                    id=self.id,
                    term=self.term,
                    source=msg.from_,
                    msg_term=msg.term,
                )
                return False
        if msg.type is MessageType.PRE_VOTE:
            return True  # never change term for a pre-vote request
        if msg.type is MessageType.PRE_VOTE_RESP and not msg.reject:
            return True  # the term becomes ours when the pre-election is won
        lead = msg.from_ if msg.type in _FROM_LEADER else NONE
        self.logger.info(
            "received message of higher term",
            id=self.id,
            term=self.term,
            msg_term=msg.term,
            type=msg.type.value,
            source=msg.from_,
        )
        self.become_follower(msg.term, lead)
        return True

    def _reply_to_stale(self, msg: Message) -> None:
        if (self.check_quorum or self.pre_vote) and msg.type in (
            MessageType.HEARTBEAT,
            MessageType.APP,
        ):
            # A stale leader (partitioned, or whose term we bumped) learns our term from this
            # and steps down; without it, it would keep us from ever electing (pre-vote and
            # check-quorum stop us from bumping its term by campaigning).
            self.send(Message(type=MessageType.APP_RESP, to=msg.from_))
        elif msg.type is MessageType.PRE_VOTE:
            self.send(
                Message(type=MessageType.PRE_VOTE_RESP, to=msg.from_, term=self.term, reject=True)
            )
        else:
            self.logger.debug(
                "ignored message of lower term",
                id=self.id,
                term=self.term,
                msg_term=msg.term,
                type=msg.type.value,
                source=msg.from_,
            )

    def _handle_vote_request(self, msg: Message) -> None:
        can_vote = (
            self.vote == msg.from_
            or (self.vote == NONE and self.lead == NONE)
            or (msg.type is MessageType.PRE_VOTE and msg.term > self.term)
        )
        response = _VOTE_RESPONSE[msg.type]
        if can_vote and self.log.is_up_to_date(msg.index, msg.log_term):
            self.logger.info(
                "granted vote", id=self.id, term=self.term, type=msg.type.value, to=msg.from_
            )
            self.send(Message(type=response, to=msg.from_, term=msg.term))
            if msg.type is MessageType.VOTE:
                self.election_elapsed = 0
                self.vote = msg.from_
        else:
            self.logger.info(
                "rejected vote", id=self.id, term=self.term, type=msg.type.value, to=msg.from_
            )
            self.send(Message(type=response, to=msg.from_, term=self.term, reject=True))

    # Ticks

    def tick(self) -> None:
        """One unit of logical time."""
        if self.state is StateType.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup(CampaignKind.PRE_ELECTION if self.pre_vote else CampaignKind.ELECTION)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(type=MessageType.CHECK_QUORUM))
            if self.state is StateType.LEADER and self.lead_transferee != NONE:
                self.logger.info("leader transfer timed out", to=self.lead_transferee)
                self.lead_transferee = NONE
        if self.state is not StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(type=MessageType.BEAT))

    # Log operations

    def append_entries(self, entries: list[Entry]) -> None:
        """Leader: stamp entries with our term and the next indexes, append, maybe commit."""
        last = self.log.last_index()
        stamped = [
            dataclasses.replace(e, term=self.term, index=last + 1 + i)
            for i, e in enumerate(entries)
        ]
        last = self.log.append(stamped)
        own = self.tracker.progress.get(self.id)
        if own is not None:
            own.maybe_update(last)
        self.maybe_commit()

    def maybe_commit(self) -> bool:
        """Commit what a majority of voters have, if it is of our term (Raft §5.4.2)."""
        return self.log.maybe_commit(self.tracker.committed(), self.term)

    # Membership

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Switch to the membership after a committed conf change; return the new one.

        A change that does not fit (possible only when it was proposed against a membership
        that changed since) is ignored on every member alike, with a warning.
        """
        current = self.tracker.conf_state()
        try:
            conf = confchange.apply(current, change)
        except ConfChangeRejected as err:
            self.logger.warning("ignored invalid conf change", id=self.id, reason=str(err))
            return current
        if conf == current:
            return conf
        self.logger.info(
            "applied conf change",
            id=self.id,
            type=change.type.name.lower(),
            node=change.node_id,
            voters=sorted(conf.voters),
            learners=sorted(conf.learners),
        )
        self.tracker.apply_conf_state(conf, self.log.last_index() + 1)
        if self.state is not StateType.LEADER:
            return conf
        if self.id not in conf.voters:
            # Removed (or demoted) leader: stop leading; the others elect a new one.
            self.become_follower(self.term, NONE)
            return conf
        # A smaller quorum may commit more now; a new member gets its first probe at once
        # (rather than at the next heartbeat).
        if self.maybe_commit():
            self.bcast_append()
        else:
            known = current.voters | current.learners
            for member in self.tracker.members():
                if member != self.id:
                    self.send_append(member, send_if_empty=member not in known)
        if self.lead_transferee != NONE and self.lead_transferee not in conf.voters:
            self.lead_transferee = NONE
        return conf


_FROM_LEADER = frozenset({MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP})
