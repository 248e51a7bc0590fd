"""Value types of the raft core: entries, messages, hard state, snapshots, membership.

Raft core layer (pure, stdlib only). Every other raft module and the driver
(`swarmd.manager.raftnode`, which converts these to and from protobuf at the wire and disk
boundary) use them. All values are frozen dataclasses: once built, nobody mutates them, so the
core can hand the same objects to the driver in a `Ready` without copying.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import NewType

RaftID = NewType("RaftID", int)
"""A raft member id: a positive integer, distinct from the cluster node id."""

NONE = RaftID(0)
"""No member: no vote cast, no known leader."""


class EntryType(enum.Enum):
    """What an entry's data holds."""

    NORMAL = 0
    CONF_CHANGE = 1


class MessageType(enum.Enum):
    """Kinds of messages. Local ones never cross the network (their term is 0)."""

    HUP = "hup"  # local: start an election
    BEAT = "beat"  # local: the leader should send heartbeats
    CHECK_QUORUM = "check-quorum"  # local: the leader checks that a quorum is active
    PROP = "prop"  # local: propose entries
    UNREACHABLE = "unreachable"  # local: the driver could not reach a peer
    SNAP_STATUS = "snap-status"  # local: the driver finished (or failed) sending a snapshot
    TRANSFER_LEADER = "transfer-leader"  # local (or forwarded): move leadership to `from_`
    APP = "app"
    APP_RESP = "app-resp"
    VOTE = "vote"
    VOTE_RESP = "vote-resp"
    PRE_VOTE = "pre-vote"
    PRE_VOTE_RESP = "pre-vote-resp"
    SNAP = "snap"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESP = "heartbeat-resp"
    TIMEOUT_NOW = "timeout-now"
    READ_INDEX = "read-index"
    READ_INDEX_RESP = "read-index-resp"


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.CHECK_QUORUM,
        MessageType.PROP,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
    }
)


class StateType(enum.Enum):
    """The role a member plays in its current term."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. `data` is opaque to the core except for CONF_CHANGE entries."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership at some log index: who votes and who only learns."""

    voters: frozenset[RaftID] = frozenset()
    learners: frozenset[RaftID] = frozenset()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    """Where a snapshot sits in the log and the membership at that point."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application state up to `metadata.index`; `data` is opaque to the core."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    def is_empty(self) -> bool:
        """True for the zero snapshot (no index): a fresh log has one."""
        return self.metadata.index == 0


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message of the same Ready is sent (Raft fig. 2)."""

    term: int = 0
    vote: RaftID = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        """True for the state of a member that never voted, saw a term or committed."""
        return self == EMPTY_HARD_STATE


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the driver wants to watch: who leads and our own role."""

    lead: RaftID
    state: StateType


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the applied index reaches `index`."""

    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """A raft message. Field use per type follows etcd's raftpb.Message.

    `index`/`log_term` name the entry preceding `entries` (APP), the candidate's last entry
    (VOTE), or the acknowledged/rejected index (APP_RESP). `reject_hint` and `log_term` on a
    rejection let the leader skip a whole term of conflicting entries. `context` carries the
    read-index request context or the leader-transfer marker of a VOTE.
    """

    type: MessageType
    to: RaftID = NONE
    from_: RaftID = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


class ConfChangeType(enum.Enum):
    """Single-step membership changes (Raft §6 / dissertation §4.1, one at a time)."""

    ADD_NODE = 0  # add a voter, or promote a learner to voter
    REMOVE_NODE = 1
    ADD_LEARNER = 2  # add a non-voting member that receives the log


_CONF_CHANGE_HEADER = struct.Struct(">BQ")


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change, carried in the data of a CONF_CHANGE entry.

    `context` is opaque to the core (swarmkit puts the marshalled RaftMember there).
    """

    type: ConfChangeType
    node_id: RaftID
    context: bytes = b""

    def marshal(self) -> bytes:
        """Encode for an entry's data: type (1 byte), node id (8 bytes, big-endian), context."""
        return _CONF_CHANGE_HEADER.pack(self.type.value, self.node_id) + self.context

    @classmethod
    def unmarshal(cls, data: bytes) -> ConfChange:
        """Decode what `marshal` produced.

        Raises:
            ValueError: the data is too short or names an unknown change type.
        """
        if len(data) < _CONF_CHANGE_HEADER.size:
            raise ValueError(f"conf change data of {len(data)} bytes is too short")
        kind, node_id = _CONF_CHANGE_HEADER.unpack_from(data)
        return cls(ConfChangeType(kind), RaftID(node_id), data[_CONF_CHANGE_HEADER.size :])


def entry_size(entry: Entry) -> int:
    """Bytes an entry counts for in size limits: its payload plus a fixed header."""
    return len(entry.data) + 16


def limit_size(entries: list[Entry], max_size: int) -> list[Entry]:
    """The longest prefix of `entries` within `max_size` bytes, but never fewer than one."""
    if not entries:
        return entries
    total = entry_size(entries[0])
    for i in range(1, len(entries)):
        total += entry_size(entries[i])
        if total > max_size:
            return entries[:i]
    return entries
