"""RawNode: the driver's API to the raft core (tick, step, propose, ready, advance).

Raft core layer. The driver (`swarmd.manager.raftnode`) owns one RawNode and calls it from one
place only (it is not thread-safe, and not async: every call returns at once). The contract,
as in etcd's RawNode:

0. Start. A member founding a cluster calls `bootstrap(voters)` once and handles the first
   Ready before anything else; a member joining one starts with empty storage and learns the
   membership from the leader; a restarting member starts from its storage.
1. Input. Call `tick()` at a fixed interval (the unit of `Config.election_tick`), `step(msg)`
   for every message received from a peer, and `propose`/`propose_conf_change`/`read_index`/
   `transfer_leader` for the application's requests.
2. Output. When `has_ready()`, take `rd = ready()` and handle it **in this order**:
   a. persist `rd.snapshot` (if any), then append `rd.entries` and save `rd.hard_state`
      (if any) to durable storage -- fsynced when `rd.must_sync` -- and to the `Storage`
      the RawNode reads (for MemoryStorage: `apply_snapshot`, `append`, `set_hard_state`);
   b. only then send `rd.messages` (a vote or an acknowledgement sent before the state it
      promises is durable could be forgotten in a crash, breaking Raft's safety). One
      exception (Raft thesis 10.2.1): when the Ready changes neither term nor vote, the
      leader's APP and HEARTBEAT messages (the first part of `rd.split_messages()`) may go
      out before step
      a, so followers write the entries while the leader does. That is safe because the
      leader's own copy only counts towards a commit once a follower's answer is stepped,
      which happens after this Ready's `advance`, so after its entries are durable;
   c. apply `rd.snapshot` to the application, then `rd.committed_entries` in order; for a
      CONF_CHANGE entry decode `ConfChange.unmarshal(entry.data)` and call
      `apply_conf_change` before applying the next entry;
   d. serve the reads in `rd.read_states` once the applied index reaches each one's index;
   e. call `advance(rd)`. The next `ready()` must not be taken before that.
   Nothing from a Ready is persisted twice or skipped: after a crash the driver restarts a
   RawNode from its storage with `Config.applied` set to what the application applied.
3. Feedback. `report_unreachable(id)` when a send to a peer failed, and
   `report_snapshot(id, failed)` when sending a snapshot message finished.

Proposals are only accepted by the leader; everywhere else they raise `ProposalDropped`
(the driver forwards writes to the leader itself, as swarmkit's raft proxy does).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from swarmd.raft.config import Config
from swarmd.raft.errors import InvalidMessage, ProposalDropped
from swarmd.raft.logger import DiscardLogger, RaftLogger
from swarmd.raft.raft import Raft
from swarmd.raft.storage import Storage
from swarmd.raft.types import (
    LOCAL_MESSAGES,
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftID,
    ReadState,
    Snapshot,
    SoftState,
    StateType,
)

# Leader-to-follower replication: safe to send while the leader's own writes are in flight.
_SENT_EARLY = frozenset({MessageType.APP, MessageType.HEARTBEAT})


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the driver must do after the last `advance`, in the order of the fields.

    Attributes:
        soft_state: leader and role, when either changed (None otherwise).
        hard_state: term, vote and commit to persist, when changed (None otherwise).
        snapshot: a snapshot received from the leader, to persist and apply (None if none).
        entries: entries to append to stable storage (they may replace a stored suffix).
        messages: messages to send once the above is durable.
        committed_entries: entries to apply to the state machine, in order.
        read_states: confirmed linearizable reads, to serve once applied reaches their index.
        must_sync: the writes must be fsynced (entries, vote or term changed).
        keeps_vote: neither term nor vote changed and no snapshot came: the leader's
            replication messages need not wait for the writes (`split_messages`).
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    committed_entries: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False
    keeps_vote: bool = False

    def split_messages(self) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
        """(messages that may be sent before the writes, messages that must wait for them).

        A leader's appends and heartbeats promise nothing about this member's storage
        (Raft thesis 10.2.1), so they may overlap the leader's own disk write, unless this
        Ready changes the term or vote they are sent under.
        """
        if not self.keeps_vote:
            return (), self.messages
        early = tuple(m for m in self.messages if m.type in _SENT_EARLY)
        if not early:
            return (), self.messages
        return early, tuple(m for m in self.messages if m.type not in _SENT_EARLY)


@dataclass(frozen=True, slots=True)
class Status:
    """A summary of a member's state, for `swarmctl`, logs and tests."""

    id: RaftID
    hard_state: HardState
    soft_state: SoftState
    applied: int
    last_index: int
    lead_transferee: RaftID
    conf_state: ConfState
    progress: dict[RaftID, str] = field(default_factory=dict)


