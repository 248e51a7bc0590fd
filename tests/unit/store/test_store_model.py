"""Property test: random transaction sequences against a dict model; indexes agree with scans."""

from __future__ import annotations

import copy
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from storecheck import check_indexes, node, run_now, secret, service, task

from swarmd import errors
from swarmd.api import types_pb2
from swarmd.manager.store import MemoryStore, Tx

IDS = ["a1", "a2", "ab3", "b1", "b22", "c"]
NAMES = ["web", "WEB", "Web-1", "db", "DB", "cache", ""]
PREFIXES = ["", "a", "A", "ab", "b2", "we", "D", "x"]
KINDS = ("services", "tasks", "nodes", "secrets")
UNIQUE = {"services", "secrets"}
STATES = [types_pb2.TASK_STATE_RUNNING, types_pb2.TASK_STATE_SHUTDOWN, types_pb2.TASK_STATE_REMOVE]

ids = st.sampled_from(IDS)
names = st.sampled_from(NAMES)
attrs_by_kind = {
    "services": st.tuples(
        names,
        st.frozensets(st.sampled_from(["s1", "s2"])),
        st.frozensets(st.sampled_from(["c1", "c2"])),
    ),
    "tasks": st.tuples(
        names,
        st.sampled_from(["a1", "b1", ""]),
        st.sampled_from(["n1", "n2", ""]),
        st.integers(0, 2),
        st.sampled_from(STATES),
    ),
    "nodes": st.tuples(names, names),
    "secrets": st.tuples(names),
}


def build(kind: str, oid: str, attrs: tuple[Any, ...]) -> Any:
    if kind == "services":
        return service(oid, attrs[0], tuple(sorted(attrs[1])), tuple(sorted(attrs[2])))
    if kind == "tasks":
        t = task(oid, attrs[1], attrs[2], attrs[3], attrs[4])
        t.annotations.name = attrs[0]
        return t
    if kind == "nodes":
        return node(oid, attrs[0], attrs[1])
    return secret(oid, attrs[0])


def restyle(kind: str, obj: Any, attrs: tuple[Any, ...]) -> None:
    """Give obj (read from the store, keeping its meta) the attributes."""
    fresh = build(kind, obj.id, attrs)
    fresh.meta.CopyFrom(obj.meta)
    obj.CopyFrom(fresh)


def attrs_of(kind: str, obj: Any) -> tuple[Any, ...]:
    if kind == "services":
        c = obj.spec.task.container
        return (
            obj.spec.annotations.name,
            frozenset(r.secret_id for r in c.secrets),
            frozenset(r.config_id for r in c.configs),
        )
    if kind == "tasks":
        return (obj.annotations.name, obj.service_id, obj.node_id, obj.slot, obj.desired_state)
    if kind == "nodes":
        return (obj.spec.annotations.name, obj.description.hostname)
    return (obj.spec.annotations.name,)


def model_name(kind: str, attrs: tuple[Any, ...]) -> str:
    if kind == "tasks":
        return ""  # task names are not unique: never conflict
    if kind == "nodes":
        return str(attrs[0] or attrs[1])
    return str(attrs[0])


op = st.one_of(
    *[
        st.tuples(st.just("create"), st.just(k), ids, attrs_by_kind[k], st.just(False))
        for k in KINDS
    ],
    *[
        st.tuples(st.just("update"), st.just(k), ids, attrs_by_kind[k], st.booleans())
        for k in KINDS
    ],
    *[st.tuples(st.just("delete"), st.just(k), ids, st.just(()), st.just(False)) for k in KINDS],
)

Model = dict[str, dict[str, tuple[tuple[Any, ...], int]]]


def simulate(model: Model, ops: list[Any], version: int) -> type[Exception] | None:
    """Apply ops to model in place; return the error type the first failing op must raise."""
    for verb, kind, oid, attrs, stale in ops:
        table = model[kind]
        if verb == "delete":
            if oid not in table:
                return errors.NotFound
            del table[oid]
            continue
        if verb == "create" and oid in table:
            return errors.AlreadyExists
        if verb == "update":
            if oid not in table:
                return errors.NotFound
            if stale:
                return errors.SequenceConflict
        name = model_name(kind, attrs).lower()
        if kind in UNIQUE and name:
            for other, (oattrs, _) in table.items():
                if other != oid and model_name(kind, oattrs).lower() == name:
                    return errors.NameConflict
        table[oid] = (attrs, version)
    return None


def run_ops(tx: Tx, ops: list[Any]) -> None:
    for verb, kind, oid, attrs, stale in ops:
        table = getattr(tx, kind)
        if verb == "create":
            table.create(build(kind, oid, attrs))
        elif verb == "delete":
            table.delete(oid)
        else:
            cur = table.get(oid) or build(kind, oid, attrs)
            restyle(kind, cur, attrs)
            if stale:
                cur.meta.version.index += 7
            table.update(cur)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.model: Model = {k: {} for k in KINDS}

    def _transact(self, ops: list[Any], fail_at_end: bool, check_inside: bool) -> None:
        expected_model = copy.deepcopy(self.model)
        version = self.store.version
        want = simulate(expected_model, ops, version + 1)

        def fn(tx: Tx) -> None:
            run_ops(tx, ops)
            if check_inside:
                check_indexes(tx, NAMES, PREFIXES)
            if fail_at_end:
                raise RuntimeError("callback failed after writing")

        got: BaseException | None = None
        try:
            run_now(self.store.update(fn))
        except (errors.SwarmError, RuntimeError) as err:
            got = err
        if got is None:
            assert want is None, want
            assert not fail_at_end
            self.model = expected_model
            assert self.store.version == version + 1
            return
        if isinstance(got, RuntimeError):
            assert want is None
            assert fail_at_end
        else:
            assert type(got) is want, (got, want)
        assert self.store.version == version  # a failed transaction leaves no trace

    @rule(one=op)
    def single(self, one: Any) -> None:
        self._transact([one], fail_at_end=False, check_inside=False)

    @rule(ops=st.lists(op, min_size=1, max_size=5), fail_at_end=st.booleans())
    def multi(self, ops: list[Any], fail_at_end: bool) -> None:
        self._transact(ops, fail_at_end, check_inside=True)

    @invariant()
    def store_matches_model(self) -> None:
        def content(tx: Any) -> Model:
            return {
                k: {o.id: (attrs_of(k, o), o.meta.version.index) for o in getattr(tx, k).list()}
                for k in KINDS
            }

        assert self.store.view(content) == self.model

    @invariant()
    def indexes_match_scans(self) -> None:
        self.store.view(lambda tx: check_indexes(tx, NAMES, PREFIXES))


StoreMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_store_model = StoreMachine.TestCase
