"""Service RPCs over a real grpc.aio server and store: codes, messages, revisions, removal."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from swarmd.api import control_pb2, objects_pb2, specs_pb2, types_pb2
from tests.component.controlapi.harness import Control

from swarmd.manager.store import Tx  # isort: skip  (the harness may install a fake)

Code = grpc.StatusCode
Req = control_pb2


def spec(
    name: str = "web", image: str = "nginx:1.25", replicas: int | None = 1
) -> specs_pb2.ServiceSpec:
    s = specs_pb2.ServiceSpec(
        annotations=types_pb2.Annotations(name=name, labels={"tier": "front"}),
        task=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image=image)),
    )
    if replicas is not None:
        s.replicated.replicas = replicas
    return s


async def create(ctl: Control, s: specs_pb2.ServiceSpec) -> objects_pb2.Service:
    return (await ctl.stub.CreateService(Req.CreateServiceRequest(spec=s))).service


async def update(
    ctl: Control,
    svc: objects_pb2.Service,
    s: specs_pb2.ServiceSpec | None = None,
    *,
    rollback: bool = False,
    rollback_to_revision: int = 0,
) -> objects_pb2.Service:
    req = Req.UpdateServiceRequest(
        service_id=svc.id,
        service_version=svc.meta.version,
        spec=s,
        rollback=(
            Req.UpdateServiceRequest.ROLLBACK_PREVIOUS
            if rollback
            else Req.UpdateServiceRequest.ROLLBACK_NONE
        ),
        rollback_to_revision=rollback_to_revision,
    )
    return (await ctl.stub.UpdateService(req)).service


async def fails(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(aio.AioRpcError) as exc:
        await call  # type: ignore[misc]
    assert exc.value.code() == code, exc.value.details()
    return exc.value.details() or ""


async def test_service_round_trip(control: Control) -> None:
    svc = await create(control, spec())
    assert len(svc.id) == 25
    assert svc.revision == 1
    assert [r.revision for r in svc.history] == [1]
    assert svc.meta.version.index > 0

    got = (await control.stub.GetService(Req.GetServiceRequest(service_id=svc.id))).service
    assert got == svc

    listed = (await control.stub.ListServices(Req.ListServicesRequest())).services
    assert [s.id for s in listed] == [svc.id]

    new = spec(image="nginx:1.26", replicas=3)
    updated = await update(control, svc, new)
    assert updated.spec.replicated.replicas == 3
    assert updated.previous_spec.task.container.image == "nginx:1.25"
    assert updated.revision == 2
    assert updated.meta.version.index > svc.meta.version.index

    await control.stub.RemoveService(Req.RemoveServiceRequest(service_id=svc.id))
    msg = await fails(
        control.stub.GetService(Req.GetServiceRequest(service_id=svc.id)), Code.NOT_FOUND
    )
    assert msg == f"service {svc.id} not found"
    await fails(
        control.stub.RemoveService(Req.RemoveServiceRequest(service_id=svc.id)), Code.NOT_FOUND
    )


async def test_service_create_defaults_mode_to_one_replica(control: Control) -> None:
    svc = await create(control, spec(replicas=None))
    assert svc.spec.WhichOneof("mode") == "replicated"
    assert svc.spec.replicated.replicas == 1


async def test_service_create_invalid_spec(control: Control) -> None:
    msg = await fails(
        control.stub.CreateService(Req.CreateServiceRequest(spec=spec(name="web!"))),
        Code.INVALID_ARGUMENT,
    )
    assert msg.startswith('invalid service name "web!": must be 1-63 characters')
    msg = await fails(
        control.stub.CreateService(Req.CreateServiceRequest(spec=spec(image=""))),
        Code.INVALID_ARGUMENT,
    )
    assert msg == 'invalid task.container.image "": an image is required'


async def test_service_name_conflict_is_case_insensitive(control: Control) -> None:
    await create(control, spec(name="web"))
    msg = await fails(
        control.stub.CreateService(Req.CreateServiceRequest(spec=spec(name="WEB"))),
        Code.ALREADY_EXISTS,
    )
    assert "WEB" in msg
    assert "already in use" in msg


async def test_service_get_requires_id(control: Control) -> None:
    msg = await fails(control.stub.GetService(Req.GetServiceRequest()), Code.INVALID_ARGUMENT)
    assert msg == "service_id is required"


async def test_service_update_stale_version(control: Control) -> None:
    svc = await create(control, spec())
    await update(control, svc, spec(replicas=2))
    msg = await fails(update(control, svc, spec(replicas=3)), Code.FAILED_PRECONDITION)
    assert msg.startswith("update out of sequence: service")


async def test_service_update_requires_version(control: Control) -> None:
    svc = await create(control, spec())
    req = Req.UpdateServiceRequest(service_id=svc.id, spec=spec(replicas=2))
    msg = await fails(control.stub.UpdateService(req), Code.INVALID_ARGUMENT)
    assert msg == "service_version is required"


async def test_service_mode_change_refused(control: Control) -> None:
    svc = await create(control, spec())
    glob = spec(replicas=None)
    getattr(glob, "global").SetInParent()
    msg = await fails(update(control, svc, glob), Code.INVALID_ARGUMENT)
    assert msg == (
        'invalid mode "global": service web is replicated and a service mode cannot change; '
        "remove the service and create it again"
    )


async def test_service_rename_refused(control: Control) -> None:
    svc = await create(control, spec())
    msg = await fails(update(control, svc, spec(name="api")), Code.INVALID_ARGUMENT)
    assert msg == (
        'invalid service name "api": renaming services is not supported '
        '(the service is named "web")'
    )


async def test_service_revisions_bounded(control: Control) -> None:
    svc = await create(control, spec(replicas=0))
    for n in range(1, 10):
        svc = await update(control, svc, spec(replicas=n))
    assert svc.revision == 10
    # The default cluster keeps 5 earlier revisions besides the current one.
    assert [r.revision for r in svc.history] == [5, 6, 7, 8, 9, 10]
    assert [r.spec.replicated.replicas for r in svc.history] == [4, 5, 6, 7, 8, 9]
    assert svc.history[-1].spec == svc.spec
    assert all(r.HasField("created_at") for r in svc.history)


async def test_service_history_follows_cluster_setting(control: Control) -> None:
    cluster = (await control.stub.ListClusters(Req.ListClustersRequest())).clusters[0]
    cluster.spec.service_history.revisions = 2
    await control.stub.UpdateCluster(
        Req.UpdateClusterRequest(
            cluster_id=cluster.id, cluster_version=cluster.meta.version, spec=cluster.spec
        )
    )
    svc = await create(control, spec(replicas=0))
    for n in range(1, 6):
        svc = await update(control, svc, spec(replicas=n))
    assert [r.revision for r in svc.history] == [4, 5, 6]


async def test_service_rollback_previous(control: Control) -> None:
    svc = await create(control, spec(image="app:v1"))
    svc = await update(control, svc, spec(image="app:v2"))
    back = await update(control, svc, rollback=True)
    assert back.spec.task.container.image == "app:v1"
    assert back.previous_spec.task.container.image == "app:v2"
    assert back.revision == 3
    assert back.update_status.state == types_pb2.UpdateStatus.UPDATE_STATE_ROLLBACK_STARTED
    # A normal update clears the rollback status again.
    again = await update(control, back, spec(image="app:v3"))
    assert not again.HasField("update_status")


async def test_service_rollback_without_previous_spec(control: Control) -> None:
    svc = await create(control, spec())
    msg = await fails(
        update(control, svc, rollback=True),
        Code.FAILED_PRECONDITION,
    )
    assert msg == "service web does not have a previous spec"


async def test_service_rollback_to_revision(control: Control) -> None:
    svc = await create(control, spec(image="app:v1"))
    for v in (2, 3, 4):
        svc = await update(control, svc, spec(image=f"app:v{v}"))
    back = await update(
        control,
        svc,
        rollback=True,
        rollback_to_revision=2,
    )
    assert back.spec.task.container.image == "app:v2"
    assert back.revision == 5
    msg = await fails(
        update(
            control,
            back,
            rollback=True,
            rollback_to_revision=42,
        ),
        Code.FAILED_PRECONDITION,
    )
    assert msg == "service web has no revision 42 (kept revisions: 1, 2, 3, 4, 5)"
    msg = await fails(update(control, back, spec(), rollback_to_revision=2), Code.INVALID_ARGUMENT)
    assert msg == "rollback_to_revision needs rollback=ROLLBACK_PREVIOUS"


async def test_service_list_filters(control: Control) -> None:
    web = await create(control, spec(name="web"))
    api = await create(control, spec(name="api"))
    s = spec(name="web-admin")
    s.annotations.labels["tier"] = "back"
    admin = await create(control, s)

    async def names(**filters: object) -> list[str]:
        req = Req.ListServicesRequest(filters=Req.ListFilters(**filters))  # type: ignore[arg-type]
        return sorted(
            x.spec.annotations.name for x in (await control.stub.ListServices(req)).services
        )

    assert await names(names=["WEB", "nope"]) == ["web"]
    assert await names(name_prefixes=["We"]) == ["web", "web-admin"]
    assert await names(id_prefixes=[api.id[:6]]) == ["api"]
    assert await names(labels={"tier": "back"}) == ["web-admin"]
    assert await names(labels={"tier": ""}) == ["api", "web", "web-admin"]
    assert await names(name_prefixes=["web"], labels={"tier": "front"}) == ["web"]
    assert {web.id, admin.id} <= {
        x.id for x in (await control.stub.ListServices(Req.ListServicesRequest())).services
    }


async def test_service_insert_defaults(control: Control) -> None:
    svc = await create(control, spec())
    plain = (await control.stub.GetService(Req.GetServiceRequest(service_id=svc.id))).service
    assert not plain.spec.HasField("update")
    full = (
        await control.stub.GetService(
            Req.GetServiceRequest(service_id=svc.id, insert_defaults=True)
        )
    ).service
    assert full.spec.update.monitor.seconds == 5
    assert full.spec.update.parallelism == 1
    assert full.spec.task.restart.delay.seconds == 5
    assert full.spec.task.container.stop_grace_period.seconds == 10


async def test_service_remove_marks_tasks_remove(control: Control) -> None:
    svc = await create(control, spec(replicas=250))
    tasks = [
        objects_pb2.Task(
            id=f"t{i:024d}",
            service_id=svc.id,
            slot=i + 1,
            desired_state=types_pb2.TASK_STATE_RUNNING,
        )
        for i in range(250)
    ]

    def add(tx: Tx, batch: list[objects_pb2.Task]) -> None:
        for t in batch:
            tx.tasks.create(t)

    await control.store.update(lambda tx: add(tx, tasks[:150]))
    await control.store.update(lambda tx: add(tx, tasks[150:]))
    await control.stub.RemoveService(Req.RemoveServiceRequest(service_id=svc.id))
    left = control.store.view(lambda tx: tx.tasks.find_by_service(svc.id))
    assert len(left) == 250
    assert {t.desired_state for t in left} == {types_pb2.TASK_STATE_REMOVE}


async def test_service_statuses(control: Control) -> None:
    svc = await create(control, spec(replicas=3))
    states = [
        types_pb2.TASK_STATE_RUNNING,
        types_pb2.TASK_STATE_RUNNING,
        types_pb2.TASK_STATE_PENDING,
    ]

    def add(tx: Tx) -> None:
        for i, state in enumerate(states):
            tx.tasks.create(
                objects_pb2.Task(
                    id=f"s{i:024d}",
                    service_id=svc.id,
                    slot=i + 1,
                    desired_state=types_pb2.TASK_STATE_RUNNING,
                    status=types_pb2.TaskStatus(state=state),
                )
            )

    await control.store.update(add)
    resp = await control.stub.ListServiceStatuses(
        Req.ListServiceStatusesRequest(services=[svc.id, "missing"])
    )
    assert [(s.service_id, s.desired_tasks, s.running_tasks) for s in resp.statuses] == [
        (svc.id, 3, 2)
    ]


async def test_service_secret_reference_resolved(control: Control) -> None:
    secret = (
        await control.stub.CreateSecret(
            Req.CreateSecretRequest(
                spec=specs_pb2.SecretSpec(
                    annotations=types_pb2.Annotations(name="db-pass"), data=b"hunter2"
                )
            )
        )
    ).secret
    s = spec()
    s.task.container.secrets.add(secret_name="DB-PASS", file=types_pb2.FileTarget(name="db"))
    svc = await create(control, s)
    ref = svc.spec.task.container.secrets[0]
    assert (ref.secret_id, ref.secret_name) == (secret.id, "db-pass")

    bad = spec(name="api")
    bad.task.container.secrets.add(secret_name="nope", file=types_pb2.FileTarget(name="x"))
    msg = await fails(
        control.stub.CreateService(Req.CreateServiceRequest(spec=bad)), Code.INVALID_ARGUMENT
    )
    assert msg == 'invalid task.container.secrets[0] "nope": secret not found'