class RawNode:
    """The thread-unsafe, I/O-free API to one raft member (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        *,
        rng: random.Random,
        logger: RaftLogger | None = None,
    ) -> None:
        """Start (or restart) a member from what `storage` holds.

        Args:
            config: settings; `config.applied` is where the application stands on restart.
            storage: the persisted log; a new member of a new cluster has the founding
                membership in it (MemoryStorage(conf_state=...)), a joining member an empty one.
            rng: the only source of randomness (election timeouts); seed it in tests.
            logger: where to report; events are discarded by default.

        Raises:
            ValueError: the config is invalid.
        """
        self.raft = Raft(config, storage, rng, logger or DiscardLogger())
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    def bootstrap(self, voters: Iterable[RaftID]) -> None:
        """Found a new cluster with these voters (this member among them).

        The membership goes into the log as ADD_NODE entries of term 1, committed by fiat:
        every founder bootstraps the same list, and a member joining later learns it from
        the leader's log (or snapshot). Call it once, on an empty log, before anything else;
        the entries then come out of the first Ready like any other. Handle that Ready before
        serving anything: a founder that crashes before persisting it has no membership.

        Raises:
            ValueError: the log is not empty, or `voters` is empty.
        """
        raft = self.raft
        founders = sorted(set(voters))
        if not founders:
            raise ValueError("cannot bootstrap a cluster without voters")
        if raft.log.last_index() != 0 or not raft.hard_state().is_empty():
            raise ValueError(f"raft member {raft.id:x} cannot bootstrap a non-empty log")
        entries = [
            Entry(
                term=1,
                index=i + 1,
                type=EntryType.CONF_CHANGE,
                data=ConfChange(ConfChangeType.ADD_NODE, voter).marshal(),
            )
            for i, voter in enumerate(founders)
        ]
        # The entries are of term 1, so the member is in term 1 too (a log never holds an entry
        # of a later term than its member's); the first election is for term 2.
        raft.become_follower(1, NONE)
        raft.log.append(entries)
        raft.log.committed = len(entries)
        # Applied now so the member can campaign before the driver applied them; applying
        # them again from the Ready is a no-op.
        for voter in founders:
            raft.apply_conf_change(ConfChange(ConfChangeType.ADD_NODE, voter))

    # Input

    def tick(self) -> None:
        """Advance logical time by one tick (elections, heartbeats, check-quorum)."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now instead of waiting for the election timeout."""
        self.raft.step(Message(type=MessageType.HUP))

    def propose(self, data: bytes) -> int:
        """Append `data` to the log (leader only); returns the index it got.

        The entry is not committed yet: it is, once it shows up in `committed_entries`.

        Raises:
            ProposalDropped: this member is not the leader or is transferring leadership.
        """
        self.raft.step(Message(type=MessageType.PROP, entries=(Entry(term=0, index=0, data=data),)))
        return self.raft.log.last_index()

    def propose_batch(self, datas: Sequence[bytes]) -> int:
        """Append several entries in one proposal (leader only); returns the last index.

        The entries get consecutive indexes ending at the returned one, and the followers are
        sent them together: one append message each instead of one per entry.

        Raises:
            ProposalDropped: this member is not the leader or is transferring leadership.
            ValueError: datas is empty.
        """
        if not datas:
            raise ValueError("propose_batch needs at least one entry")
        entries = tuple(Entry(term=0, index=0, data=d) for d in datas)
        self.raft.step(Message(type=MessageType.PROP, entries=entries))
        return self.raft.log.last_index()

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose one membership change (leader only, one at a time); returns its index.

        Raises:
            ProposalDropped: this member is not the leader.
            ConfChangeRejected: another change is not applied yet, or this one does not fit.
        """
        entry = Entry(term=0, index=0, type=EntryType.CONF_CHANGE, data=change.marshal())
        self.raft.step(Message(type=MessageType.PROP, entries=(entry,)))
        return self.raft.log.last_index()

    def step(self, msg: Message) -> None:
        """Process a message received from a peer.

        Raises:
            InvalidMessage: a local message type, or a message without a sender.
        """
        if msg.type in LOCAL_MESSAGES:
            raise InvalidMessage(f"{msg.type.value} message from the network cannot be stepped")
        if msg.from_ == NONE:
            raise InvalidMessage(f"{msg.type.value} message without a sender")
        self.raft.step(msg)

    def read_index(self, request_ctx: bytes) -> None:
        """Ask for a linearizable read; the answer comes as a ReadState with that context.

        `request_ctx` must be unique among pending reads (the driver uses a counter).

        Raises:
            ProposalDropped: no leader is known (or we are campaigning).
        """
        self.raft.step(Message(type=MessageType.READ_INDEX, context=request_ctx))

    def transfer_leader(self, transferee: RaftID) -> None:
        """Ask the leader to hand leadership to `transferee` (forwarded by followers).

        Raises:
            ProposalDropped: no leader is known.
        """
        if self.raft.lead == NONE:
            raise ProposalDropped(f"raft member {self.raft.id:x} knows no leader to transfer from")
        self.raft.step(Message(type=MessageType.TRANSFER_LEADER, from_=transferee))

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Apply a committed membership change (see the module docstring, step 2c)."""
        return self.raft.apply_conf_change(change)

    def report_unreachable(self, member: RaftID) -> None:
        """Sending to `member` failed: the leader stops streaming to it and probes."""
        self.raft.step(Message(type=MessageType.UNREACHABLE, from_=member))

    def report_snapshot(self, member: RaftID, *, failed: bool) -> None:
        """Sending a snapshot to `member` finished (failed: it must be sent again)."""
        self.raft.step(Message(type=MessageType.SNAP_STATUS, from_=member, reject=failed))

    # Output

    def has_ready(self) -> bool:
        """Is there anything for the driver to do?"""
        raft = self.raft
        return bool(
            raft.soft_state() != self._prev_soft
            or (not raft.hard_state().is_empty() and raft.hard_state() != self._prev_hard)
            or raft.log.unstable.snapshot is not None
            or raft.log.unstable.entries
            or raft.msgs
            or raft.log.has_next_committed()
            or raft.read_states
        )

    def ready(self) -> Ready:
        """Collect the work for the driver; call `advance` with it once done."""
        raft = self.raft
        soft = raft.soft_state()
        hard = raft.hard_state()
        entries = tuple(raft.log.unstable_entries())
        vote_changed = hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard and not hard.is_empty() else None,
            snapshot=raft.log.unstable.snapshot,
            entries=entries,
            messages=tuple(raft.msgs),
            committed_entries=tuple(raft.log.next_committed()),
            read_states=tuple(raft.read_states),
            must_sync=bool(entries or vote_changed),
            keeps_vote=not vote_changed and raft.log.unstable.snapshot is None,
        )
        raft.msgs = []
        raft.read_states = []
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver handled `rd`: drop what it persisted, note what it applied."""
        log = self.raft.log
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.metadata.index)
            log.applied_to(max(log.applied, rd.snapshot.metadata.index))
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)

    # Introspection

    def status(self) -> Status:
        """The member's current state (progress of each member when leader)."""
        raft = self.raft
        progress: dict[RaftID, str] = {}
        if raft.state is StateType.LEADER:
            progress = {m: repr(pr) for m, pr in sorted(raft.tracker.progress.items())}
        return Status(
            id=raft.id,
            hard_state=raft.hard_state(),
            soft_state=raft.soft_state(),
            applied=raft.log.applied,
            last_index=raft.log.last_index(),
            lead_transferee=raft.lead_transferee,
            conf_state=raft.tracker.conf_state(),
            progress=progress,
        )
