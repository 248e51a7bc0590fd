"""The Watch RPC over a real grpc.aio server: filters, commit grouping, resume without gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from swarmd.api import objects_pb2, store_pb2, types_pb2, watch_pb2, watch_pb2_grpc
from swarmd.manager.store import MemoryStore, Tx
from swarmd.manager.watchapi import WatchServicer
from swarmd.rpc.status import StatusInterceptor

CREATE = store_pb2.STORE_ACTION_KIND_CREATE
UPDATE = store_pb2.STORE_ACTION_KIND_UPDATE
REMOVE = store_pb2.STORE_ACTION_KIND_REMOVE


@pytest.fixture
async def watch() -> AsyncIterator[tuple[MemoryStore, watch_pb2_grpc.WatchAsyncStub]]:
    store = MemoryStore(proposer=None)
    server = aio.server(interceptors=[StatusInterceptor()])
    watch_pb2_grpc.add_WatchServicer_to_server(WatchServicer(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield store, watch_pb2_grpc.WatchStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


def _service(sid: str, name: str, **labels: str) -> objects_pb2.Service:
    svc = objects_pb2.Service(id=sid)
    svc.spec.annotations.name = name
    svc.spec.annotations.labels.update(labels)
    svc.spec.replicated.replicas = 1
    return svc


def _task(tid: str, service_id: str, node: str = "") -> objects_pb2.Task:
    t = objects_pb2.Task(id=tid, service_id=service_id, node_id=node, slot=1)
    t.desired_state = types_pb2.TASK_STATE_RUNNING
    return t


async def _started(call) -> None:
    # The server subscribes when it handles the call; give it that moment before writing.
    await asyncio.sleep(0.2)


def _summary(msg: watch_pb2.WatchMessage) -> list[tuple[int, str, str]]:
    return [(e.action, e.object.WhichOneof("object"), _oid(e.object)) for e in msg.events]


def _oid(obj: watch_pb2.WatchObject) -> str:
    kind = obj.WhichOneof("object")
    return getattr(obj, kind).id if kind else ""


async def test_each_commit_is_one_message_with_its_version(watch) -> None:
    store, stub = watch
    call = stub.Watch(watch_pb2.WatchRequest())
    await _started(call)

    def scale(tx: Tx) -> None:
        tx.services.create(_service("s1", "web"))
        tx.tasks.create(_task("t1", "s1"))
        tx.tasks.create(_task("t2", "s1"))

    await store.update(scale)
    first = await asyncio.wait_for(call.read(), 10)
    assert _summary(first) == [
        (CREATE, "service", "s1"),
        (CREATE, "task", "t1"),
        (CREATE, "task", "t2"),
    ]
    assert first.version.index == store.version
    await store.update(lambda tx: tx.tasks.delete("t2"))
    second = await asyncio.wait_for(call.read(), 10)
    assert _summary(second) == [(REMOVE, "task", "t2")]
    assert second.version.index == first.version.index + 1
    call.cancel()


async def test_filters_by_kind_service_label_and_action(watch) -> None:
    store, stub = watch
    await store.update(lambda tx: tx.services.create(_service("s1", "web", tier="front")))
    await store.update(lambda tx: tx.services.create(_service("s2", "db")))
    req = watch_pb2.WatchRequest(
        entries=[
            watch_pb2.WatchEntry(kind="task", filters=[watch_pb2.SelectBy(service_id="s2")]),
            watch_pb2.WatchEntry(
                kind="service", action=2, filters=[watch_pb2.SelectBy(label="tier=front")]
            ),
        ]
    )
    call = stub.Watch(req)
    await _started(call)
    await store.update(lambda tx: tx.tasks.create(_task("a", "s1")))  # other service: no
    await store.update(lambda tx: tx.tasks.create(_task("b", "s2")))  # yes

    def relabel(tx: Tx) -> None:
        web = tx.services.get("s1")
        web.spec.replicated.replicas = 3
        tx.services.update(web)

    await store.update(relabel)  # update of a labelled service: yes
    await store.update(lambda tx: tx.services.delete("s2"))  # remove, not in the mask: no
    got = [_summary(await asyncio.wait_for(call.read(), 10)) for _ in range(2)]
    assert got == [[(CREATE, "task", "b")], [(UPDATE, "service", "s1")]]
    call.cancel()


async def test_resume_from_a_version_replays_exactly_what_was_missed(watch) -> None:
    store, stub = watch
    await store.update(lambda tx: tx.services.create(_service("s1", "web")))
    seen = store.version
    for i in range(5):
        await store.update(lambda tx, i=i: tx.tasks.create(_task(f"t{i}", "s1")))
    req = watch_pb2.WatchRequest()
    req.resume_from.index = seen
    call = stub.Watch(req)
    replayed = [await asyncio.wait_for(call.read(), 10) for _ in range(5)]
    assert [_oid(m.events[0].object) for m in replayed] == [f"t{i}" for i in range(5)]
    assert [m.version.index for m in replayed] == list(range(seen + 1, seen + 6))
    await store.update(lambda tx: tx.tasks.create(_task("live", "s1")))
    live = await asyncio.wait_for(call.read(), 10)
    assert _oid(live.events[0].object) == "live"
    call.cancel()


async def test_bad_requests_and_lost_history_are_clear_errors(watch) -> None:
    store, stub = watch
    with pytest.raises(grpc.aio.AioRpcError) as bad_kind:
        await stub.Watch(
            watch_pb2.WatchRequest(entries=[watch_pb2.WatchEntry(kind="srvice")])
        ).read()
    assert bad_kind.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown kind 'srvice'" in bad_kind.value.details()
    req = watch_pb2.WatchRequest()
    req.resume_from.index = store.version + 100
    with pytest.raises(grpc.aio.AioRpcError) as ahead:
        await stub.Watch(req).read()
    assert ahead.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_secret_values_and_the_ca_key_never_leave_the_store(watch) -> None:
    store, stub = watch
    call = stub.Watch(watch_pb2.WatchRequest(include_old_object=True))
    await _started(call)
    secret = objects_pb2.Secret(id="sec1")
    secret.spec.annotations.name = "db-password"
    secret.spec.data = b"hunter2"
    await store.update(lambda tx: tx.secrets.create(secret))
    cluster = objects_pb2.Cluster(id="c1")
    cluster.spec.annotations.name = "default"
    cluster.root_ca.ca_key = b"PRIVATE KEY"
    cluster.root_ca.ca_cert = b"CERT"
    await store.update(lambda tx: tx.clusters.create(cluster))
    got = [await asyncio.wait_for(call.read(), 10) for _ in range(2)]
    assert got[0].events[0].object.secret.spec.annotations.name == "db-password"
    assert b"hunter2" not in got[0].SerializeToString()
    assert got[1].events[0].object.cluster.root_ca.ca_cert == b"CERT"
    assert b"PRIVATE KEY" not in got[1].SerializeToString()
    call.cancel()
