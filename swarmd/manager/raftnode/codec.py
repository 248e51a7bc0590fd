"""Codec: the raft core's dataclasses <-> the raft.proto wire messages.

Manager layer, raft node. The transport (`transport.py`) encodes every outgoing `Message` and
decodes every incoming one here; the durable storage (`durable.py`) stores a snapshot's
membership as an encoded `SnapshotMetadata`. The core (`swarmd.raft`) never sees protobuf.

Message types travel as small integers (RaftMessage.type is a uint32) fixed by `_TYPE_CODES`:
the numbering is part of the wire format, so codes are only ever added, never reused. Only
messages that cross the network have a code; local ones (hup, beat, prop...) are rejected.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from swarmd import errors
from swarmd.api import raft_pb2
from swarmd.raft import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    RaftID,
    Snapshot,
    SnapshotMetadata,
)

_TYPE_CODES: dict[MessageType, int] = {
    MessageType.APP: 1,
    MessageType.APP_RESP: 2,
    MessageType.VOTE: 3,
    MessageType.VOTE_RESP: 4,
    MessageType.PRE_VOTE: 5,
    MessageType.PRE_VOTE_RESP: 6,
    MessageType.SNAP: 7,
    MessageType.HEARTBEAT: 8,
    MessageType.HEARTBEAT_RESP: 9,
    MessageType.TIMEOUT_NOW: 10,
    MessageType.READ_INDEX: 11,
    MessageType.READ_INDEX_RESP: 12,
    MessageType.TRANSFER_LEADER: 13,  # a follower forwards a transfer request to its leader
    MessageType.PROP: 14,  # a follower forwards a proposal (the core may do so)
}
_CODE_TYPES = {code: kind for kind, code in _TYPE_CODES.items()}

_ENTRY_TYPES = {
    EntryType.NORMAL: raft_pb2.ENTRY_TYPE_NORMAL,
    EntryType.CONF_CHANGE: raft_pb2.ENTRY_TYPE_CONF_CHANGE,
}
_PB_ENTRY_TYPES = {v: k for k, v in _ENTRY_TYPES.items()}


def entry_to_proto(entry: Entry) -> raft_pb2.Entry:
    """The wire form of a log entry."""
    return raft_pb2.Entry(
        term=entry.term, index=entry.index, type=_ENTRY_TYPES[entry.type], data=entry.data
    )


def entry_from_proto(pb: raft_pb2.Entry) -> Entry:
    """A log entry from the wire.

    Raises:
        errors.InvalidArgument: the entry type is unknown.
    """
    kind = _PB_ENTRY_TYPES.get(pb.type)
    if kind is None:
        raise errors.InvalidArgument(f"raft entry {pb.index} has unknown type {pb.type}")
    return Entry(term=pb.term, index=pb.index, type=kind, data=pb.data)


def metadata_to_proto(meta: SnapshotMetadata) -> raft_pb2.SnapshotMetadata:
    """The wire form of snapshot metadata; member ids are sorted so encodings are stable."""
    return raft_pb2.SnapshotMetadata(
        voters=sorted(meta.conf_state.voters),
        learners=sorted(meta.conf_state.learners),
        index=meta.index,
        term=meta.term,
    )


def metadata_from_proto(pb: raft_pb2.SnapshotMetadata) -> SnapshotMetadata:
    """Snapshot metadata from the wire (or from the storage's `conf` column)."""
    conf = ConfState(
        voters=frozenset(RaftID(v) for v in pb.voters),
        learners=frozenset(RaftID(v) for v in pb.learners),
    )
    return SnapshotMetadata(index=pb.index, term=pb.term, conf_state=conf)


def snapshot_to_proto(snap: Snapshot) -> raft_pb2.RaftSnapshot:
    """The wire form of a snapshot (payload included)."""
    return raft_pb2.RaftSnapshot(data=snap.data, metadata=metadata_to_proto(snap.metadata))


def snapshot_from_proto(pb: raft_pb2.RaftSnapshot) -> Snapshot:
    """A snapshot from the wire."""
    return Snapshot(metadata=metadata_from_proto(pb.metadata), data=pb.data)


def encode_conf_state(conf: ConfState) -> bytes:
    """A membership as bytes (a SnapshotMetadata with only members), for `SnapshotMeta.conf`."""
    return metadata_to_proto(SnapshotMetadata(conf_state=conf)).SerializeToString()


def decode_conf_state(data: bytes) -> ConfState:
    """The membership stored by `encode_conf_state` (empty bytes: no members).

    Raises:
        errors.InvalidArgument: the bytes are not an encoded SnapshotMetadata.
    """
    try:
        pb = raft_pb2.SnapshotMetadata.FromString(data)
    except DecodeError as err:
        raise errors.InvalidArgument(f"cannot decode raft membership: {err}") from err
    return metadata_from_proto(pb).conf_state


def message_to_proto(msg: Message) -> raft_pb2.RaftMessage:
    """The wire form of a message.

    Raises:
        errors.InvalidArgument: a local message type, which never leaves its member.
    """
    code = _TYPE_CODES.get(msg.type)
    if code is None:
        raise errors.InvalidArgument(f"raft message type {msg.type.value} is local only")
    pb = raft_pb2.RaftMessage(
        type=code,
        to=msg.to,
        term=msg.term,
        log_term=msg.log_term,
        index=msg.index,
        entries=[entry_to_proto(e) for e in msg.entries],
        commit=msg.commit,
        reject=msg.reject,
        reject_hint=msg.reject_hint,
        context=msg.context,
    )
    # `from` is a Python keyword: the generated constructor cannot take it.
    setattr(pb, "from", msg.from_)
    if msg.snapshot is not None:
        pb.snapshot.CopyFrom(snapshot_to_proto(msg.snapshot))
    return pb


def message_from_proto(pb: raft_pb2.RaftMessage) -> Message:
    """A message from the wire.

    Raises:
        errors.InvalidArgument: the type code or an entry type is unknown.
    """
    kind = _CODE_TYPES.get(pb.type)
    if kind is None:
        raise errors.InvalidArgument(f"raft message has unknown type {pb.type}")
    return Message(
        type=kind,
        to=RaftID(pb.to),
        from_=RaftID(getattr(pb, "from")),
        term=pb.term,
        log_term=pb.log_term,
        index=pb.index,
        entries=tuple(entry_from_proto(e) for e in pb.entries),
        commit=pb.commit,
        snapshot=snapshot_from_proto(pb.snapshot) if pb.HasField("snapshot") else None,
        reject=pb.reject,
        reject_hint=pb.reject_hint,
        context=pb.context,
    )


__all__ = [
    "decode_conf_state",
    "encode_conf_state",
    "entry_from_proto",
    "entry_to_proto",
    "message_from_proto",
    "message_to_proto",
    "metadata_from_proto",
    "metadata_to_proto",
    "snapshot_from_proto",
    "snapshot_to_proto",
]
