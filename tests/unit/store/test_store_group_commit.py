"""MemoryStore group commit: concurrent writers share proposals, see each other's waiting
writes, fail together, and get the versions raft gave them."""

from __future__ import annotations

import asyncio

import pytest
from storecheck import RecordingProposer, secret, service

from swarmd import errors
from swarmd.api import objects_pb2
from swarmd.manager.store import MemoryStore


def gated(step: int = 1) -> RecordingProposer:
    """A proposer that holds every proposal until `gate` is set."""
    proposer = RecordingProposer(step)
    proposer.gate = asyncio.Event()
    return proposer


def _names(store: MemoryStore) -> list[str]:
    return sorted(s.spec.annotations.name for s in store.view(lambda tx: tx.secrets.list()))


async def test_writers_arriving_during_a_proposal_share_the_next_one():
    proposer = gated()
    store = MemoryStore(proposer)
    first = asyncio.create_task(store.update(lambda tx: tx.secrets.create(secret("a", "a"))))
    await proposer.arrived.wait()  # "a" is in flight alone
    rest = [
        asyncio.create_task(
            store.update(lambda tx, i=i: tx.secrets.create(secret(f"b{i}", f"b{i}")))
        )
        for i in range(10)
    ]
    await asyncio.sleep(0)
    assert _names(store) == []  # nothing is visible before it committed
    proposer.gate.set()
    created = await asyncio.gather(first, *rest)
    assert [len(p) for p in proposer.proposals] == [1, 10]
    assert proposer.most_in_flight == 1  # never two proposals of one store at once
    assert store.version == 2
    assert {c.meta.version.index for c in created[1:]} == {2}
    assert created[0].meta.version.index == 1
    assert len(_names(store)) == 11


async def test_a_transaction_sees_the_writes_still_waiting_for_their_commit():
    proposer = gated()
    store = MemoryStore(proposer)
    creating = asyncio.create_task(
        store.update(lambda tx: tx.services.create(service("s1", "web")))
    )
    await proposer.arrived.wait()

    def relabel(tx):  # type: ignore[no-untyped-def]
        current = tx.services.get("s1")
        assert current is not None, "the waiting create is visible to later transactions"
        current.spec.annotations.labels["tier"] = "front"
        return tx.services.update(current)

    relabelling = asyncio.create_task(store.update(relabel))
    with pytest.raises(errors.AlreadyExists):
        await store.update(lambda tx: tx.services.create(service("s1", "other")))
    proposer.gate.set()
    created, relabelled = await asyncio.gather(creating, relabelling)
    assert created.meta.version.index == 1
    assert relabelled.meta.version.index == 2
    stored = store.view(lambda tx: tx.services.get("s1"))
    assert stored is not None
    assert stored.spec.annotations.labels["tier"] == "front"
    assert stored.meta.version.index == 2


async def test_a_stale_update_conflicts_with_a_waiting_write():
    proposer = gated()
    proposer.gate.set()
    store = MemoryStore(proposer)
    committed = await store.update(lambda tx: tx.services.create(service("s1", "web")))
    proposer.gate.clear()
    proposer.arrived.clear()
    fresh = objects_pb2.Service()
    fresh.CopyFrom(committed)
    fresh.spec.annotations.labels["x"] = "1"
    waiting = asyncio.create_task(store.update(lambda tx: tx.services.update(fresh)))
    await proposer.arrived.wait()
    stale = objects_pb2.Service()
    stale.CopyFrom(committed)  # read before the waiting update: must not overwrite it
    with pytest.raises(errors.SequenceConflict):
        await store.update(lambda tx: tx.services.update(stale))
    proposer.gate.set()
    await waiting


