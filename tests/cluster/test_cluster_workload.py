"""The workload path in one process: control API -> orchestrator -> scheduler -> dispatcher ->
agent -> executor and back, over real mTLS gRPC, with FakeExecutors instead of Docker."""

from __future__ import annotations

from swarmd.api import control_pb2, specs_pb2, types_pb2
from tests.cluster.harness import InProcessCluster, poll

RUNNING = types_pb2.TASK_STATE_RUNNING


def _spec(name: str, replicas: int) -> specs_pb2.ServiceSpec:
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox"
    spec.task.container.command.extend(["sleep", "1000"])
    spec.task.restart.delay.FromSeconds(0)
    spec.replicated.replicas = replicas
    return spec


async def _create(c: InProcessCluster, name: str, replicas: int) -> str:
    resp = await c.stub().CreateService(
        control_pb2.CreateServiceRequest(spec=_spec(name, replicas))
    )
    return resp.service.id


async def test_replicas_run_spread_and_report_back(cluster: InProcessCluster) -> None:
    await cluster.start("mgr")
    await cluster.add_worker("w1")
    await cluster.add_worker("w2")
    sid = await _create(cluster, "web", 6)

    async def spread_ok() -> bool:
        return sorted((await cluster.spread(sid)).values()) == [2, 2, 2]

    await poll(spread_ok, what="6 running tasks spread 2/2/2")
    # Each node's executor runs exactly the tasks assigned to it.
    nodes = await cluster.nodes()
    for name, member in cluster.members.items():
        mine = {t.id for t in await cluster.tasks(sid) if t.node_id == nodes[name].id}
        assert set(member.executor.containers) == mine


async def test_failed_task_is_replaced_and_agent_restart_adopts(cluster: InProcessCluster) -> None:
    await cluster.start("mgr")
    w1 = await cluster.add_worker("w1")
    sid = await _create(cluster, "web", 2)

    async def two_running() -> list[str] | None:
        run = [t.id for t in await cluster.tasks(sid) if t.status.state == RUNNING]
        return run if len(run) == 2 else None

    await poll(two_running, what="2 running")
    w1_id = (await cluster.nodes())["w1"].id
    on_w1 = [t for t in await cluster.tasks(sid) if t.node_id == w1_id]
    assert len(on_w1) == 1
    victim = on_w1[0]
    w1.executor.exit(victim.id, 1)

    async def replaced() -> bool:
        tasks = await cluster.tasks(sid)
        old = next(t for t in tasks if t.id == victim.id)
        fresh = [t for t in tasks if t.slot == victim.slot and t.id != victim.id]
        return old.status.state == types_pb2.TASK_STATE_FAILED and any(
            t.status.state == RUNNING for t in fresh
        )

    await poll(replaced, what="failed task replaced in its slot")

    # Restart the worker's agent over the same executor: its containers are adopted, not
    # restarted, and the tasks stay RUNNING.
    before = {tid: c.pid for tid, c in w1.executor.containers.items()}
    restarted = await cluster.restart("w1")
    await cluster.wait_ready("w1")
    await poll(two_running, what="2 running after agent restart")
    assert {tid: c.pid for tid, c in restarted.executor.containers.items()} == before


async def test_scale_down_and_remove_stop_the_containers(cluster: InProcessCluster) -> None:
    mgr = await cluster.start("mgr")
    sid = await _create(cluster, "web", 3)

    async def running(n: int) -> bool:
        live = [c for c in mgr.executor.containers.values() if c.state == "running"]
        return len(live) == n

    await poll(lambda: running(3), what="3 fake containers running")
    svc = (await cluster.stub().GetService(control_pb2.GetServiceRequest(service_id=sid))).service
    svc.spec.replicated.replicas = 1
    await cluster.stub().UpdateService(
        control_pb2.UpdateServiceRequest(
            service_id=sid, service_version=svc.meta.version, spec=svc.spec
        )
    )
    await poll(lambda: running(1), what="scaled down to 1 running container")
    await cluster.stub().RemoveService(control_pb2.RemoveServiceRequest(service_id=sid))
    await poll(lambda: running(0), what="no container after service rm")
