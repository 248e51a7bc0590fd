"""LocalProposer over real SQLite in a temp dir: durability, recovery, snapshots, group commit."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from swarmd import errors
from swarmd.api import objects_pb2, store_pb2
from swarmd.manager.raftnode import LocalProposer, RaftStorage, StorageError
from swarmd.manager.raftnode.storage import DB_NAME, SNAPSHOT_DIR
from swarmd.manager.store import MemoryStore, Tx


def service(sid: str, name: str) -> objects_pb2.Service:
    svc = objects_pb2.Service(id=sid)
    svc.spec.annotations.name = name
    svc.spec.task.container.image = "nginx"
    return svc


async def open_store(path: Path, **kw) -> tuple[LocalProposer, MemoryStore]:
    proposer = await LocalProposer.open(path, **kw)
    store = MemoryStore(proposer=proposer)
    await proposer.recover(store)
    return proposer, store


async def churn(store: MemoryStore, n: int, start: int = 0) -> None:
    """n transactions of creates, updates and removes."""
    for i in range(start, start + n):
        if i % 4 == 3:
            await store.update(lambda tx, i=i: tx.services.delete(f"s{i - 3:05d}"))
        elif i % 4 == 2:

            def bump(tx: Tx, i: int = i) -> None:
                svc = tx.services.get(f"s{i - 2:05d}")
                svc.spec.annotations.labels["i"] = str(i)
                tx.services.update(svc)

            await store.update(bump)
        else:
            await store.update(lambda tx, i=i: tx.services.create(service(f"s{i:05d}", f"n{i}")))


def state(store: MemoryStore) -> tuple[int, bytes]:
    return store.version, store.snapshot().SerializeToString(deterministic=True)


async def test_local_recovers_state_after_being_dropped_without_close(tmp_path):
    proposer, store = await open_store(tmp_path)
    await churn(store, 40)
    before = state(store)
    del proposer, store  # a crash: nothing flushed or closed beyond what propose made durable

    proposer2, store2 = await open_store(tmp_path)
    assert state(store2) == before
    assert proposer2.last_index == before[0]
    # and it carries on at the next index
    await store2.update(lambda tx: tx.services.create(service("after", "after")))
    assert store2.version == before[0] + 1
    await proposer2.close()


async def test_local_snapshot_and_compaction_then_recovery(tmp_path):
    proposer, store = await open_store(tmp_path, snapshot_interval=50, keep_entries=10)
    await churn(store, 230)
    await proposer.close()  # waits for the snapshot in progress
    assert proposer.snapshot_index >= 200
    storage = await RaftStorage.open(tmp_path)
    assert storage.first_index == proposer.snapshot_index - 10 + 1
    assert storage.last_index == 230
    assert len(list((tmp_path / SNAPSHOT_DIR).iterdir())) == 1
    await storage.close()

    proposer2, store2 = await open_store(tmp_path, snapshot_interval=50, keep_entries=10)
    assert state(store2) == state(store)
    await churn(store2, 10, start=230)
    await proposer2.close()
    proposer3, store3 = await open_store(tmp_path)
    assert state(store3) == state(store2)
    await proposer3.close()


async def test_local_explicit_snapshot_with_empty_tail(tmp_path):
    proposer, store = await open_store(tmp_path, keep_entries=0)
    await churn(store, 9)
    assert await proposer.snapshot() == 9
    await proposer.close()
    proposer2, store2 = await open_store(tmp_path)
    assert state(store2) == state(store)
    await proposer2.close()


async def test_local_group_commits_concurrent_proposals(tmp_path):
    proposer, _ = await open_store(tmp_path)
    storage = proposer._storage
    appends: list[int] = []
    real_append = storage.append

    async def counting_append(entries, hard_state=None):
        appends.append(len(entries))
        await real_append(entries, hard_state)

    storage.append = counting_append  # type: ignore[method-assign]

    def action(i: int) -> store_pb2.StoreAction:
        a = store_pb2.StoreAction(action=store_pb2.STORE_ACTION_KIND_CREATE)
        a.service.CopyFrom(service(f"s{i}", f"n{i}"))
        return a

    indexes = await asyncio.gather(*(proposer.propose([action(i)]) for i in range(64)))
    assert sorted(indexes) == list(range(1, 65))
    assert indexes == sorted(indexes)  # resolved in queue order
    assert sum(appends) == 64
    assert len(appends) <= 2, appends  # the first proposal alone, then the other 63 together
    entries = await storage.entries(1, 65)
    decoded = [store_pb2.InternalRaftRequest.FromString(e.data) for e in entries]
    assert [r.action[0].service.id for r in decoded] == [f"s{i}" for i in range(64)]
    hard = await storage.hard_state()
    assert (hard.term, hard.commit) == (1, 64)
    await proposer.close()


async def test_local_corrupt_database_gives_a_clear_error(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not a sqlite database at all" * 100)
    with pytest.raises(errors.FailedPrecondition) as info:
        await LocalProposer.open(tmp_path)
    assert str(tmp_path / DB_NAME) in str(info.value)
    assert isinstance(info.value, StorageError)


async def test_local_damaged_snapshot_gives_a_clear_error(tmp_path):
    proposer, store = await open_store(tmp_path)
    await churn(store, 5)
    await proposer.snapshot()
    await proposer.close()
    [snap] = (tmp_path / SNAPSHOT_DIR).iterdir()
    snap.write_bytes(snap.read_bytes()[:-3] + b"xyz")
    proposer2 = await LocalProposer.open(tmp_path)
    with pytest.raises(StorageError) as info:
        await proposer2.recover(MemoryStore(proposer=proposer2))
    assert snap.name in str(info.value)
    await proposer2.close()


async def test_local_files_are_private(tmp_path):
    state_dir = tmp_path / "raft"
    proposer, store = await open_store(state_dir)
    await churn(store, 3)
    await proposer.snapshot()
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {DB_NAME, f"{DB_NAME}-wal"}
    for p in files:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    await proposer.close()


async def test_local_refuses_proposals_before_recover_and_after_close(tmp_path):
    proposer = await LocalProposer.open(tmp_path)
    with pytest.raises(errors.FailedPrecondition):
        await proposer.propose([])
    await proposer.recover(MemoryStore(proposer=proposer))
    await proposer.close()
    with pytest.raises(errors.Unavailable):
        await proposer.propose([])
