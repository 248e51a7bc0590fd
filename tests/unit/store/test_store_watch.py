"""MemoryStore watches: commit order, Commit markers, filters, overflow, replay, restore."""

from __future__ import annotations

import asyncio

import pytest
from storecheck import service, task

from swarmd import errors
from swarmd.manager.store import Commit, Event, EventKind, MemoryStore, Tx


async def take(sub, n: int) -> list:
    return [await asyncio.wait_for(sub.__anext__(), 1) for _ in range(n)]


def summary(items: list) -> list[tuple]:
    return [
        (i.kind, i.action.value, i.obj.id, i.version)
        if isinstance(i, Event)
        else ("commit", i.version)
        for i in items
    ]


async def test_store_watch_events_in_commit_order_with_commit_markers():
    store = MemoryStore()
    sub = store.watch()

    def two(tx: Tx) -> None:
        tx.services.create(service("s1", "web"))
        tx.tasks.create(task("t1", "s1"))

    await store.update(two)
    svc = store.view(lambda tx: tx.services.get("s1"))
    svc.spec.annotations.name = "web2"
    await store.update(lambda tx: tx.services.update(svc))
    await store.update(lambda tx: tx.tasks.delete("t1"))
    items = await take(sub, 7)
    assert summary(items) == [
        ("service", "create", "s1", 1),
        ("task", "create", "t1", 1),
        ("commit", 1),
        ("service", "update", "s1", 2),
        ("commit", 2),
        ("task", "remove", "t1", 3),
        ("commit", 3),
    ]
    update = items[3]
    assert update.old.spec.annotations.name == "web"
    assert update.obj.spec.annotations.name == "web2"
    assert update.obj.meta.version.index == 2
    assert items[5].obj.service_id == "s1"  # REMOVE carries the removed object
    assert sub.pending() == 0


async def test_store_watch_filters_by_kind_and_predicate():
    store = MemoryStore()
    sub = store.watch(kinds={"task"}, predicate=lambda ev: ev.obj.node_id == "n1")
    every = store.watch(kinds={"task"}, predicate=lambda ev: False, all_commits=True)
    await store.update(lambda tx: tx.services.create(service("s1", "web")))
    await store.update(lambda tx: tx.tasks.create(task("t1", "s1", "n2")))
    await store.update(lambda tx: tx.tasks.create(task("t2", "s1", "n1")))
    assert summary(await take(sub, 2)) == [("task", "create", "t2", 3), ("commit", 3)]
    assert sub.pending() == 0
    assert summary(await take(every, 3)) == [("commit", 1), ("commit", 2), ("commit", 3)]
    with pytest.raises(ValueError, match="unknown store kinds"):
        store.watch(kinds={"services"})


async def test_store_slow_watcher_is_closed_on_overflow_while_writers_proceed():
    store = MemoryStore()
    slow = store.watch(maxsize=10)
    fast = store.watch()
    for i in range(20):
        await store.update(lambda tx, i=i: tx.tasks.create(task(f"t{i:02d}")))
    assert store.version == 20
    assert slow.closed
    with pytest.raises(errors.Unavailable, match="watch queue overflow"):
        await slow.__anext__()
    assert fast.pending() == 40


async def test_store_watch_close_ends_iteration_and_wakes_waiter():
    store = MemoryStore()
    sub = store.watch()
    got: list = []

    async def consume() -> None:
        async for item in sub:
            got.append(item)

    consumer = asyncio.create_task(consume())
    await store.update(lambda tx: tx.tasks.create(task("t1")))
    await asyncio.sleep(0)
    sub.close()
    await asyncio.wait_for(consumer, 1)
    assert summary(got) == [("task", "create", "t1", 1), ("commit", 1)]


async def test_store_watch_from_replays_history_then_follows_live():
    store = MemoryStore(history=3)
    for i in range(5):
        await store.update(lambda tx, i=i: tx.tasks.create(task(f"t{i}")))
    sub = store.watch_from(3)
    await store.update(lambda tx: tx.tasks.delete("t0"))
    items = summary(await take(sub, 6))
    assert items == [
        ("task", "create", "t3", 4),
        ("commit", 4),
        ("task", "create", "t4", 5),
        ("commit", 5),
        ("task", "remove", "t0", 6),
        ("commit", 6),
    ]
    assert store.watch_from(6).pending() == 0
    store.watch_from(3)  # history holds 4, 5, 6
    with pytest.raises(errors.FailedPrecondition, match="history"):
        store.watch_from(2)
    with pytest.raises(errors.FailedPrecondition):
        store.watch_from(7)


async def test_store_restore_fails_watchers_and_resets_history():
    store = MemoryStore()
    await store.update(lambda tx: tx.tasks.create(task("t1")))
    sub = store.watch()
    store.restore(store.snapshot(), 10)
    with pytest.raises(errors.Unavailable):
        await sub.__anext__()
    with pytest.raises(errors.FailedPrecondition):
        store.watch_from(5)
    assert store.watch_from(10).pending() == 0


async def test_store_watch_event_kinds():
    assert {k.value for k in EventKind} == {"create", "update", "remove"}
    assert Commit(3).version == 3
