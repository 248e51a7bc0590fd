"""The interaction environment: raft members driven by script commands, output as transcript.

Used by test_interaction.py. Each command of a testdata file runs here and returns the text
it produced: Ready contents, messages delivered or dropped, log lines at the chosen level,
status. Election timeouts are exact (FixedRandom), so transcripts are stable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from swarmd.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RaftID,
    Ready,
    Snapshot,
)
from tests.raft.harness import FixedRandom, Member

LEVELS = {"debug": 10, "info": 20, "warning": 30, "none": 100}


def fmt_entry(entry: Entry) -> str:
    """`term/index` then the payload (a conf change decoded)."""
    if entry.type is EntryType.CONF_CHANGE:
        cc = ConfChange.unmarshal(entry.data)
        return f"{entry.term}/{entry.index} conf:{cc.type.name.lower()} {cc.node_id}"
    return f'{entry.term}/{entry.index} "{entry.data.decode()}"'


def fmt_entries(entries: tuple[Entry, ...] | list[Entry]) -> str:
    return "[" + ", ".join(fmt_entry(e) for e in entries) + "]"


def fmt_conf(conf: ConfState) -> str:
    text = "voters=(" + ",".join(str(v) for v in sorted(conf.voters)) + ")"
    if conf.learners:
        text += " learners=(" + ",".join(str(v) for v in sorted(conf.learners)) + ")"
    return text


def fmt_snapshot(snap: Snapshot) -> str:
    meta = snap.metadata
    return f"index={meta.index} term={meta.term} {fmt_conf(meta.conf_state)}"


def fmt_message(msg: Message) -> str:
    """One line per message, with only the fields its type uses."""
    parts = [f"{msg.from_}->{msg.to} {msg.type.value} term={msg.term}"]
    t = msg.type
    if t in (MessageType.APP, MessageType.VOTE, MessageType.PRE_VOTE):
        parts.append(f"log={msg.log_term}/{msg.index}")
    if t is MessageType.APP:
        parts.append(f"commit={msg.commit}")
        if msg.entries:
            parts.append(f"entries={fmt_entries(msg.entries)}")
    if t in (MessageType.APP_RESP, MessageType.READ_INDEX_RESP):
        parts.append(f"index={msg.index}")
    if t is MessageType.HEARTBEAT:
        parts.append(f"commit={msg.commit}")
    if msg.reject:
        parts.append("rejected")
        if t is MessageType.APP_RESP:
            parts.append(f"hint={msg.log_term}/{msg.reject_hint}")
    if msg.snapshot is not None:
        parts.append(f"snapshot=({fmt_snapshot(msg.snapshot)})")
    if msg.context:
        parts.append(f"context={msg.context.decode()}")
    return " ".join(parts)


def fmt_ready(member_id: RaftID, rd: Ready) -> list[str]:
    lines = [f"> {member_id} handling Ready"]
    if rd.soft_state is not None:
        lines.append(f"  soft-state: {rd.soft_state.state.value} lead={rd.soft_state.lead}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        lines.append(f"  hard-state: term={hs.term} vote={hs.vote} commit={hs.commit}")
    if rd.snapshot is not None:
        lines.append(f"  snapshot: {fmt_snapshot(rd.snapshot)}")
    if rd.entries:
        lines.append(f"  entries: {fmt_entries(rd.entries)}")
    if rd.committed_entries:
        lines.append(f"  committed: {fmt_entries(rd.committed_entries)}")
    if rd.read_states:
        reads = ", ".join(f"{r.request_ctx.decode()}@{r.index}" for r in rd.read_states)
        lines.append(f"  read-states: {reads}")
    if rd.messages:
        lines.append("  messages:")
        lines.extend(f"    {fmt_message(m)}" for m in rd.messages)
    return lines


@dataclass
class TranscriptLogger:
    """A RaftLogger writing `LEVEL id event k=v ...` lines into the environment's output."""

    env: InteractionEnv
    member: RaftID

    def _log(self, level: str, event: str, fields: dict[str, object]) -> None:
        if LEVELS[level] < self.env.level:
            return
        rest = " ".join(f"{k}={v}" for k, v in fields.items() if k != "id")
        self.env.out.append(f"  {level.upper()} {self.member} {event} {rest}".rstrip())

    def debug(self, event: str, **fields: object) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: object) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._log("warning", event, fields)