async def test_a_failed_proposal_fails_the_writes_built_on_it_and_leaves_no_trace():
    proposer = gated()
    store = MemoryStore(proposer)
    first = asyncio.create_task(store.update(lambda tx: tx.secrets.create(secret("a", "a"))))
    await proposer.arrived.wait()
    later = asyncio.create_task(store.update(lambda tx: tx.secrets.create(secret("b", "b"))))
    await asyncio.sleep(0)
    proposer.fail = errors.Unavailable("raft leadership lost before the proposal committed")
    proposer.gate.set()
    for task in (first, later):
        with pytest.raises(errors.Unavailable, match="leadership lost"):
            await task
    assert proposer.proposals == []  # the later group was never proposed
    assert store.version == 0
    assert _names(store) == []
    proposer.fail = None
    again = await store.update(lambda tx: tx.secrets.create(secret("b", "b")))
    assert again.meta.version.index == 1
    assert _names(store) == ["b"]


async def test_versions_follow_the_proposer_when_raft_puts_entries_in_between():
    proposer = gated(step=3)  # e.g. an election's empty entry and a membership change
    store = MemoryStore(proposer)
    first = asyncio.create_task(store.update(lambda tx: tx.services.create(service("s1", "web"))))
    await proposer.arrived.wait()
    second = asyncio.create_task(store.update(lambda tx: tx.services.create(service("s2", "db"))))
    await asyncio.sleep(0)
    proposer.gate.set()
    one, two = await asyncio.gather(first, second)
    assert (one.meta.version.index, two.meta.version.index) == (3, 6)
    assert store.version == 6
    # The copies carry the committed versions: they update without a conflict.
    two.spec.annotations.labels["x"] = "y"
    updated = await store.update(lambda tx: tx.services.update(two))
    assert updated.meta.version.index == 9


async def test_a_read_only_transaction_returns_once_what_it_read_has_committed():
    proposer = gated()
    store = MemoryStore(proposer)
    creating = asyncio.create_task(store.update(lambda tx: tx.secrets.create(secret("a", "a"))))
    await proposer.arrived.wait()
    reading = asyncio.create_task(store.update(lambda tx: tx.secrets.get("a")))
    await asyncio.sleep(0.01)
    assert not reading.done()
    proposer.gate.set()
    seen = await reading
    assert seen is not None
    assert seen.meta.version.index == 1
    await creating


async def test_groups_stay_under_the_action_limit():
    proposer = gated()
    proposer.gate.set()
    store = MemoryStore(proposer, batch_limit=4)
    await asyncio.gather(
        *(
            store.update(lambda tx, i=i: tx.secrets.create(secret(f"s{i}", f"s{i}")))
            for i in range(10)
        )
    )
    assert all(len(p) <= 4 for p in proposer.proposals)
    assert sum(len(p) for p in proposer.proposals) == 10
    assert len(_names(store)) == 10


async def test_a_cancelled_writer_still_has_its_write_applied():
    proposer = gated()
    store = MemoryStore(proposer)
    writer = asyncio.create_task(store.update(lambda tx: tx.secrets.create(secret("a", "a"))))
    await proposer.arrived.wait()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    proposer.gate.set()
    await store.update(lambda tx: tx.secrets.create(secret("b", "b")))
    assert _names(store) == ["a", "b"]


async def test_a_batch_joins_the_queue_behind_waiting_writes():
    proposer = gated()
    store = MemoryStore(proposer, batch_limit=2)
    single = asyncio.create_task(store.update(lambda tx: tx.secrets.create(secret("a", "a"))))
    await proposer.arrived.wait()

    def five(b):  # type: ignore[no-untyped-def]
        for i in range(5):
            b.update(lambda tx, i=i: tx.secrets.create(secret(f"b{i}", f"b{i}")))

    batching = asyncio.create_task(store.batch(five))
    await asyncio.sleep(0)
    proposer.gate.set()
    await asyncio.gather(single, batching)
    assert [len(p) for p in proposer.proposals] == [1, 2, 2, 1]
    assert store.version == 4
    assert len(_names(store)) == 6
