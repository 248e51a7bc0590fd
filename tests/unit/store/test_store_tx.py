"""MemoryStore transactions: copies, versions, conflicts, timestamps, batches, proposers."""

from __future__ import annotations

import asyncio

import pytest
from storecheck import RecordingProposer, node, secret, service, task

from swarmd import errors
from swarmd.api import store_pb2
from swarmd.manager.store import MemoryStore, Tx
from swarmd.testing.fake_clock import FakeClock


async def test_store_create_stamps_meta_from_clock_and_version():
    clock = FakeClock(start=1_700_000_000.5)
    store = MemoryStore(clock=clock)
    created = await store.update(lambda tx: tx.services.create(service("s1", "web")))
    assert created.meta.version.index == 1 == store.version
    assert created.meta.created_at.seconds == 1_700_000_000
    assert created.meta.created_at.nanos == 500_000_000
    assert created.meta.updated_at == created.meta.created_at
    await clock.advance(10)
    created.spec.annotations.labels["x"] = "y"
    updated = await store.update(lambda tx: tx.services.update(created))
    assert updated.meta.version.index == 2
    assert updated.meta.created_at == created.meta.created_at
    assert updated.meta.updated_at.seconds == 1_700_000_010


async def test_store_hands_out_copies_never_the_stored_instance():
    store = MemoryStore()
    original = service("s1", "web")
    created = await store.update(lambda tx: tx.services.create(original))
    original.spec.annotations.name = "changed-after-create"
    created.spec.annotations.name = "changed-returned"
    viewed = store.view(lambda tx: tx.services.get("s1"))
    assert viewed is not None
    viewed.spec.annotations.name = "changed-viewed"
    listed = store.view(lambda tx: tx.services.list())
    assert [s.spec.annotations.name for s in listed] == ["web"]


async def test_store_stale_update_raises_sequence_conflict_naming_the_object():
    store = MemoryStore()
    first = await store.update(lambda tx: tx.services.create(service("svc-1", "web")))
    await store.update(lambda tx: tx.services.update(first))
    with pytest.raises(errors.SequenceConflict) as info:
        await store.update(lambda tx: tx.services.update(first))
    assert "service svc-1" in str(info.value)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert store.version == 2


async def test_store_name_conflict_is_case_insensitive_on_create_and_update():
    store = MemoryStore()
    await store.update(lambda tx: tx.services.create(service("s1", "Web")))
    with pytest.raises(errors.NameConflict) as info:
        await store.update(lambda tx: tx.services.create(service("s2", "wEB")))
    assert info.value.kind == "service"
    other = await store.update(lambda tx: tx.services.create(service("s2", "db")))
    other.spec.annotations.name = "WEB"
    with pytest.raises(errors.NameConflict):
        await store.update(lambda tx: tx.services.update(other))
    # renaming to a different case of its own name is fine
    other.spec.annotations.name = "DB"
    await store.update(lambda tx: tx.services.update(other))
    assert store.view(lambda tx: tx.services.get_by_name("db")).spec.annotations.name == "DB"


async def test_store_node_names_are_indexed_but_not_unique():
    store = MemoryStore()
    await store.update(lambda tx: tx.nodes.create(node("n2", hostname="host")))
    await store.update(lambda tx: tx.nodes.create(node("n1", name="HOST")))
    assert store.view(lambda tx: tx.nodes.get_by_name("host")).id == "n1"
    assert [n.id for n in store.view(lambda tx: tx.nodes.find_by_name_prefix("ho"))] == ["n1", "n2"]


async def test_store_create_rejects_duplicate_and_empty_ids():
    store = MemoryStore()
    await store.update(lambda tx: tx.secrets.create(secret("x", "a")))
    with pytest.raises(errors.AlreadyExists):
        await store.update(lambda tx: tx.secrets.create(secret("x", "b")))
    with pytest.raises(errors.InvalidArgument):
        await store.update(lambda tx: tx.secrets.create(secret("", "c")))
    with pytest.raises(errors.NotFound):
        await store.update(lambda tx: tx.secrets.delete("nope"))


