"""MemoryStore snapshots: round trips and restores give identical state and query results."""

from __future__ import annotations

import random

from storecheck import check_indexes, node, run_now, secret, service, task

from swarmd.api import store_pb2, types_pb2
from swarmd.manager.store import MemoryStore, Tx

NAMES = ["web", "db", "WEB-3", "host-1", ""]
PREFIXES = ["", "s", "t1", "we", "HO"]


def populated(seed: int) -> MemoryStore:
    rnd = random.Random(seed)
    store = MemoryStore()
    for i in range(30):

        def fn(tx: Tx, i: int = i) -> None:
            if i % 3 == 0:
                tx.services.create(service(f"s{i}", f"web-{i}", secrets=(f"x{i % 2}",)))
            tx.tasks.create(
                task(
                    f"t{i}",
                    f"s{i - i % 3}",
                    f"n{rnd.randrange(3)}",
                    slot=rnd.randrange(4),
                    desired=rnd.choice(
                        [types_pb2.TASK_STATE_RUNNING, types_pb2.TASK_STATE_SHUTDOWN]
                    ),
                )
            )
            if i % 5 == 0:
                tx.nodes.create(node(f"n{i}", hostname=f"host-{i}"))
                tx.secrets.create(secret(f"x{i}", f"sec-{i}"))
            if i % 7 == 6:
                tx.tasks.delete(f"t{i - 1}")

        run_now(store.update(fn))
    return store


def all_views(store: MemoryStore) -> list:
    def read(tx) -> list:
        out = []
        for kind in ("nodes", "services", "tasks", "clusters", "secrets", "configs", "networks"):
            table = getattr(tx, kind)
            out.append(table.list())
            out.extend(table.find_by_name_prefix(p) for p in PREFIXES)
            out.extend(table.get_by_name(n) for n in NAMES)
        out.extend(tx.tasks.find_by_node(f"n{i}") for i in range(3))
        out.extend(tx.tasks.find_by_service(f"s{i}") for i in range(0, 30, 3))
        out.append(tx.services.find_services_by_secret("x1"))
        return out

    return store.view(read)


def test_store_snapshot_round_trip_equals_original():
    store = populated(1)
    snap = store.snapshot()
    again = store_pb2.StoreSnapshot.FromString(snap.SerializeToString())
    assert again == snap
    assert [t.id for t in snap.tasks] == sorted(t.id for t in snap.tasks)
    fresh = MemoryStore()
    fresh.restore(again, store.version)
    assert fresh.version == store.version
    assert fresh.snapshot() == snap
    assert fresh.snapshot().SerializeToString(deterministic=True) == snap.SerializeToString(
        deterministic=True
    )


def test_store_restore_into_fresh_store_gives_identical_view_results():
    store = populated(2)
    fresh = MemoryStore()
    fresh.restore(store.snapshot(), store.version)
    assert all_views(fresh) == all_views(store)
    fresh.view(lambda tx: check_indexes(tx, NAMES, PREFIXES))


def test_store_restore_replaces_previous_contents():
    store = populated(3)
    other = MemoryStore()
    run_now(other.update(lambda tx: tx.services.create(service("zzz", "web-0"))))
    other.restore(store.snapshot(), 99)
    assert other.view(lambda tx: tx.services.get("zzz")) is None
    assert other.view(lambda tx: tx.services.get_by_name("web-0")).id == "s0"
    assert other.version == 99


def test_store_snapshot_is_a_copy():
    store = populated(4)
    snap = store.snapshot()
    snap.services[0].spec.annotations.name = "mutated"
    assert store.view(lambda tx: tx.services.get(snap.services[0].id)).spec.annotations.name != (
        "mutated"
    )


def test_store_snapshot_encoded_from_references_is_the_snapshot_and_stays_at_its_version():
    store = populated(5)
    expected = store.snapshot().SerializeToString()
    refs = store.snapshot_refs()
    # The store goes on while a worker thread would encode: what was taken stays as it was.
    run_now(store.update(lambda tx: tx.services.create(service("later", "later"))))
    run_now(store.update(lambda tx: tx.tasks.delete("t0")))
    encoded = MemoryStore.encode_snapshot(refs)
    assert encoded == expected
    fresh = MemoryStore()
    fresh.restore_built(MemoryStore.build_tables(store_pb2.StoreSnapshot.FromString(encoded)), 7)
    assert fresh.version == 7
    assert fresh.view(lambda tx: tx.services.get("later")) is None
    assert fresh.view(lambda tx: tx.tasks.get("t0")) is not None
    fresh.view(lambda tx: check_indexes(tx, NAMES, PREFIXES))
