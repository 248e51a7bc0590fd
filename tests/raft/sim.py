"""A deterministic simulator of raft clusters: chaos, then healing, with safety checked.

Used by test_sim.py; also runnable to replay one seed with a trace:

    .venv/bin/python -m tests.raft.sim --seed 17 [--size 5] [--trace]

One `random.Random(seed)` decides everything (the members' election timeouts draw from their
own Randoms seeded from it), so a seed always replays the same run. Each tick of the chaos
phase: members tick; due messages are delivered in random order, some dropped, duplicated or
delayed, none across a partition; members crash (losing all they did not persist through a
Ready), some right after sending, and restart from their MemoryStorage; the leader gets
proposals, membership changes (add a learner, promote it, remove a voter) and leadership
transfers; any member gets linearizable reads; members compact their logs. After every tick
the checker verifies election safety, log matching, leader completeness, state-machine safety
and that every read covers all that was committed before it started.
The healing phase restarts everyone, heals the network and requires one leader, converged
logs, and every acknowledged proposal applied everywhere.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field

from swarmd.raft import (
    ConfChange,
    ConfChangeRejected,
    ConfChangeType,
    Config,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RaftID,
    StateType,
)
from tests.raft.harness import Member


class SimulationFailure(AssertionError):
    """A safety or liveness property did not hold."""


@dataclass(frozen=True)
class Chaos:
    """Probabilities per tick (or per message) of the faults the simulator injects."""

    ticks: int = 200
    drop: float = 0.05
    duplicate: float = 0.03
    max_delay: int = 3
    partition: float = 0.015
    heal: float = 0.08
    crash: float = 0.01
    crash_after_send: float = 0.01
    restart: float = 0.25
    propose: float = 0.35
    conf_change: float = 0.03
    transfer: float = 0.01
    read: float = 0.1
    max_conf_changes: int = 4
    compact_every: int = 12
    keep_entries: int = 3


@dataclass(order=True)
class InFlight:
    due: int
    seq: int
    msg: Message = field(compare=False)


@dataclass
class Proposal:
    data: bytes
    proposer: RaftID
    index: int
    acked: bool = False


class Checker:
    """The safety properties, checked after every tick over every live member."""

    def __init__(self) -> None:
        self.leaders: dict[int, RaftID] = {}  # term -> the one leader of that term
        self.entries: dict[tuple[int, int], tuple[EntryType, bytes, int]] = {}
        self.committed: dict[int, tuple[int, bytes, int]] = {}  # index -> term, data, seen at
        self.applied: dict[int, tuple[int, bytes]] = {}  # index -> term, data
        self.applied_seen: dict[RaftID, int] = {}

    def check(self, sim: Simulation) -> None:
        for member in sim.live_members():
            raft = member.node.raft
            self._election_safety(raft.id, raft.state, raft.term)
            self._log_matching(member)
            self._record_committed(member)
            self._state_machine_safety(member)
        for member in sim.live_members():
            if member.node.raft.state is StateType.LEADER:
                self._leader_completeness(member)

    def _election_safety(self, member: RaftID, state: StateType, term: int) -> None:
        if state is not StateType.LEADER:
            return
        other = self.leaders.setdefault(term, member)
        if other != member:
            raise SimulationFailure(f"election safety: {other} and {member} lead term {term}")

    def _log_matching(self, member: Member) -> None:
        # Same (index, term) => same entry and same previous term; by induction the logs are
        # then identical up to that index (Raft §5.3, Log Matching).
        log = member.node.raft.log
        prev_term = log.term(log.first_index() - 1)
        for entry in log.all_entries():
            key = (entry.index, entry.term)
            value = (entry.type, entry.data, prev_term)
            known = self.entries.setdefault(key, value)
            if known != value:
                raise SimulationFailure(
                    f"log matching: member {member.id} entry {key} is {value}, elsewhere {known}"
                )
            prev_term = entry.term

    def _record_committed(self, member: Member) -> None:
        raft = member.node.raft
        log = raft.log
        for index in range(max(log.first_index(), log.committed - 50), log.committed + 1):
            entry = log.slice(index, index + 1, 1 << 30)[0]
            known = self.committed.setdefault(index, (entry.term, entry.data, raft.term))
            if known[:2] != (entry.term, entry.data):
                raise SimulationFailure(
                    f"committed entry {index} differs: member {member.id} has "
                    f"{entry.term}/{entry.data!r}, elsewhere {known[0]}/{known[1]!r}"
                )

    def _leader_completeness(self, leader: Member) -> None:
        raft = leader.node.raft
        log = raft.log
        for index, (term, data, seen_at) in self.committed.items():
            if seen_at > raft.term or index < log.first_index():
                continue
            if index > log.last_index() or log.term(index) != term:
                raise SimulationFailure(
                    f"leader completeness: leader {raft.id} of term {raft.term} lacks "
                    f"committed entry {term}/{index} {data!r}"
                )

    def _state_machine_safety(self, member: Member) -> None:
        start = self.applied_seen.get(member.id, 0)
        for entry in member.applied[start:]:
            value = (entry.term, entry.data)
            known = self.applied.setdefault(entry.index, value)
            if known != value:
                raise SimulationFailure(
                    f"state machine safety: member {member.id} applied {value} at "
                    f"{entry.index}, another member applied {known}"
                )
        self.applied_seen[member.id] = len(member.applied)

    def forget_applied_position(self, member: RaftID) -> None:
        self.applied_seen[member] = 0


class Simulation:
    """One seeded run over `size` founding members."""

    def __init__(self, seed: int, size: int, chaos: Chaos | None = None, trace: bool = False):
        self.seed = seed
        self.size = size
        self.chaos = chaos or Chaos()
        self.rng = random.Random(seed)
        self.trace_on = trace
        self.time = 0
        self.seq = 0
        self.network: list[InFlight] = []
        self.groups: list[set[RaftID]] = []
        self.members: dict[RaftID, Member] = {}
        self.shut_down: set[RaftID] = set()
        self.proposals: dict[bytes, Proposal] = {}
        self.conf_changes = 0
        self.final: Proposal | None = None
        self.checker = Checker()
        self.reads: dict[bytes, int] = {}  # read context -> index its answer must reach
        self.reads_seen: dict[RaftID, int] = {}
        self.stats: dict[str, int] = dict.fromkeys(
            ("crashes", "partitions", "snapshots", "dropped", "duplicated", "reads"), 0
        )
        founders = [RaftID(i) for i in range(1, size + 1)]
        for member_id in founders:
            member = self._new_member(member_id)
            # Founding a cluster is one step for the driver: bootstrap and persist it.
            member.node.bootstrap(founders)
            member.handle_ready()
        self.next_id = size + 1

    def trace(self, text: str) -> None:
        if self.trace_on:
            print(f"[t={self.time}] {text}")

    def _new_member(self, member_id: RaftID) -> Member:
        # A third of the seeds run the paper's algorithm (no pre-vote, no check-quorum):
        # more disruptive elections, so more chances to catch a voting bug.
        paper = self.seed % 3 == 2
        config = Config(
            id=member_id,
            election_tick=10,
            heartbeat_tick=2,
            max_inflight=4,
            max_size_per_msg=64,
            pre_vote=not paper,
            check_quorum=not paper,
        )
        member = Member(member_id, MemoryStorage(), config, random.Random(self.rng.getrandbits(32)))
        self.members[member_id] = member
        return member

    def live_members(self) -> list[Member]:
        return [m for i, m in sorted(self.members.items()) if m.alive and i not in self.shut_down]

    def leader(self) -> Member | None:
        leaders = [m for m in self.live_members() if m.node.raft.state is StateType.LEADER]
        return max(leaders, key=lambda m: m.node.raft.term) if leaders else None

    # The run

    def run(self) -> None:
        """Chaos, then healing and convergence; raises SimulationFailure on a violation."""
        for _ in range(self.chaos.ticks):
            self.tick(chaotic=True)
        self.heal_and_converge()

    def tick(self, *, chaotic: bool) -> None:
        self.time += 1
        for member in self.live_members():
            member.node.tick()
        self._deliver(chaotic=chaotic)
        if chaotic:
            self._faults()
            self._client_requests()
        self._process_readies(chaotic=chaotic)
        self._compact()
        self.checker.check(self)

    def _faults(self) -> None:
        c, rng = self.chaos, self.rng
        if self.groups and rng.random() < c.heal:
            self.trace("heal")
            self.groups = []
        elif not self.groups and rng.random() < c.partition:
            ids = sorted(self.members)
            rng.shuffle(ids)
            cut = rng.randrange(1, len(ids))
            self.groups = [set(ids[:cut]), set(ids[cut:])]
            self.stats["partitions"] += 1
            self.trace(f"partition {self.groups}")
        for member_id, member in sorted(self.members.items()):
            if member_id in self.shut_down:
                continue
            if member.alive and rng.random() < c.crash:
                self.trace(f"crash {member_id}")
                self.stats["crashes"] += 1
                member.alive = False
            elif not member.alive and rng.random() < c.restart:
                self.trace(f"restart {member_id}")
                member.restart()
                self._restarted(member_id)

    def _restarted(self, member_id: RaftID) -> None:
        # A restarted member replays its log and forgets its pending reads.
        self.checker.forget_applied_position(member_id)
        self.reads_seen[member_id] = 0

    def _client_requests(self) -> None:
        self._read(self.rng.choice(self.live_members() or [None]))
        leader = self.leader()
        if leader is None:
            return
        if self.rng.random() < self.chaos.transfer:
            target = self.rng.choice(sorted(leader.node.raft.tracker.voters))
            self.trace(f"transfer leadership {leader.id} -> {target}")
            try:
                leader.node.transfer_leader(target)
            except ProposalDropped:
                return
        if self.rng.random() < self.chaos.propose:
            # Sometimes several at once, as the driver batches concurrent proposals.
            count = 1 if self.rng.random() < 0.7 else self.rng.randint(2, 4)
            datas = [f"v{self.seed}-{self.time}-{k}".encode() for k in range(count)]
            try:
                last = leader.node.propose_batch(datas)
            except ProposalDropped:
                return
            for k, data in enumerate(datas):
                self.proposals[data] = Proposal(data, leader.id, last - count + 1 + k)
        if self.conf_changes < self.chaos.max_conf_changes and self.rng.random() < (
            self.chaos.conf_change
        ):
            self._propose_conf_change(leader)

    def _read(self, member: Member | None) -> None:
        """Ask `member` for a linearizable read; remember what its answer must cover."""
        if member is None or self.rng.random() >= self.chaos.read:
            return
        ctx = f"read-{self.time}-{member.id}".encode()
        try:
            member.node.read_index(ctx)
        except ProposalDropped:
            return
        # Everything committed anywhere before the read started must be visible to it.
        self.reads[ctx] = max(self.checker.committed, default=0)

    def _check_reads(self, member: Member) -> None:
        for rs in member.read_states[self.reads_seen.get(member.id, 0) :]:
            required = self.reads.get(rs.request_ctx)
            if required is None:
                raise SimulationFailure(f"member {member.id} got an unknown read {rs}")
            if rs.index < required:
                raise SimulationFailure(
                    f"linearizability: read {rs.request_ctx!r} on member {member.id} got "
                    f"index {rs.index}, but {required} was committed before it started"
                )
            self.stats["reads"] += 1
        self.reads_seen[member.id] = len(member.read_states)

    def _propose_conf_change(self, leader: Member) -> None:
        conf = leader.node.raft.tracker.conf_state()
        if conf.learners:
            change = ConfChange(ConfChangeType.ADD_NODE, min(conf.learners))
        elif len(conf.voters) > 3:
            victim = self.rng.choice(sorted(conf.voters))
            change = ConfChange(ConfChangeType.REMOVE_NODE, victim)
        else:
            change = ConfChange(ConfChangeType.ADD_LEARNER, RaftID(self.next_id))
        try:
            leader.node.propose_conf_change(change)
        except (ConfChangeRejected, ProposalDropped):
            return
        self.trace(f"propose {change.type.name} {change.node_id} on {leader.id}")
        self.conf_changes += 1
        if change.type is ConfChangeType.ADD_LEARNER:
            self._new_member(change.node_id)
            self.next_id += 1

    def _deliver(self, *, chaotic: bool) -> None:
        due = [f for f in self.network if f.due <= self.time]
        self.network = [f for f in self.network if f.due > self.time]
        if chaotic:
            self.rng.shuffle(due)  # reordering
        for flight in due:
            self._deliver_one(flight.msg, chaotic=chaotic)

    def _connected(self, a: RaftID, b: RaftID) -> bool:
        return not self.groups or any(a in g and b in g for g in self.groups)

    def _deliver_one(self, msg: Message, *, chaotic: bool) -> None:
        target = self.members.get(msg.to)
        sender = self.members.get(msg.from_)
        lost = (
            target is None
            or not target.alive
            or msg.to in self.shut_down
            or not self._connected(msg.from_, msg.to)
            or (chaotic and self.rng.random() < self.chaos.drop)
        )
        sender_up = sender is not None and sender.alive and msg.from_ not in self.shut_down
        if lost or target is None:
            self.stats["dropped"] += 1
            if sender is not None and sender_up:
                if msg.type is MessageType.SNAP:
                    sender.node.report_snapshot(msg.to, failed=True)
                elif msg.type is MessageType.APP and self.rng.random() < 0.5:
                    sender.node.report_unreachable(msg.to)  # as a failed gRPC send would
            return
        if chaotic and self.rng.random() < self.chaos.duplicate:
            self.stats["duplicated"] += 1
            self._send(msg, extra_delay=self.rng.randint(1, 5))
        target.step(msg)
        if msg.type is MessageType.SNAP:
            self.stats["snapshots"] += 1
        if msg.type is MessageType.SNAP and sender is not None and sender_up:
            sender.node.report_snapshot(msg.to, failed=False)

    def _send(self, msg: Message, extra_delay: int = 0) -> None:
        self.seq += 1
        delay = self.rng.randint(0, self.chaos.max_delay) + extra_delay
        self.network.append(InFlight(self.time + 1 + delay, self.seq, msg))

    def _process_readies(self, *, chaotic: bool) -> None:
        for member in self.live_members():
            rd = member.take_ready()
            while rd is not None:
                # As the driver does: a leader's appends go out while it writes them itself.
                early, late = rd.split_messages()
                for msg in early:
                    self._send(msg)
                if chaotic and early and self.rng.random() < self.chaos.crash_after_send:
                    # Its entries are out, but not in its own storage.
                    self.trace(f"crash {member.id} before persisting")
                    self.stats["crashes"] += 1
                    member.alive = False
                    break
                member.finish_ready(rd)
                for msg in late:
                    self._send(msg)
                self._ack_proposals(member, rd.committed_entries)
                self._shut_down_removed(rd.committed_entries)
                self._check_reads(member)
                if chaotic and rd.messages and self.rng.random() < self.chaos.crash_after_send:
                    # The worst moment: its promises (votes, acks) are out, only what it
                    # persisted survives.
                    self.trace(f"crash {member.id} after sending")
                    self.stats["crashes"] += 1
                    member.alive = False
                    break
                rd = member.take_ready()

    def _shut_down_removed(self, entries: tuple[Entry, ...]) -> None:
        # A committed removal is final: swarmkit shuts the removed manager down.
        for entry in entries:
            if entry.type is EntryType.CONF_CHANGE:
                cc = ConfChange.unmarshal(entry.data)
                if cc.type is ConfChangeType.REMOVE_NODE and cc.node_id not in self.shut_down:
                    self.trace(f"shut down removed member {cc.node_id}")
                    self.shut_down.add(cc.node_id)

    def _ack_proposals(self, member: Member, entries: tuple[Entry, ...]) -> None:
        for entry in member.applied[-len(entries) :] if entries else []:
            proposal = self.proposals.get(entry.data)
            if proposal is not None and proposal.proposer == member.id:
                if entry.index != proposal.index:
                    raise SimulationFailure(
                        f"proposal {entry.data!r} applied at {entry.index}, "
                        f"proposed at {proposal.index}"
                    )
                proposal.acked = True

    def _compact(self) -> None:
        every = self.chaos.compact_every
        for member in self.live_members():
            applied = member.node.raft.log.applied
            snap_index = member.storage.snapshot().metadata.index
            if applied - snap_index >= every:
                member.compact(applied, keep=self.chaos.keep_entries)

    # Healing

    def heal_and_converge(self, limit: int = 400) -> None:
        """Heal and restart everything; require a leader and converged logs within `limit`."""
        self.groups = []
        for member_id, member in sorted(self.members.items()):
            if not member.alive and member_id not in self.shut_down:
                member.restart()
                self._restarted(member_id)
        self.trace("healing")
        final: tuple[RaftID, int] | None = None  # who got the final proposal, in what term
        for _ in range(limit):
            self.tick(chaotic=False)
            leader = self.leader()
            if leader is None:
                continue
            if final != (leader.id, leader.node.raft.term):
                # A new leader (the last one was removed or deposed): propose it again; an
                # unacknowledged proposal may be lost.
                data = f"final-{self.time}".encode()
                try:
                    index = leader.node.propose(data)
                except ProposalDropped:
                    continue
                self.proposals[data] = self.final = Proposal(data, leader.id, index)
                final = (leader.id, leader.node.raft.term)
                continue
            if self._converged(leader):
                self._check_acknowledged(leader)
                return
        raise SimulationFailure(
            f"no convergence within {limit} ticks after healing: "
            + "; ".join(self._describe(m) for m in self.live_members())
        )

    def _cluster(self, leader: Member) -> list[Member]:
        conf = leader.conf_state
        return [self.members[i] for i in sorted(conf.voters | conf.learners)]

    def _converged(self, leader: Member) -> bool:
        if self.final is None or not self.final.acked:
            return False
        lraft = leader.node.raft
        for member in self._cluster(leader):
            raft = member.node.raft
            if not member.alive or member.id in self.shut_down:
                return False
            if (raft.log.last_index(), raft.log.last_term()) != (
                lraft.log.last_index(),
                lraft.log.last_term(),
            ):
                return False
            if raft.log.applied != lraft.log.last_index():
                return False
            if member.id != leader.id and raft.lead != leader.id:
                return False
        return True

    def _check_acknowledged(self, leader: Member) -> None:
        for member in self._cluster(leader):
            applied = dict(member.state)
            for proposal in self.proposals.values():
                if proposal.acked and applied.get(proposal.index) != proposal.data:
                    raise SimulationFailure(
                        f"acknowledged proposal {proposal.data!r} at index {proposal.index} "
                        f"lost on member {member.id} (has {applied.get(proposal.index)!r})"
                    )
            if member.state != self._cluster(leader)[0].state:
                raise SimulationFailure(f"member {member.id} state differs after convergence")

    @staticmethod
    def _describe(member: Member) -> str:
        raft = member.node.raft
        return (
            f"{raft.id}: {raft.state.value} term={raft.term} lead={raft.lead} "
            f"last={raft.log.last_index()} commit={raft.log.committed} "
            f"applied={raft.log.applied} voters={sorted(raft.tracker.voters)}"
        )


def size_for(seed: int) -> int:
    """Even seeds simulate 3 founding members, odd seeds 5."""
    return 3 if seed % 2 == 0 else 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args(argv)
    size = args.size or size_for(args.seed)
    sim = Simulation(args.seed, size, trace=args.trace)
    try:
        sim.run()
    except SimulationFailure as err:
        print(f"seed {args.seed} (size {size}) FAILED: {err}")
        return 1
    print(f"seed {args.seed} (size {size}) ok: {sim.time} ticks, {len(sim.proposals)} proposals")
    return 0


if __name__ == "__main__":
    sys.exit(main())
