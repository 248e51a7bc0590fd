"""Raft wire codec: core dataclasses survive a trip through raft.proto bytes unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmd import errors
from swarmd.api import raft_pb2
from swarmd.manager.raftnode import codec
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

U64 = st.integers(min_value=0, max_value=2**64 - 1)
IDS = st.integers(min_value=1, max_value=2**63).map(RaftID)
WIRE_TYPES = [
    t
    for t in MessageType
    if t
    not in {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.CHECK_QUORUM,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
    }
]

entries = st.builds(
    Entry,
    term=U64,
    index=U64,
    type=st.sampled_from(list(EntryType)),
    data=st.binary(max_size=64),
)
conf_states = st.builds(
    ConfState, voters=st.frozensets(IDS, max_size=5), learners=st.frozensets(IDS, max_size=3)
)
metadata = st.builds(SnapshotMetadata, index=U64, term=U64, conf_state=conf_states)
snapshots = st.builds(Snapshot, metadata=metadata, data=st.binary(max_size=256))
messages = st.builds(
    Message,
    type=st.sampled_from(WIRE_TYPES),
    to=IDS,
    from_=IDS,
    term=U64,
    log_term=U64,
    index=U64,
    entries=st.lists(entries, max_size=4).map(tuple),
    commit=U64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=U64,
    context=st.binary(max_size=16),
)


def over_the_wire(msg: Message) -> Message:
    wire = codec.message_to_proto(msg).SerializeToString()
    return codec.message_from_proto(raft_pb2.RaftMessage.FromString(wire))


@settings(max_examples=100, derandomize=True)
@given(messages)
def test_codec_message_round_trip(msg):
    assert over_the_wire(msg) == msg


@settings(max_examples=50, derandomize=True)
@given(entries)
def test_codec_entry_round_trip(entry):
    wire = codec.entry_to_proto(entry).SerializeToString()
    assert codec.entry_from_proto(raft_pb2.Entry.FromString(wire)) == entry


@settings(max_examples=50, derandomize=True)
@given(snapshots)
def test_codec_snapshot_round_trip(snap):
    wire = codec.snapshot_to_proto(snap).SerializeToString()
    assert codec.snapshot_from_proto(raft_pb2.RaftSnapshot.FromString(wire)) == snap


@settings(max_examples=50, derandomize=True)
@given(conf_states)
def test_codec_conf_state_round_trip(conf):
    assert codec.decode_conf_state(codec.encode_conf_state(conf)) == conf


def test_codec_refuses_local_messages():
    with pytest.raises(errors.InvalidArgument, match="hup is local only"):
        codec.message_to_proto(Message(type=MessageType.HUP, to=RaftID(1), from_=RaftID(2)))


def test_codec_refuses_unknown_type_codes():
    with pytest.raises(errors.InvalidArgument, match="unknown type 99"):
        codec.message_from_proto(raft_pb2.RaftMessage(type=99))
    with pytest.raises(errors.InvalidArgument, match="entry 4 has unknown type 7"):
        codec.entry_from_proto(raft_pb2.Entry(index=4, type=7))  # type: ignore[arg-type]


def test_codec_refuses_damaged_membership():
    with pytest.raises(errors.InvalidArgument, match="cannot decode raft membership"):
        codec.decode_conf_state(b"\xff\xff\xff")
