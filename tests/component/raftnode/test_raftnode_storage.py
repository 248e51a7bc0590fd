"""RaftStorage on real SQLite: append/overwrite, hard state, snapshots, compaction, reopen."""

from __future__ import annotations

import pytest

from swarmd.manager.raftnode import EntryType, HardState, LogEntry, RaftStorage, SnapshotMeta
from swarmd.manager.raftnode.storage import SNAPSHOT_DIR


def entries(lo: int, hi: int, term: int = 1) -> list[LogEntry]:
    return [LogEntry(i, term, EntryType.NORMAL, f"e{i}t{term}".encode()) for i in range(lo, hi)]


async def test_storage_append_read_and_overwrite_suffix(tmp_path):
    st = await RaftStorage.open(tmp_path)
    assert (st.first_index, st.last_index) == (1, 0)
    await st.append(entries(1, 6), HardState(1, 1, 5))
    assert await st.entries(2, 4) == entries(2, 4)
    # a new leader's entries replace the conflicting suffix
    await st.append(entries(4, 5, term=2))
    assert st.last_index == 4
    assert await st.entries(1, 10) == entries(1, 4) + entries(4, 5, term=2)
    with pytest.raises(ValueError, match="does not follow"):
        await st.append(entries(7, 8))
    with pytest.raises(ValueError, match="consecutive"):
        await st.append([*entries(5, 6), *entries(7, 8)])
    await st.close()
    st = await RaftStorage.open(tmp_path)
    assert (st.first_index, st.last_index) == (1, 4)
    assert await st.hard_state() == HardState(1, 1, 5)
    await st.set_hard_state(HardState(2, 3, 4))
    assert await st.hard_state() == HardState(2, 3, 4)
    await st.close()


async def test_storage_snapshot_compaction_and_reopen(tmp_path):
    st = await RaftStorage.open(tmp_path)
    assert await st.load_snapshot() is None
    await st.append(entries(1, 21))
    await st.save_snapshot(SnapshotMeta(15, 1, b"conf"), b"payload-15")
    with pytest.raises(ValueError, match="compact"):
        await st.compact(16)
    await st.compact(12)
    assert (st.first_index, st.last_index, st.snapshot_index) == (13, 20, 15)
    await st.save_snapshot(SnapshotMeta(18, 1), b"payload-18")
    assert [p.name for p in (tmp_path / SNAPSHOT_DIR).iterdir()] == [f"snap-{18:020d}.bin"]
    await st.close()

    st = await RaftStorage.open(tmp_path)
    assert (st.first_index, st.last_index, st.snapshot_index) == (13, 20, 18)
    assert await st.load_snapshot() == (SnapshotMeta(18, 1, b""), b"payload-18")
    assert await st.entries(1, 100) == entries(13, 21)
    await st.close()


async def test_storage_snapshot_beyond_the_log_replaces_it(tmp_path):
    st = await RaftStorage.open(tmp_path)
    await st.append(entries(1, 4))
    await st.save_snapshot(SnapshotMeta(10, 3), b"from-leader")
    assert (st.first_index, st.last_index) == (11, 10)
    assert await st.entries(1, 100) == []
    await st.append(entries(11, 13, term=3))
    await st.close()
    st = await RaftStorage.open(tmp_path)
    assert (st.first_index, st.last_index) == (11, 12)
    await st.close()