def _ids(text: str) -> list[RaftID]:
    text = text.strip("()")
    return [RaftID(int(x)) for x in text.split(",") if x]


@dataclass
class InteractionEnv:
    """Members, the in-flight message queue and the partition, driven by commands."""

    members: dict[RaftID, Member] = field(default_factory=dict)
    queue: list[Message] = field(default_factory=list)
    groups: list[set[RaftID]] = field(default_factory=list)
    level: int = LEVELS["info"]
    out: list[str] = field(default_factory=list)

    def run(self, command: str) -> str:
        """Run one command line; returns its transcript."""
        self.out = []
        name, *args = command.split()
        handler: Callable[[list[str]], None] | None = getattr(
            self, "cmd_" + name.replace("-", "_"), None
        )
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        try:
            handler(args)
        except ProposalDropped as err:
            self.out.append(f"error: {err}")
        return "\n".join(self.out) if self.out else "ok"

    def _member(self, arg: str) -> Member:
        return self.members[RaftID(int(arg))]

    # Commands

    def cmd_add_nodes(self, args: list[str]) -> None:
        """add-nodes N [voters=(1,2,3)] [pre-vote=false] [check-quorum=false] [jitter=(0,2,4)].

        The first add-nodes founds the cluster (bootstrap with the voters, by default all the
        new members); later ones add empty members, which must join by conf change. jitter
        gives each member extra election timeout ticks.
        """
        count = int(args[0])
        opts = dict(a.split("=", 1) for a in args[1:])
        first = max(self.members, default=0) + 1
        new = [RaftID(first + i) for i in range(count)]
        default_voters = "" if self.members else ",".join(str(i) for i in new)
        voters = _ids(opts.get("voters", default_voters))
        jitter = [int(j) for j in opts.get("jitter", "").strip("()").split(",") if j]
        for position, member_id in enumerate(new):
            config = Config(
                id=member_id,
                election_tick=int(opts.get("election-tick", "10")),
                heartbeat_tick=int(opts.get("heartbeat-tick", "1")),
                max_inflight=int(opts.get("max-inflight", "256")),
                pre_vote=opts.get("pre-vote", "true") == "true",
                check_quorum=opts.get("check-quorum", "true") == "true",
            )
            member = Member(
                member_id,
                MemoryStorage(),
                config,
                FixedRandom(jitter[position] if position < len(jitter) else 0),
                logger=TranscriptLogger(self, member_id),
            )
            if voters:
                # What a driver does when founding a cluster: bootstrap, persist, apply.
                member.node.bootstrap(voters)
                member.handle_ready()
            self.members[member_id] = member

    def cmd_log_level(self, args: list[str]) -> None:
        self.level = LEVELS[args[0]]

    def cmd_campaign(self, args: list[str]) -> None:
        self._member(args[0]).node.campaign()

    def cmd_propose(self, args: list[str]) -> None:
        index = self._member(args[0]).node.propose(args[1].encode())
        self.out.append(f"proposed at index {index}")

    def cmd_propose_conf_change(self, args: list[str]) -> None:
        """propose-conf-change ID add-learner|add-node|remove-node NODE."""
        kind = ConfChangeType[args[1].upper().replace("-", "_")]
        change = ConfChange(kind, RaftID(int(args[2])))
        index = self._member(args[0]).node.propose_conf_change(change)
        self.out.append(f"proposed at index {index}")

    def cmd_transfer_leader(self, args: list[str]) -> None:
        self._member(args[0]).node.transfer_leader(RaftID(int(args[1])))

    def cmd_read_index(self, args: list[str]) -> None:
        self._member(args[0]).node.read_index(args[1].encode())

    def cmd_tick(self, args: list[str]) -> None:
        """tick ID COUNT."""
        member = self._member(args[0])
        for _ in range(int(args[1])):
            member.node.tick()

    def cmd_tick_election(self, args: list[str]) -> None:
        member = self._member(args[0])
        for _ in range(member.config.election_tick):
            member.node.tick()

    def cmd_tick_heartbeat(self, args: list[str]) -> None:
        member = self._member(args[0])
        for _ in range(member.config.heartbeat_tick):
            member.node.tick()

    def cmd_partition(self, args: list[str]) -> None:
        """partition 1,2 3: messages only flow inside a group."""
        self.groups = [set(_ids(g)) for g in args]

    def cmd_heal(self, args: list[str]) -> None:
        self.groups = []

    def cmd_compact(self, args: list[str]) -> None:
        """compact ID INDEX: snapshot at INDEX (the applied index) and drop the log before it."""
        member = self._member(args[0])
        member.compact(int(args[1]))
        self.out.append(f"first index {member.storage.first_index()}")

    def cmd_crash(self, args: list[str]) -> None:
        """crash ID: forget everything not persisted; messages to it are dropped."""
        self._member(args[0]).alive = False

    def cmd_restart(self, args: list[str]) -> None:
        self._member(args[0]).restart()

    def cmd_process_ready(self, args: list[str]) -> None:
        for arg in args:
            self._process(self._member(arg))

    def cmd_deliver_msgs(self, args: list[str]) -> None:
        targets = [RaftID(int(a)) for a in args] or sorted(self.members)
        for target in targets:
            self._deliver(target)

    def cmd_stabilize(self, args: list[str]) -> None:
        targets = [RaftID(int(a)) for a in args] or sorted(self.members)
        while True:
            busy = False
            for target in targets:
                busy |= self._process(self.members[target])
            for target in targets:
                busy |= self._deliver(target)
            if not busy:
                return

    def cmd_status(self, args: list[str]) -> None:
        for arg in args:
            st = self._member(arg).node.status()
            hs, ss = st.hard_state, st.soft_state
            self.out.append(
                f"{st.id}: {ss.state.value} term={hs.term} lead={ss.lead} vote={hs.vote} "
                f"commit={hs.commit} applied={st.applied} last={st.last_index} "
                f"{fmt_conf(st.conf_state)}"
            )
            self.out.extend(f"  {m}: {p}" for m, p in st.progress.items())

    def cmd_raft_log(self, args: list[str]) -> None:
        member = self._member(args[0])
        log = member.node.raft.log
        self.out.append(f"first={log.first_index()} " + fmt_entries(log.all_entries()))

    def cmd_state(self, args: list[str]) -> None:
        """state ID: the state machine's applied data."""
        member = self._member(args[0])
        self.out.append(", ".join(f"{i}:{d.decode()}" for i, d in member.state) or "empty")

    def cmd_read_states(self, args: list[str]) -> None:
        member = self._member(args[0])
        reads = [f"{r.request_ctx.decode()}@{r.index}" for r in member.read_states]
        self.out.append(", ".join(reads) or "none")

    # Mechanics

    def _show(self, line: str) -> None:
        """Transcript lines of message traffic, hidden at log level `none`."""
        if self.level < LEVELS["none"]:
            self.out.append(line)

    def _process(self, member: Member) -> bool:
        if not member.alive or not member.node.has_ready():
            return False
        mark = len(self.out)
        rd = member.handle_ready()
        if rd is None:
            return False
        if self.level < LEVELS["none"]:
            self.out[mark:mark] = fmt_ready(member.id, rd)
        self.queue.extend(rd.messages)
        return True

    def _connected(self, a: RaftID, b: RaftID) -> bool:
        if not self.groups:
            return True
        return any(a in g and b in g for g in self.groups)

    def _deliver(self, target: RaftID) -> bool:
        msgs = [m for m in self.queue if m.to == target]
        if not msgs:
            return False
        self.queue = [m for m in self.queue if m.to != target]
        member = self.members[target]
        self._show(f"> {target} receiving messages")
        for msg in msgs:
            sender = self.members.get(msg.from_)
            if not member.alive or not self._connected(msg.from_, target):
                self._show(f"  {fmt_message(msg)} DROPPED")
                if msg.type is MessageType.SNAP and sender is not None:
                    sender.node.report_snapshot(target, failed=True)
                continue
            self._show(f"  {fmt_message(msg)}")
            member.step(msg)
            if msg.type is MessageType.SNAP and sender is not None:
                sender.node.report_snapshot(target, failed=False)
        return True
