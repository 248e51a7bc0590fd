"""Garbage ServiceSpecs never crash the Control server and never change the store when refused.

Specs come from three sources: random bytes decoded as a ServiceSpec, structured specs with
random (often absurd) values in every field, and mutations of a valid spec. Each goes through
CreateService and UpdateService over real gRPC. A refusal must carry a deliberate status code
(never INTERNAL or UNKNOWN) and leave the store as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2, message
from grpc import aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmd.api import control_pb2, specs_pb2, types_pb2
from tests.component.controlapi.harness import Control, cluster_object, start_control

from swarmd.manager.store import MemoryStore  # isort: skip  (after conftest installs a fake)

Req = control_pb2
INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)
TEXT = st.one_of(st.text(max_size=80), st.sampled_from(["web", "Web", "", "a" * 70, "nginx", "/x"]))
T = TypeVar("T")
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def pick(valid: st.SearchStrategy[T], garbage: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """Mostly a valid value, sometimes garbage: a spec with ~20 fields then often gets deep into
    validation (or through it) instead of failing on its first field."""
    return st.integers(0, 15).flatmap(lambda i: garbage if i == 0 else valid)


NAMES = pick(st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True), TEXT)
IMAGES = pick(st.sampled_from(["nginx:1", "a/b@sha256:" + "f" * 64, "localhost:5000/x"]), TEXT)
PATHS = pick(st.sampled_from(["/data", "/srv/x", "/tmp"]), TEXT)
SMALL = pick(st.integers(0, 1000), INT64)


def enum(n: int) -> st.SearchStrategy[int]:
    return pick(st.integers(0, n - 1), INT32)


@st.composite
def durations(draw: st.DrawFn) -> duration_pb2.Duration:
    valid = st.builds(
        duration_pb2.Duration, seconds=st.integers(0, 100), nanos=st.integers(0, 10**9 - 1)
    )
    garbage = st.builds(duration_pb2.Duration, seconds=INT64, nanos=INT32)
    return draw(pick(valid, garbage))


def _container(draw: st.DrawFn, c: specs_pb2.ContainerSpec) -> None:
    c.image = draw(IMAGES)
    c.env.extend(
        draw(st.lists(pick(st.from_regex(r"[A-Z]{1,5}=[a-z]*", fullmatch=True), TEXT), max_size=3))
    )
    c.init = draw(enum(3))  # type: ignore[assignment]
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(enum(3))
        c.mounts.add(
            type=kind,
            source=draw(pick(st.just({0: "/srv", 1: "vol"}.get(kind, "")), PATHS)),
            target=draw(PATHS),
            tmpfs_size_bytes=draw(pick(st.just(0), INT64)),
            tmpfs_mode=draw(pick(st.just(0), UINT32)),
        )
    for _ in range(draw(st.integers(0, 2))):
        c.secrets.add(
            secret_id=draw(pick(st.just(""), TEXT)),
            secret_name=draw(pick(st.just("s1"), NAMES)),
            file=types_pb2.FileTarget(name=draw(NAMES), mode=draw(pick(st.just(0o444), UINT32))),
        )
    for _ in range(draw(st.integers(0, 1))):
        c.configs.add(
            config_name=draw(pick(st.just("c1"), NAMES)),
            file=types_pb2.FileTarget(name=draw(PATHS)),
        )
    if draw(st.booleans()):
        c.stop_grace_period.CopyFrom(draw(durations()))
    if draw(st.booleans()):
        c.healthcheck.test.extend(draw(pick(st.just(["CMD", "true"]), st.lists(TEXT, max_size=3))))
        c.healthcheck.interval.CopyFrom(draw(durations()))
        c.healthcheck.retries = draw(pick(st.integers(0, 5), INT32))


def _task(draw: st.DrawFn, t: specs_pb2.TaskSpec) -> None:
    _container(draw, t.container)
    for res in (t.resources.limits, t.resources.reservations):
        res.nano_cpus = draw(pick(st.sampled_from([0, 10**9]), INT64))
        res.memory_bytes = draw(pick(st.sampled_from([0, 2**30]), INT64))
    if draw(st.booleans()):
        t.restart.condition = draw(enum(3))  # type: ignore[assignment]
        t.restart.delay.CopyFrom(draw(durations()))
    t.placement.constraints.extend(
        draw(
            st.lists(
                pick(st.sampled_from(["node.role==worker", "node.labels.a!=b"]), TEXT), max_size=3
            )
        )
    )
    t.placement.max_replicas = draw(pick(st.just(0), UINT64))
    for _ in range(draw(st.integers(0, 1))):
        t.networks.add(target=draw(pick(st.just("n1"), NAMES)))


@st.composite
def structured(draw: st.DrawFn) -> specs_pb2.ServiceSpec:
    s = specs_pb2.ServiceSpec()
    s.annotations.name = draw(NAMES)
    s.annotations.labels.update(draw(st.dictionaries(TEXT, TEXT, max_size=3)))
    _task(draw, s.task)
    mode = draw(st.sampled_from(["replicated", "global", None]))
    if mode == "replicated":
        s.replicated.replicas = draw(pick(st.integers(0, 10), UINT64))
    elif mode == "global":
        getattr(s, "global").SetInParent()
    if draw(st.booleans()):
        s.update.delay.CopyFrom(draw(durations()))
        s.update.max_failure_ratio = draw(pick(st.just(0.5), st.floats(width=32)))
        s.update.failure_action = draw(enum(3))  # type: ignore[assignment]
        s.update.order = draw(enum(2))  # type: ignore[assignment]
    s.endpoint.mode = draw(enum(2))  # type: ignore[assignment]
    for _ in range(draw(st.integers(0, 3))):
        s.endpoint.ports.add(
            target_port=draw(pick(st.integers(1, 65535), UINT32)),
            published_port=draw(pick(st.integers(0, 65535), UINT32)),
            protocol=draw(enum(3)),
            publish_mode=draw(enum(2)),
        )
    return s


def _decoded(data: bytes) -> specs_pb2.ServiceSpec | None:
    try:
        return specs_pb2.ServiceSpec.FromString(data)
    except message.DecodeError:
        return None


def _valid() -> specs_pb2.ServiceSpec:
    return specs_pb2.ServiceSpec(
        annotations=types_pb2.Annotations(name="base"),
        task=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="nginx")),
        replicated=specs_pb2.ReplicatedService(replicas=1),
    )


@st.composite
def mutated(draw: st.DrawFn) -> specs_pb2.ServiceSpec:
    """A valid spec with one field flipped, so validation runs deep before failing."""
    data = bytearray(_valid().SerializeToString())
    extra = draw(st.binary(max_size=40))
    cut = draw(st.integers(0, len(data)))
    spec = _decoded(bytes(data[:cut]) + extra + bytes(data[cut:]))
    return spec if spec is not None else _valid()


SPECS = st.one_of(
    structured(),
    mutated(),
    st.binary(max_size=400).map(_decoded).filter(lambda s: s is not None),
)


def _fingerprint(store: MemoryStore) -> tuple[int, list[bytes]]:
    services = store.view(lambda tx: tx.services.list())
    return store.version, [s.SerializeToString(deterministic=True) for s in services]


class Env:
    """One server for all examples; a `base` service to aim updates at."""

    def __init__(self) -> None:
        self.server: aio.Server | None = None
        self.channel: aio.Channel | None = None
        self.ctl: Control | None = None
        self.base: Any = None

    async def start(self) -> None:
        store = MemoryStore(proposer=None)
        await store.update(lambda tx: tx.clusters.create(cluster_object()))
        self.server, self.channel, self.ctl = await start_control(store)
        stub = self.ctl.stub
        await stub.CreateSecret(
            Req.CreateSecretRequest(
                spec=specs_pb2.SecretSpec(annotations=types_pb2.Annotations(name="s1"), data=b"x")
            )
        )
        await stub.CreateConfig(
            Req.CreateConfigRequest(
                spec=specs_pb2.ConfigSpec(annotations=types_pb2.Annotations(name="c1"), data=b"x")
            )
        )
        await stub.CreateNetwork(
            Req.CreateNetworkRequest(
                spec=specs_pb2.NetworkSpec(annotations=types_pb2.Annotations(name="n1"))
            )
        )
        resp = await self.ctl.stub.CreateService(Req.CreateServiceRequest(spec=_valid()))
        self.base = resp.service

    async def stop(self) -> None:
        assert self.channel is not None
        assert self.server is not None
        await self.channel.close()
        await self.server.stop(None)

    async def check(self, spec: specs_pb2.ServiceSpec) -> None:
        assert self.ctl is not None
        stub, store = self.ctl.stub, self.ctl.store

        before = _fingerprint(store)
        created, err = await _outcome(stub.CreateService(Req.CreateServiceRequest(spec=spec)))
        if err is not None:
            assert err.code() not in BAD_CODES, (err.code(), err.details(), spec)
            assert _fingerprint(store) == before, spec
        if created is not None:
            await stub.RemoveService(Req.RemoveServiceRequest(service_id=created.service.id))

        before = _fingerprint(store)
        req = Req.UpdateServiceRequest(
            service_id=self.base.id, service_version=self.base.meta.version, spec=spec
        )
        updated, err = await _outcome(stub.UpdateService(req))
        if err is not None:
            assert err.code() not in BAD_CODES, (err.code(), err.details(), spec)
            assert _fingerprint(store) == before, spec
        if updated is not None:
            self.base = updated.service


async def _outcome(call: Awaitable[T]) -> tuple[T | None, aio.AioRpcError | None]:
    try:
        return await call, None
    except aio.AioRpcError as err:
        return None, err


def test_fuzz_service_specs_never_crash_or_leak_writes() -> None:
    with asyncio.Runner() as runner:
        env = Env()
        runner.run(env.start())

        @settings(
            max_examples=400,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(spec=SPECS)
        def check(spec: specs_pb2.ServiceSpec) -> None:
            runner.run(env.check(spec))

        try:
            check()
        finally:
            runner.run(env.stop())
