"""DurableStorage on real SQLite: what the core was told is stored survives a reopen or a crash."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap

import pytest

from swarmd import errors
from swarmd.api import types_pb2
from swarmd.manager.raftnode import StorageError
from swarmd.manager.raftnode.durable import DurableStorage
from swarmd.manager.raftnode.members import load_identity
from swarmd.manager.raftnode.storage import DB_NAME, RaftStorage
from swarmd.raft import (
    CompactedError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    RaftID,
    Snapshot,
    SnapshotMetadata,
)

CONF = ConfState(voters=frozenset({RaftID(1), RaftID(2), RaftID(3)}))


def ents(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, f"e{i}t{term}".encode()) for i in range(lo, hi)]


def state_of(st: DurableStorage) -> tuple[object, ...]:
    return (
        st.initial_state(),
        st.first_index(),
        st.last_index(),
        st.entries(st.first_index(), st.last_index() + 1, 1 << 30),
        st.snapshot(),
    )


async def test_durable_reopen_gives_the_same_state(tmp_path):
    st = await DurableStorage.open(tmp_path)
    assert st.is_empty()
    await st.append(ents(1, 11), HardState(term=2, vote=RaftID(3), commit=8))
    # a new leader's entries replace a conflicting suffix
    await st.append(ents(9, 12, term=3), HardState(term=3, vote=RaftID(2), commit=8))
    await st.create_snapshot(6, CONF, b"store-at-6", keep=2)
    before = state_of(st)
    assert st.first_index() == 5  # the tail kept for slow followers
    assert st.term(10) == 3
    await st.close()

    st = await DurableStorage.open(tmp_path)
    assert not st.is_empty()
    hard, conf = st.initial_state()
    assert hard == HardState(term=3, vote=RaftID(2), commit=8)
    assert conf == CONF
    assert st.snapshot() == Snapshot(SnapshotMetadata(6, 1, CONF), b"store-at-6")
    assert st.entries(7, 12, 1 << 30) == ents(7, 9) + ents(9, 12, term=3)
    # the kept tail lives in memory only: after a restart the log starts after the snapshot
    assert st.first_index() == 7
    assert before[0] == state_of(st)[0]
    with pytest.raises(CompactedError):
        st.entries(6, 8, 1 << 30)
    with pytest.raises(errors.FailedPrecondition, match="latest snapshot is at 6"):
        await st.compact(7)
    await st.close()


async def test_durable_snapshot_from_leader_replaces_the_whole_log(tmp_path):
    st = await DurableStorage.open(tmp_path)
    await st.append(ents(1, 9, term=1), HardState(term=1, commit=3))
    leader_snap = Snapshot(SnapshotMetadata(5, 4, CONF), b"leader-state")
    await st.apply_snapshot(leader_snap)
    # entries 6..8 of term 1 conflicted with the leader's log: gone, in memory and on disk
    assert (st.first_index(), st.last_index()) == (6, 5)
    await st.append(ents(6, 8, term=4), HardState(term=4, commit=7))
    with pytest.raises(errors.FailedPrecondition, match="not newer"):
        await st.apply_snapshot(Snapshot(SnapshotMetadata(5, 4, CONF), b"again"))
    await st.close()

    st = await DurableStorage.open(tmp_path)
    assert st.snapshot() == leader_snap
    assert st.entries(6, 8, 1 << 30) == ents(6, 8, term=4)
    assert st.initial_state() == (HardState(term=4, commit=7), CONF)
    await st.close()


async def test_durable_uncommitted_transaction_is_lost_whole_after_a_crash(tmp_path):
    st = await DurableStorage.open(tmp_path)
    await st.append(ents(1, 4), HardState(term=1, vote=RaftID(1), commit=2))
    await st.close()
    # A process that dies in the middle of a write: entries and hard state written inside a
    # transaction that never commits (and so is never fsynced).
    crash = textwrap.dedent(
        f"""
        import os, sqlite3
        db = sqlite3.connect({str(tmp_path / DB_NAME)!r}, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM entries WHERE idx >= 3")
        db.executemany(
            "INSERT INTO entries (idx, term, type, data) VALUES (?, 2, 0, x'00')",
            [(i,) for i in range(3, 50)],
        )
        db.execute("UPDATE hard_state SET term = 2, vote = 9, commit_idx = 40")
        os._exit(1)
        """
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", crash)
    assert await asyncio.wait_for(proc.wait(), 30) == 1
    st = await DurableStorage.open(tmp_path)
    assert st.initial_state()[0] == HardState(term=1, vote=RaftID(1), commit=2)
    assert st.entries(1, st.last_index() + 1, 1 << 30) == ents(1, 4)
    await st.close()


async def test_durable_failed_write_changes_nothing(tmp_path, monkeypatch):
    st = await DurableStorage.open(tmp_path)
    await st.append(ents(1, 3), HardState(term=1, commit=1))

    def broken(self, entries, hard_state, sync=True):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(RaftStorage, "_append", broken)
    with pytest.raises(StorageError, match="cannot append entries: disk I/O error"):
        await st.append(ents(3, 5), HardState(term=2, commit=2))
    # the core must not see what did not reach the disk
    assert st.last_index() == 2
    assert st.initial_state()[0] == HardState(term=1, commit=1)
    monkeypatch.undo()
    await st.close()
    st = await DurableStorage.open(tmp_path)
    assert st.last_index() == 2
    await st.close()


async def test_durable_damaged_snapshot_is_reported_with_its_file(tmp_path):
    st = await DurableStorage.open(tmp_path)
    await st.append(ents(1, 5), HardState(term=1, commit=4))
    await st.create_snapshot(4, CONF, b"payload", keep=0)
    await st.close()
    (snap,) = (tmp_path / "snapshots").iterdir()
    snap.write_bytes(b"torn")
    with pytest.raises(StorageError, match="snapshot 4 is damaged"):
        await DurableStorage.open(tmp_path)


async def test_raft_identity_is_kept_in_the_state_dir(tmp_path):
    first = types_pb2.RaftMember(raft_id=0x51, node_id="node-a", addr="10.0.0.1:4242")
    assert await load_identity(tmp_path, first) == first
    # a restart needs no identity; a new address is taken, the raft id never changes
    assert await load_identity(tmp_path, None) == first
    moved = types_pb2.RaftMember(raft_id=0x51, node_id="node-a", addr="10.0.0.2:4242")
    assert (await load_identity(tmp_path, moved)).addr == "10.0.0.2:4242"
    assert (await load_identity(tmp_path, None)).addr == "10.0.0.2:4242"
    with pytest.raises(errors.FailedPrecondition, match="belongs to raft member 51, not 52"):
        await load_identity(tmp_path, types_pb2.RaftMember(raft_id=0x52))
    with pytest.raises(errors.FailedPrecondition, match="no raft identity"):
        await load_identity(tmp_path / "empty", None)
