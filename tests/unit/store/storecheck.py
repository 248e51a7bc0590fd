"""Helpers shared by the store tests: object builders, a no-suspend runner, full-scan checks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from swarmd.api import objects_pb2, store_pb2, types_pb2
from swarmd.manager.store import ReadTx

T = TypeVar("T")

NAME_KINDS = ("services", "nodes", "secrets", "configs", "networks", "clusters", "tasks")


class RecordingProposer:
    """Commits everything; versions advance by `step` (a Raft log has entries besides ours).

    With `gate` set, each proposal waits for it; `arrived` is set once one is waiting, and
    `most_in_flight` tells how many were outstanding at once. `fail` makes proposals raise.
    """

    def __init__(self, step: int = 1) -> None:
        self.step = step
        self.index = 0
        self.proposals: list[list[store_pb2.StoreAction]] = []
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def propose(self, actions: Sequence[store_pb2.StoreAction]) -> int:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.arrived.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail is not None:
                raise self.fail
            self.proposals.append(
                [store_pb2.StoreAction.FromString(a.SerializeToString()) for a in actions]
            )
            self.index += self.step
            return self.index
        finally:
            self.in_flight -= 1


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (store writes without a proposer) synchronously."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("coroutine suspended")


def service(
    sid: str, name: str, secrets: tuple[str, ...] = (), configs: tuple[str, ...] = ()
) -> objects_pb2.Service:
    svc = objects_pb2.Service(id=sid)
    svc.spec.annotations.name = name
    svc.spec.task.container.image = "nginx"
    for s in secrets:
        svc.spec.task.container.secrets.add(secret_id=s, secret_name=s)
    for c in configs:
        svc.spec.task.container.configs.add(config_id=c, config_name=c)
    return svc


def task(
    tid: str,
    service_id: str = "",
    node_id: str = "",
    slot: int = 0,
    desired: int = types_pb2.TASK_STATE_RUNNING,
) -> objects_pb2.Task:
    t = objects_pb2.Task(id=tid, service_id=service_id, node_id=node_id, slot=slot)
    t.desired_state = desired  # type: ignore[assignment]
    return t


def node(nid: str, name: str = "", hostname: str = "") -> objects_pb2.Node:
    n = objects_pb2.Node(id=nid)
    n.spec.annotations.name = name
    n.description.hostname = hostname
    return n


def secret(sid: str, name: str) -> objects_pb2.Secret:
    s = objects_pb2.Secret(id=sid)
    s.spec.annotations.name = name
    s.spec.data = b"shh"
    return s


def name_of(kind: str, obj: Any) -> str:
    if kind == "tasks":
        return str(obj.annotations.name)
    if kind == "nodes":
        return str(obj.spec.annotations.name or obj.description.hostname)
    return str(obj.spec.annotations.name)


def check_indexes(tx: ReadTx, names: list[str], prefixes: list[str]) -> None:
    """Every index lookup equals the same query answered by a full scan of list()."""
    for kind in NAME_KINDS:
        table = getattr(tx, kind)
        objs = table.list()
        ids = [o.id for o in objs]
        assert ids == sorted(ids), kind
        assert len(set(ids)) == len(ids), kind
        assert table.count() == len(objs), kind
        for o in objs:
            assert table.get(o.id) == o
        for name in names:
            want = [o for o in objs if name and name_of(kind, o).lower() == name.lower()]
            got = table.get_by_name(name)
            assert got == (want[0] if want else None), (kind, name)
        for p in prefixes:
            assert table.find_by_id_prefix(p) == [o for o in objs if o.id.startswith(p)]
            assert table.find_by_name_prefix(p) == [
                o for o in objs if name_of(kind, o).lower().startswith(p.lower())
            ], (kind, p)
    tasks = tx.tasks.list()
    for sid in {t.service_id for t in tasks} | {"", "nope"}:
        assert tx.tasks.find_by_service(sid) == [t for t in tasks if t.service_id == sid]
        for slot in {t.slot for t in tasks} | {0}:
            assert tx.tasks.find_by_slot(sid, slot) == [
                t for t in tasks if t.service_id == sid and t.slot == slot
            ]
    for nid in {t.node_id for t in tasks} | {"", "nope"}:
        assert tx.tasks.find_by_node(nid) == [t for t in tasks if t.node_id == nid]
    for state in {t.desired_state for t in tasks} | {types_pb2.TASK_STATE_REMOVE}:
        assert tx.tasks.find_by_desired_state(state) == [
            t for t in tasks if t.desired_state == state
        ]
    services = tx.services.list()
    refs = {r.secret_id for s in services for r in s.spec.task.container.secrets}
    for ref in refs | {"nope"}:
        assert tx.services.find_services_by_secret(ref) == [
            s for s in services if any(r.secret_id == ref for r in s.spec.task.container.secrets)
        ]
    crefs = {r.config_id for s in services for r in s.spec.task.container.configs}
    for ref in crefs | {"nope"}:
        assert tx.services.find_services_by_config(ref) == [
            s for s in services if any(r.config_id == ref for r in s.spec.task.container.configs)
        ]
