"""A raft member as a driver would run it, for tests: RawNode + MemoryStorage + state machine.

`Member.handle_ready` carries out one Ready in the order `rawnode.py` prescribes (persist,
collect messages, apply, advance). Storage is what "survives a crash": `Member.restart` builds a
new RawNode from it, with the state machine rebuilt from the snapshot and the log replayed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from swarmd.raft import (
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    RaftID,
    RaftLogger,
    RawNode,
    ReadState,
    Ready,
)


class FixedRandom(random.Random):
    """A Random whose randrange returns a fixed offset: election timeouts are exact.

    The election timeout becomes election_tick + offset (capped at 2 * election_tick - 1).
    """

    def __init__(self, offset: int = 0) -> None:
        super().__init__(0)
        self.offset = offset

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        low, high = (0, start) if stop is None else (start, stop)
        return low + min(self.offset, high - low - 1)


def encode_state(state: list[tuple[int, bytes]]) -> bytes:
    """Snapshot payload of the test state machine: the applied (index, data) pairs."""
    return json.dumps([[i, d.hex()] for i, d in state]).encode()


def decode_state(data: bytes) -> list[tuple[int, bytes]]:
    """Inverse of encode_state (an empty payload is the empty state)."""
    if not data:
        return []
    return [(i, bytes.fromhex(d)) for i, d in json.loads(data)]


@dataclass
class Member:
    """One member: its durable storage, its RawNode and its (volatile) state machine."""

    id: RaftID
    storage: MemoryStorage
    config: Config
    rng: random.Random
    logger: RaftLogger | None = None
    node: RawNode = field(init=False)
    state: list[tuple[int, bytes]] = field(default_factory=list)  # applied non-empty NORMAL data
    applied: list[Entry] = field(default_factory=list)  # every entry applied since (re)start
    conf_state: ConfState = field(default_factory=ConfState)
    read_states: list[ReadState] = field(default_factory=list)
    alive: bool = True

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """(Re)build the RawNode from storage; the state machine restarts from the snapshot."""
        snapshot = self.storage.snapshot()
        self.state = decode_state(snapshot.data)
        self.conf_state = snapshot.metadata.conf_state
        self.applied = []
        self.read_states = []
        config = Config(
            id=self.config.id,
            election_tick=self.config.election_tick,
            heartbeat_tick=self.config.heartbeat_tick,
            max_inflight=self.config.max_inflight,
            max_size_per_msg=self.config.max_size_per_msg,
            pre_vote=self.config.pre_vote,
            check_quorum=self.config.check_quorum,
            applied=snapshot.metadata.index,
        )
        self.node = RawNode(config, self.storage, rng=self.rng, logger=self.logger)
        self.alive = True

    def handle_ready(self) -> Ready | None:
        """Carry out one Ready; returns it (None when there was nothing to do)."""
        rd = self.take_ready()
        if rd is not None:
            self.finish_ready(rd)
        return rd

    def take_ready(self) -> Ready | None:
        """The next Ready, not carried out yet (None when there is nothing to do)."""
        if not self.node.has_ready():
            return None
        return self.node.ready()

    def finish_ready(self, rd: Ready) -> None:
        """Persist, apply and advance a Ready from `take_ready` (the caller sends)."""
        # 1. persist
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        # 2. (the caller sends rd.messages)  3. apply
        if rd.snapshot is not None:
            self.state = decode_state(rd.snapshot.data)
            self.conf_state = rd.snapshot.metadata.conf_state
        for entry in rd.committed_entries:
            self.apply(entry)
        self.read_states.extend(rd.read_states)
        self.node.advance(rd)

    def apply(self, entry: Entry) -> None:
        """Apply one committed entry to the state machine (conf changes to the RawNode)."""
        self.applied.append(entry)
        if entry.type is EntryType.CONF_CHANGE:
            self.conf_state = self.node.apply_conf_change(ConfChange.unmarshal(entry.data))
        elif entry.data:
            self.state.append((entry.index, entry.data))

    def compact(self, index: int, keep: int = 0) -> None:
        """Snapshot the state machine at the applied `index`, compact the log before it."""
        snap_state = [(i, d) for i, d in self.state if i <= index]
        if index != self.node.raft.log.applied:
            raise ValueError(f"member {self.id} can only snapshot at applied index")
        self.storage.create_snapshot(index, self.conf_state, encode_state(snap_state))
        if index - keep > self.storage.first_index() - 1:
            self.storage.compact(index - keep)

    def step(self, msg: Message) -> None:
        """Deliver a message."""
        self.node.step(msg)
