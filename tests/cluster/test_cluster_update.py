"""Rolling updates and rollback through the whole path, in one process: UpdateService ->
rolling updater -> scheduler -> agents (FakeExecutors) -> status back -> update_status.

Each test polls the tasks as a user would (ListTasks, GetService) and checks at every poll
that the update never takes more replicas down than its config allows.
"""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import duration_pb2

from swarmd.api import control_pb2, objects_pb2, specs_pb2, types_pb2
from swarmd.testing.fake_executor import Behaviour, FakeExecutor
from tests.cluster.harness import InProcessCluster, poll

RUNNING = types_pb2.TASK_STATE_RUNNING
U = types_pb2.UpdateConfig
S = types_pb2.UpdateStatus
BAD_IMAGE = "busybox:bad"


class ImageScriptedExecutor(FakeExecutor):
    """A FakeExecutor whose tasks of BAD_IMAGE exit with code 1 as soon as they start."""

    def behaviour_for(self, task: objects_pb2.Task) -> Behaviour:
        if task.spec.container.image == BAD_IMAGE:
            return Behaviour(exit_code=1)
        return super().behaviour_for(task)


def _spec(replicas: int, cfg: types_pb2.UpdateConfig) -> specs_pb2.ServiceSpec:
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = "web"
    spec.task.container.image = "busybox"
    spec.task.container.command.extend(["sleep", "1000"])
    spec.task.restart.delay.FromSeconds(0)
    spec.replicated.replicas = replicas
    spec.update.CopyFrom(cfg)
    spec.rollback.CopyFrom(cfg)
    return spec


def _config(
    order: int = U.UPDATE_ORDER_STOP_FIRST, action: int = U.FAILURE_ACTION_PAUSE
) -> types_pb2.UpdateConfig:
    cfg = U(parallelism=2, monitor=duration_pb2.Duration(nanos=300_000_000))
    cfg.order = order  # type: ignore[assignment]
    cfg.failure_action = action  # type: ignore[assignment]
    return cfg


async def _deploy(c: InProcessCluster, cfg: types_pb2.UpdateConfig) -> str:
    await c.start("mgr", ImageScriptedExecutor())
    await c.add_worker("w1", ImageScriptedExecutor())
    resp = await c.stub().CreateService(control_pb2.CreateServiceRequest(spec=_spec(6, cfg)))
    sid = resp.service.id

    async def six_running() -> bool:
        return _up(await c.tasks(sid)) == 6

    await poll(six_running, what="6 replicas running")
    return sid


def _up(tasks: list[objects_pb2.Task]) -> int:
    return sum(1 for t in tasks if t.desired_state == RUNNING and t.status.state == RUNNING)


async def _service(c: InProcessCluster, sid: str) -> objects_pb2.Service:
    resp = await c.stub().GetService(control_pb2.GetServiceRequest(service_id=sid))
    return resp.service


async def _set_image(c: InProcessCluster, sid: str, image: str) -> None:
    svc = await _service(c, sid)
    svc.spec.task.container.image = image
    await c.stub().UpdateService(
        control_pb2.UpdateServiceRequest(
            service_id=sid, service_version=svc.meta.version, spec=svc.spec
        )
    )


async def _roll(c: InProcessCluster, sid: str, image: str, min_up: int) -> None:
    """Update to image; at every poll at least min_up replicas run; until completed."""
    await _set_image(c, sid, image)
    seen: list[int] = []

    async def done() -> bool:
        tasks = await c.tasks(sid)
        up = _up(tasks)
        seen.append(up)
        assert up >= min_up, f"only {up} replicas running: {seen}"
        live = [t for t in tasks if t.desired_state <= RUNNING]
        svc = await _service(c, sid)
        return (
            svc.update_status.state == S.UPDATE_STATE_COMPLETED
            and up == 6
            and all(t.spec.container.image == image for t in live)
        )

    await poll(done, within=30, what=f"update to {image} completed", step=0.02)
    assert min(seen) < 6 or min_up == 6  # the stop-first update did take tasks down


async def test_stop_first_update_keeps_at_most_two_down(cluster: InProcessCluster) -> None:
    sid = await _deploy(cluster, _config())
    await _roll(cluster, sid, "busybox:2", min_up=4)
    svc = await _service(cluster, sid)
    assert svc.update_status.message == "update completed"
    assert svc.update_status.completed_at.seconds >= svc.update_status.started_at.seconds


