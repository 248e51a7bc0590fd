"""Store snapshots of a raft member: when to take one, encoding and decoding off the loop.

Manager layer, raft node. `RaftNode` (node.py) holds one `Snapshotter` and calls it between
two Readys: it snapshots the store every `snapshot_interval` applied entries, saves the
snapshot and compacts the log, and installs the snapshots the leader sends. local.py takes
`SNAPSHOT_FORMAT`. A raft snapshot's data is a `store_pb2.Snapshot`: the store at the applied
index plus the address book. At 100,000 tasks encoding or decoding one takes seconds, longer
than an election timeout, so both run on a worker thread: `start_encoding` takes what it needs
on the loop (references to the stored objects, which never change once stored) and encodes
them on a thread while the member goes on; `decode` parses a received snapshot and builds the
store's tables for the store to adopt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from google.protobuf.message import DecodeError

from swarmd import errors, gctuning
from swarmd.api import store_pb2
from swarmd.manager.raftnode.configuration import Configuration
from swarmd.manager.raftnode.durable import DurableStorage
from swarmd.manager.raftnode.settings import RaftSettings
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


class Snapshotter:
    """When to snapshot the store, saving it, and installing a snapshot from the leader.

    Loop-confined: `RaftNode` calls it between two Readys, so nothing else writes the storage
    while it does.

    Args:
        storage: the durable raft log, where snapshots are saved and compaction happens.
        configuration: the membership a snapshot holds, and restores.
        wake: the driver loop's wake-up, set when an encoding is done.
        logger: the driver's logger (bound to this raft id).
    """

    def __init__(
        self,
        storage: DurableStorage,
        configuration: Configuration,
        wake: asyncio.Event,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._storage = storage
        self._configuration = configuration
        self._wake = wake
        self._log = logger
        self._index = 0  # of the latest snapshot in the storage
        self._job: asyncio.Task[EncodedSnapshot] | None = None

    def recover(self, store: MemoryStore) -> int:
        """Restore the store from the latest stored snapshot, if any; return its index.

        Raises:
            errors.FailedPrecondition: the snapshot payload cannot be decoded.
        """
        snap = self._storage.snapshot()
        if not snap.is_empty():
            payload, built = decode(snap)
            self._restore(store, payload, built, snap.metadata.index)
        self._index = snap.metadata.index
        return self._index

    async def install(self, store: MemoryStore, snap: Snapshot) -> int:
        """Put a snapshot received from the leader (persisted already) in the store.

        Returns its index, now the applied index.
        """
        # Parsing and indexing 100,000 tasks takes seconds: on a worker thread, so the rest of
        # the manager (dispatcher, control API) keeps its loop; the store swaps tables at once.
        payload, built = await asyncio.to_thread(decode, snap)
        self._restore(store, payload, built, snap.metadata.index)
        self._index = snap.metadata.index
        gctuning.freeze()
        self._configuration.restore_conf(snap.metadata.conf_state)
        return self._index

    def _restore(
        self, store: MemoryStore, payload: store_pb2.Snapshot, built: BuiltTables, index: int
    ) -> None:
        store.restore_built(built, index)
        self._configuration.restore_members(payload.membership)
        self._log.info("store restored from raft snapshot", index=index)

    async def maybe_snapshot(
        self, store: MemoryStore, applied: int, settings: RaftSettings
    ) -> None:
        """Snapshot the store every `snapshot_interval` applied entries and compact the log.

        The state is taken on the loop (references to the stored objects, which never change
        once stored) and encoded on a worker thread while the loop goes on ticking and
        replicating: at 100,000 tasks encoding takes longer than an election timeout. Once
        encoded, the snapshot is written here, between two Readys, so nothing else writes the
        storage meanwhile (a snapshot received from the leader cannot interleave).
        """
        job = self._job
        if job is not None:
            if job.done():
                self._job = None
                await self._save(job, settings.keep_entries)
            return
        if applied - self._index < settings.snapshot_interval:
            return
        if store.version != applied:
            return  # a local transaction is being applied; try after the next Ready
        conf = self._configuration
        job = start_encoding(store, conf.address_book.to_snapshot(), applied, conf.state)
        job.add_done_callback(lambda _: self._wake.set())
        self._job = job

    async def _save(self, job: asyncio.Task[EncodedSnapshot], keep: int) -> None:
        try:
            encoded = job.result()
        except Exception as err:  # noqa: BLE001 - logged; the next interval tries again
            self._log.error("raft snapshot not encoded", error=repr(err))
            return
        if encoded.index <= self._index:
            return  # the leader's snapshot, installed meanwhile, is newer
        await self._storage.create_snapshot(encoded.index, encoded.conf, encoded.data, keep=keep)
        self._index = encoded.index
        self._log.info("raft snapshot saved", index=encoded.index, size=len(encoded.data))

    def stop(self) -> None:
        """Drop an encoding in progress (the driver stopped)."""
        if self._job is not None:
            self._job.cancel()  # its thread ends on its own; nothing is written
            self._job = None


__all__ = [
    "SNAPSHOT_FORMAT",
    "EncodedSnapshot",
    "Snapshotter",
    "decode",
    "encode",
    "start_encoding",
]
