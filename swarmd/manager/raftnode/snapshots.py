"""Store snapshots of a raft member: encoded and decoded off the event loop.

Manager layer, raft node; used by `RaftNode` (node.py) only. A raft snapshot's data is a
`store_pb2.Snapshot`: the store at the applied index plus the address book. At 100,000 tasks
encoding or decoding one takes seconds, longer than an election timeout, so both run on a
worker thread: `start_encoding` takes what it needs on the loop (references to the stored
objects, which never change once stored) and encodes them on a thread while the member goes
on; `decode` parses a received snapshot and builds the store's tables for the store to adopt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from swarmd import errors
from swarmd.api import store_pb2
from swarmd.manager.store import BuiltTables, MemoryStore, SnapshotRefs, embedded
from swarmd.raft import ConfState, Snapshot

SNAPSHOT_FORMAT = 1  # store_pb2.Snapshot.version
_STORE_FIELD = store_pb2.Snapshot.DESCRIPTOR.fields_by_name["store"].number


@dataclass(frozen=True, slots=True)
class EncodedSnapshot:
    """A snapshot's data with the applied index and membership it was taken at."""

    index: int
    conf: ConfState
    data: bytes


def encode(refs: SnapshotRefs, membership: store_pb2.ClusterSnapshot, index: int) -> bytes:
    """The data of a raft snapshot of the stored objects `refs` at `index` (thread-safe)."""
    head = store_pb2.Snapshot(
        version=SNAPSHOT_FORMAT, membership=membership, store_version=index
    ).SerializeToString()
    # Fields may come in any order on the wire: the store goes after the head.
    return head + embedded(_STORE_FIELD, MemoryStore.encode_snapshot(refs))


def start_encoding(
    store: MemoryStore, membership: store_pb2.ClusterSnapshot, index: int, conf: ConfState
) -> asyncio.Task[EncodedSnapshot]:
    """Take the store's state now (it must be at `index`) and encode it on a worker thread."""
    refs = store.snapshot_refs()

    def run() -> EncodedSnapshot:
        return EncodedSnapshot(index, conf, encode(refs, membership, index))

    return asyncio.get_running_loop().create_task(asyncio.to_thread(run))


def decode(snap: Snapshot) -> tuple[store_pb2.Snapshot, BuiltTables]:
    """The snapshot's payload and the store tables built from it (thread-safe).

    Raises:
        errors.FailedPrecondition: the payload cannot be decoded.
    """
    try:
        payload = store_pb2.Snapshot.FromString(snap.data)
    except DecodeError as err:
        raise errors.FailedPrecondition(
            f"raft snapshot {snap.metadata.index} cannot be decoded: {err}"
        ) from err
    return payload, MemoryStore.build_tables(payload.store)


__all__ = ["SNAPSHOT_FORMAT", "EncodedSnapshot", "decode", "encode", "start_encoding"]