async def test_start_first_update_keeps_six_running(cluster: InProcessCluster) -> None:
    sid = await _deploy(cluster, _config(order=U.UPDATE_ORDER_START_FIRST))
    await _roll(cluster, sid, "busybox:2", min_up=6)


async def test_failing_update_rolls_back_by_itself(cluster: InProcessCluster) -> None:
    sid = await _deploy(cluster, _config(action=U.FAILURE_ACTION_ROLLBACK))
    await _set_image(cluster, sid, BAD_IMAGE)

    async def rolled_back() -> objects_pb2.Service | None:
        svc = await _service(cluster, sid)
        tasks = await cluster.tasks(sid)
        live = [t for t in tasks if t.desired_state <= RUNNING]
        ok = (
            svc.update_status.state == S.UPDATE_STATE_ROLLBACK_COMPLETED
            and _up(tasks) == 6
            and all(t.spec.container.image == "busybox" for t in live)
        )
        return svc if ok else None

    svc = await poll(rolled_back, within=30, what="rollback completed", step=0.05)
    assert svc.spec.task.container.image == "busybox"
    assert svc.previous_spec.task.container.image == BAD_IMAGE
    assert svc.revision == 3
    assert [r.spec.task.container.image for r in svc.history] == ["busybox", BAD_IMAGE, "busybox"]
    message = svc.update_status.message
    assert message.startswith("rollback completed (update rolled back: task web."), message
    assert message.endswith("failed: task: non-zero exit (1))"), message


async def test_failing_update_pauses_and_says_why(cluster: InProcessCluster) -> None:
    sid = await _deploy(cluster, _config(action=U.FAILURE_ACTION_PAUSE))
    await _set_image(cluster, sid, BAD_IMAGE)

    async def paused() -> objects_pb2.Service | None:
        svc = await _service(cluster, sid)
        return svc if svc.update_status.state == S.UPDATE_STATE_PAUSED else None

    svc = await poll(paused, within=30, what="update paused")
    message = svc.update_status.message
    assert message.startswith("update paused: task web."), message
    assert message.endswith("failed: task: non-zero exit (1)"), message
    # Paused: the slots not reached keep running the old spec (a batch that started before
    # the failures of the one before it showed up may have been replaced as well).
    before = await cluster.tasks(sid)
    old = _old_running(before)
    assert len(old) >= 2
    await asyncio.sleep(1.0)
    after = await cluster.tasks(sid)
    assert _old_running(after) == old, (_show(before), _show(after))
    assert (await _service(cluster, sid)).update_status.state == S.UPDATE_STATE_PAUSED


def _old_running(tasks: list[objects_pb2.Task]) -> set[str]:
    """Old-spec tasks running and meant to keep running (not the ones being replaced)."""
    return {t.id for t in tasks if t.spec.container.image == "busybox" and _up([t])}


def _show(tasks: list[objects_pb2.Task]) -> list[tuple[int, str, str, int, int]]:
    return sorted(
        (t.slot, t.id, t.spec.container.image, t.status.state, t.desired_state) for t in tasks
    )


async def test_update_goes_on_after_the_manager_restarts(cluster: InProcessCluster) -> None:
    cfg = U(parallelism=1, delay=duration_pb2.Duration(nanos=500_000_000))
    cfg.monitor.CopyFrom(duration_pb2.Duration(nanos=300_000_000))
    sid = await _deploy(cluster, cfg)
    await _set_image(cluster, sid, "busybox:2")

    async def two_updated() -> bool:
        tasks = await cluster.tasks(sid)
        new = [t for t in tasks if t.spec.container.image == "busybox:2"]
        return sum(1 for t in new if t.status.state == RUNNING) >= 2

    await poll(two_updated, what="2 tasks updated")
    assert (await _service(cluster, sid)).update_status.state == S.UPDATE_STATE_UPDATING
    await cluster.restart("mgr")

    async def completed() -> bool:
        try:
            svc = await _service(cluster, sid)
            tasks = await cluster.tasks(sid)
        except grpc.aio.AioRpcError:
            return False  # the manager is still starting
        live = [t for t in tasks if t.desired_state <= RUNNING]
        return (
            svc.update_status.state == S.UPDATE_STATE_COMPLETED
            and _up(tasks) == 6
            and all(t.spec.container.image == "busybox:2" for t in live)
        )

    await poll(completed, within=30, what="update completed after the restart")
