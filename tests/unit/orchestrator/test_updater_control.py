"""What the control API adds to rolling updates: manual rollback, pause and resume.

The control API changes the service's update status; the rolling updater (in the replicated
core, against a store, with the test's time) then acts on it.
"""

from __future__ import annotations

import pytest
from test_updater import Agents, UpdateHarness, deployed, image, images, rolling, update_config

from swarmd import errors
from swarmd.api import control_pb2, specs_pb2, types_pb2
from swarmd.manager.controlapi import revisions
from swarmd.manager.controlapi.services import Services
from swarmd.manager.orchestrator import updatestatus as us
from swarmd.manager.store import MemoryStore, Tx
from swarmd.testing.fake_clock import FakeClock

U = types_pb2.UpdateConfig


def _apply(h: UpdateHarness, fn) -> None:  # type: ignore[no-untyped-def]
    svc = h.service()
    fn(svc)
    h.change(svc)


def _mid_update(replicas: int = 6) -> tuple[UpdateHarness, Agents]:
    h = rolling()
    agents = deployed(h, replicas, update_config(parallelism=1, monitor=1))
    image(h, "busybox:2")
    agents.converge(rounds=2)
    assert 1 <= images(h).count("busybox:2") < replicas
    return h, agents


def test_manual_rollback_uses_the_rollback_config_and_completes():
    h, agents = _mid_update(4)
    _apply(h, lambda s: revisions.rollback(s, 0, 5, revisions.timestamp(h.now)))
    svc = h.service()
    assert svc.update_status.state == us.ROLLBACK_STARTED
    assert svc.update_status.message == "manually requested rollback"
    for _ in range(12):
        h.now += 1
        agents.converge(rounds=1)
    assert images(h) == ["busybox"] * 4
    status = h.service().update_status
    assert status.state == us.ROLLBACK_COMPLETED
    assert status.message == "rollback completed (manually requested rollback)"


def test_rollback_to_a_kept_revision():
    h, agents = _mid_update(3)
    h.now += 1
    agents.converge()  # the rest of the update to busybox:2 (revision 2)
    image(h, "busybox:3")  # revision 3
    for _ in range(8):
        h.now += 1
        agents.converge(rounds=1)
    assert images(h) == ["busybox:3"] * 3
    _apply(h, lambda s: revisions.rollback(s, 2, 5, revisions.timestamp(h.now)))
    for _ in range(8):
        h.now += 1
        agents.converge(rounds=1)
    assert images(h) == ["busybox:2"] * 3
    svc = h.service()
    assert svc.revision == 4
    assert [r.revision for r in svc.history] == [1, 2, 3, 4]
    assert svc.update_status.state == us.ROLLBACK_COMPLETED


def test_pause_by_request_stops_replacing_and_resume_goes_on():
    h, agents = _mid_update(6)
    _apply(h, revisions.pause_update)
    assert h.service().update_status.message == "update paused by request"
    done = images(h).count("busybox:2")
    for _ in range(6):
        h.now += 1
        agents.converge(rounds=1)
    assert images(h).count("busybox:2") == done  # nothing more while paused
    assert h.service().update_status.state == us.PAUSED
    _apply(h, lambda s: revisions.resume_update(s, revisions.timestamp(h.now)))
    for _ in range(15):
        h.now += 1
        agents.converge(rounds=1)
    assert images(h) == ["busybox:2"] * 6
    assert h.service().update_status.state == us.COMPLETED


def test_resume_forgets_failures_before_it():
    h = rolling()
    agents = deployed(h, 2, update_config(parallelism=1, monitor=1))
    agents.fails = lambda t: t.spec.container.image == "busybox:2"
    image(h, "busybox:2")
    agents.converge()
    assert h.service().update_status.state == us.PAUSED
    agents.fails = lambda t: False  # fixed (say, a missing file was added to the node)
    h.now += 1
    _apply(h, lambda s: revisions.resume_update(s, revisions.timestamp(h.now)))
    for _ in range(8):
        h.now += 1
        agents.converge(rounds=1)
    assert images(h) == ["busybox:2"] * 2
    assert h.service().update_status.state == us.COMPLETED


async def test_services_pause_and_resume_check_state_and_version():
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    services = Services(store, clock)
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = "web"
    spec.task.container.image = "busybox"
    svc = await services.create(control_pb2.CreateServiceRequest(spec=spec))
    with pytest.raises(errors.FailedPrecondition, match="service web has no update in progress"):
        await services.set_update_paused(svc.id, svc.meta.version.index, paused=True)

    def updating(tx: Tx) -> None:
        cur = tx.services.get(svc.id)
        assert cur is not None
        cur.update_status.CopyFrom(us.status(us.UPDATING, us.UPDATING_MESSAGE, clock.now()))
        tx.services.update(cur)

    await store.update(updating)
    cur = services.get(control_pb2.GetServiceRequest(service_id=svc.id))
    with pytest.raises(errors.SequenceConflict):
        await services.set_update_paused(svc.id, svc.meta.version.index, paused=True)
    paused = await services.set_update_paused(svc.id, cur.meta.version.index, paused=True)
    assert paused.update_status.state == us.PAUSED
    assert paused.update_status.message == "update paused by request"
    await clock.advance(30)
    resumed = await services.set_update_paused(svc.id, paused.meta.version.index, paused=False)
    assert resumed.update_status.state == us.UPDATING
    assert resumed.update_status.started_at.seconds == int(clock.now())
    with pytest.raises(errors.FailedPrecondition, match="no paused update to resume"):
        await services.set_update_paused(svc.id, resumed.meta.version.index, paused=False)


async def test_update_request_pauses_and_resumes_through_update_action():
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    services = Services(store, clock)
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = "web"
    spec.task.container.image = "busybox"
    svc = await services.create(control_pb2.CreateServiceRequest(spec=spec))

    def updating(tx: Tx) -> None:
        cur = tx.services.get(svc.id)
        assert cur is not None
        cur.update_status.CopyFrom(us.status(us.UPDATING, us.UPDATING_MESSAGE, clock.now()))
        tx.services.update(cur)

    await store.update(updating)
    cur = services.get(control_pb2.GetServiceRequest(service_id=svc.id))
    action = control_pb2.UpdateServiceRequest.UpdateAction
    req = control_pb2.UpdateServiceRequest(
        service_id=svc.id,
        service_version=cur.meta.version,
        update_action=action.UPDATE_ACTION_PAUSE,
    )
    paused = await services.update(req)
    assert paused.update_status.state == us.PAUSED
    assert paused.spec == cur.spec  # the spec is untouched
    both = control_pb2.UpdateServiceRequest(
        service_id=svc.id,
        service_version=paused.meta.version,
        spec=spec,
        update_action=action.UPDATE_ACTION_RESUME,
    )
    with pytest.raises(errors.InvalidArgument, match="cannot be combined"):
        await services.update(both)
    bad = control_pb2.UpdateServiceRequest(
        service_id=svc.id, service_version=paused.meta.version, update_action=7
    )
    with pytest.raises(errors.InvalidArgument, match="update_action"):
        await services.update(bad)
    resumed = await services.update(
        control_pb2.UpdateServiceRequest(
            service_id=svc.id,
            service_version=paused.meta.version,
            update_action=action.UPDATE_ACTION_RESUME,
        )
    )
    assert resumed.update_status.state == us.UPDATING
