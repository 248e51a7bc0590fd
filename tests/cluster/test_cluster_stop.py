"""A manager that stops while writes are in flight: every caller learns its write's true outcome.

On a stop the manager's servers drain the calls in flight, and the raft member stays up until
they are done, so a write that reached the log is answered as done. The assertion holds for
any timing: an answered write is there after the restart, a write that failed is not.
"""

from __future__ import annotations

import asyncio

import grpc

from swarmd.api import control_pb2, specs_pb2
from tests.cluster.harness import InProcessCluster, poll

ROUNDS = 8


def _spec(name: str) -> specs_pb2.ServiceSpec:
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox"
    spec.replicated.replicas = 0
    return spec


async def _create(cluster: InProcessCluster, name: str) -> bool:
    req = control_pb2.CreateServiceRequest(spec=_spec(name))
    try:
        await cluster.stub().CreateService(req, timeout=10)
        return True
    except grpc.aio.AioRpcError:
        return False


async def _names(cluster: InProcessCluster) -> set[str]:
    async def listed() -> set[str] | None:
        try:
            resp = await cluster.stub().ListServices(control_pb2.ListServicesRequest(), timeout=5)
        except grpc.aio.AioRpcError:
            return None  # still starting
        return {s.spec.annotations.name for s in resp.services} or {"(none)"}

    return await poll(listed, what="services listed after the restart")


async def test_writes_in_flight_when_the_manager_stops_are_answered_truly(
    cluster: InProcessCluster,
) -> None:
    await cluster.start("mgr")
    answered: dict[str, bool] = {}
    for i in range(ROUNDS):
        # A burst of writes, then the stop, at a different moment each round.
        names = [f"svc-{i}-{k}" for k in range(4)]
        calls = [asyncio.create_task(_create(cluster, n)) for n in names]
        await asyncio.sleep(0.002 * i)
        await cluster.members["mgr"].stop()
        for name, call in zip(names, calls, strict=True):
            answered[name] = await call
        await cluster.restart("mgr")
        existing = await _names(cluster)
        lost = [n for n in names if answered[n] and n not in existing]
        ghosts = [n for n in names if not answered[n] and n in existing]
        assert not lost, f"round {i}: acknowledged but gone after the restart: {lost}"
        assert not ghosts, f"round {i}: reported failed but committed: {ghosts}"
    # The test must have stopped the manager under writes, not only between them.
    assert any(answered.values()), answered