async def test_store_failed_callback_leaves_no_trace_and_proposes_nothing():
    proposer = RecordingProposer()
    store = MemoryStore(proposer)
    sub = store.watch(all_commits=True)

    def fn(tx: Tx) -> None:
        tx.services.create(service("s1", "web"))
        tx.tasks.create(task("t1", "s1"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.update(fn)
    assert store.version == 0
    assert proposer.proposals == []
    assert store.view(lambda tx: (tx.services.count(), tx.tasks.count())) == (0, 0)
    assert sub.pending() == 0


async def test_store_rejects_async_callbacks():
    store = MemoryStore()

    async def fn(tx: Tx) -> None:
        tx.services.create(service("s1", "web"))

    with pytest.raises(TypeError):
        await store.update(fn)
    with pytest.raises(TypeError):
        await store.update(lambda tx: fn(tx))
    with pytest.raises(TypeError):
        store.view(fn)  # type: ignore[arg-type]
    assert store.version == 0


async def test_store_returns_callback_value_and_skips_empty_transactions():
    proposer = RecordingProposer()
    store = MemoryStore(proposer)
    assert await store.update(lambda tx: tx.services.count()) == 0
    assert proposer.proposals == []
    assert store.version == 0


async def test_store_transaction_reads_its_own_writes():
    store = MemoryStore()
    await store.update(lambda tx: tx.tasks.create(task("t0", "s1", "n1")))

    def fn(tx: Tx) -> list[str]:
        tx.tasks.create(task("t1", "s1", "n2"))
        tx.tasks.delete("t0")
        return [t.id for t in tx.tasks.find_by_service("s1")]

    assert await store.update(fn) == ["t1"]


async def test_store_propose_gets_actions_and_versions_come_from_the_proposer():
    proposer = RecordingProposer(step=3)  # e.g. Raft no-op/conf entries in between
    store = MemoryStore(proposer)

    def fn(tx: Tx):
        svc = tx.services.create(service("s1", "web"))
        again = tx.services.get("s1")
        return svc, again

    svc, again = await store.update(fn)
    assert store.version == 3
    # copies handed out inside the transaction carry the real commit version
    assert svc.meta.version.index == 3 == again.meta.version.index
    stored = store.view(lambda tx: tx.services.get("s1"))
    assert stored.meta.version.index == 3
    svc.spec.annotations.labels["a"] = "b"
    updated = await store.update(lambda tx: tx.services.update(svc))
    assert updated.meta.version.index == 6
    [[create], [update]] = proposer.proposals
    assert create.action == store_pb2.STORE_ACTION_KIND_CREATE
    assert create.WhichOneof("target") == "service"
    assert update.service.spec.annotations.labels == {"a": "b"}
    assert create.service.meta.created_at.seconds > 0  # stamped before proposing


async def test_store_proposer_failure_changes_nothing():
    proposer = RecordingProposer()
    store = MemoryStore(proposer)
    proposer.fail = errors.Unavailable("no leader")
    with pytest.raises(errors.Unavailable):
        await store.update(lambda tx: tx.services.create(service("s1", "web")))
    assert store.version == 0
    assert store.view(lambda tx: tx.services.list()) == []
    proposer.fail = None
    await store.update(lambda tx: tx.services.create(service("s1", "web")))
    assert store.version == 1


async def test_store_cancelled_writer_is_still_applied_once_proposed():
    proposer = RecordingProposer()
    proposer.gate = asyncio.Event()
    store = MemoryStore(proposer)
    writer = asyncio.create_task(store.update(lambda tx: tx.services.create(service("s1", "w"))))
    await asyncio.sleep(0)
    writer.cancel()
    proposer.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await writer
    # the next writer waits for the lock, which the commit step releases after applying
    await store.update(lambda tx: tx.services.create(service("s2", "x")))
    assert [s.id for s in store.view(lambda tx: tx.services.list())] == ["s1", "s2"]
    assert store.version == 2


async def test_store_writers_are_serialised():
    proposer = RecordingProposer()
    proposer.gate = asyncio.Event()
    store = MemoryStore(proposer)

    def bump(tx: Tx) -> None:
        svc = tx.services.get("s1")
        svc.spec.annotations.labels["n"] = str(int(svc.spec.annotations.labels.get("n", "0")) + 1)
        tx.services.update(svc)

    await asyncio.wait_for(_create_after_gate(store, proposer), 1)
    writers = [asyncio.create_task(store.update(bump)) for _ in range(10)]
    await asyncio.gather(*writers)
    assert store.view(lambda tx: tx.services.get("s1")).spec.annotations.labels["n"] == "10"


async def _create_after_gate(store: MemoryStore, proposer: RecordingProposer) -> None:
    pending = asyncio.create_task(store.update(lambda tx: tx.services.create(service("s1", "w"))))
    await asyncio.sleep(0)
    assert store.version == 0  # proposing: not applied yet
    proposer.gate.set()  # type: ignore[union-attr]
    await pending


async def test_store_batch_splits_into_transactions_of_at_most_the_limit():
    proposer = RecordingProposer()
    store = MemoryStore(proposer)

    def fn(b) -> int:
        for i in range(450):
            b.update(lambda tx, i=i: tx.tasks.create(task(f"t{i:03d}", "s1", slot=i)))
        return 450

    assert await store.batch(fn) == 450
    assert [len(p) for p in proposer.proposals] == [200, 200, 50]
    assert store.version == 3
    assert store.view(lambda tx: tx.tasks.count()) == 450
    versions = {t.meta.version.index for t in store.view(lambda tx: tx.tasks.list())}
    assert versions == {1, 2, 3}


async def test_store_batch_failed_unit_leaves_no_trace_and_later_units_see_earlier_ones():
    store = MemoryStore()

    def fn(b) -> None:
        b.update(lambda tx: tx.services.create(service("s1", "web")))

        def bad(tx: Tx) -> None:
            tx.services.create(service("s2", "db"))
            tx.services.create(service("s3", "WEB"))  # NameConflict with s1 from the batch

        with pytest.raises(errors.NameConflict):
            b.update(bad)
        got = b.update(lambda tx: [s.id for s in tx.services.list()])
        assert got == ["s1"]

    await store.batch(fn)
    assert [s.id for s in store.view(lambda tx: tx.services.list())] == ["s1"]


async def test_store_batch_callback_failure_proposes_nothing():
    proposer = RecordingProposer()
    store = MemoryStore(proposer)

    def fn(b) -> None:
        b.update(lambda tx: tx.services.create(service("s1", "web")))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.batch(fn)
    assert proposer.proposals == []
    assert store.version == 0


async def test_store_apply_committed_applies_copies_at_the_given_version():
    store = MemoryStore()
    action = store_pb2.StoreAction(action=store_pb2.STORE_ACTION_KIND_CREATE)
    action.service.CopyFrom(service("s1", "web"))
    store.apply_committed([action], 7)
    assert store.version == 7
    action.service.spec.annotations.name = "mutated"
    got = store.view(lambda tx: tx.services.get("s1"))
    assert (got.spec.annotations.name, got.meta.version.index) == ("web", 7)
    remove = store_pb2.StoreAction(action=store_pb2.STORE_ACTION_KIND_REMOVE)
    remove.service.id = "s1"
    store.apply_committed([remove], 8)
    assert store.view(lambda tx: tx.services.count()) == 0
    with pytest.raises(errors.FailedPrecondition):
        store.apply_committed([], 8)
    store.apply_committed([], 9)  # an entry without store changes just advances the version
    assert store.version == 9


def test_lazy_sorted_merges_adds_and_removals_in_order():
    from swarmd.manager.store.sortedlist import LazySorted

    items: LazySorted[str] = LazySorted(["b", "d"])
    items.add("c")
    items.add("a")
    items.discard("d")
    assert items.items() == ["a", "b", "c"]
    items.discard("a")
    items.add("a")  # removed and added back before a read: still there
    items.add("e")
    items.discard("e")  # added and removed before a read: never there
    assert items.items() == ["a", "b", "c"]
    assert items.range_from("bb") == (["a", "b", "c"], 2)
    items.clear()
    assert items.items() == []
