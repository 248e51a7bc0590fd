"""Secret, config and network RPCs: data redaction, in-use refusals, names."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from swarmd.api import control_pb2, specs_pb2, types_pb2
from tests.component.controlapi.harness import Control

Code = grpc.StatusCode
Req = control_pb2
SECRET = b"correct horse battery staple"


async def fails(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(aio.AioRpcError) as exc:
        await call  # type: ignore[misc]
    assert exc.value.code() == code, exc.value.details()
    return exc.value.details() or ""


async def make_secret(ctl: Control, name: str = "db-pass") -> str:
    spec = specs_pb2.SecretSpec(annotations=types_pb2.Annotations(name=name), data=SECRET)
    resp = await ctl.stub.CreateSecret(Req.CreateSecretRequest(spec=spec))
    assert resp.secret.spec.data == b""
    return resp.secret.id


async def make_service(ctl: Control, name: str, **refs: str) -> str:
    spec = specs_pb2.ServiceSpec(
        annotations=types_pb2.Annotations(name=name),
        task=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="app")),
    )
    if "secret" in refs:
        spec.task.container.secrets.add(
            secret_id=refs["secret"], file=types_pb2.FileTarget(name="s")
        )
    if "config" in refs:
        spec.task.container.configs.add(
            config_id=refs["config"], file=types_pb2.FileTarget(name="/c")
        )
    if "network" in refs:
        spec.task.networks.add(target=refs["network"])
    return (await ctl.stub.CreateService(Req.CreateServiceRequest(spec=spec))).service.id


async def test_secret_data_never_returned(control: Control) -> None:
    secret_id = await make_secret(control)
    got = (await control.stub.GetSecret(Req.GetSecretRequest(secret_id=secret_id))).secret
    assert got.spec.annotations.name == "db-pass"
    assert got.spec.data == b""
    listed = (await control.stub.ListSecrets(Req.ListSecretsRequest())).secrets
    assert [s.id for s in listed] == [secret_id]
    assert all(s.spec.data == b"" for s in listed)
    assert SECRET not in b"".join(s.SerializeToString() for s in listed)
    # ...while the store still has it for the agents.
    stored = control.store.view(lambda tx: tx.secrets.get(secret_id))
    assert stored is not None
    assert stored.spec.data == SECRET


async def test_secret_name_conflict(control: Control) -> None:
    await make_secret(control, "db-pass")
    spec = specs_pb2.SecretSpec(annotations=types_pb2.Annotations(name="DB-Pass"), data=b"x")
    await fails(control.stub.CreateSecret(Req.CreateSecretRequest(spec=spec)), Code.ALREADY_EXISTS)


async def test_secret_invalid_spec_message_has_no_data(control: Control) -> None:
    spec = specs_pb2.SecretSpec(annotations=types_pb2.Annotations(name="big"), data=b"S" * 600_000)
    msg = await fails(
        control.stub.CreateSecret(Req.CreateSecretRequest(spec=spec)), Code.INVALID_ARGUMENT
    )
    assert (
        msg == "invalid secret data (600000 bytes): must be at least 1 byte and less than 500 KiB"
    )


async def test_secret_removal_refused_while_in_use(control: Control) -> None:
    secret_id = await make_secret(control)
    web = await make_service(control, "web", secret=secret_id)
    api = await make_service(control, "api", secret=secret_id)
    msg = await fails(
        control.stub.RemoveSecret(Req.RemoveSecretRequest(secret_id=secret_id)),
        Code.FAILED_PRECONDITION,
    )
    assert msg == "secret db-pass is in use by service(s) api, web"
    for sid in (web, api):
        await control.stub.RemoveService(Req.RemoveServiceRequest(service_id=sid))
    await control.stub.RemoveSecret(Req.RemoveSecretRequest(secret_id=secret_id))
    await fails(control.stub.GetSecret(Req.GetSecretRequest(secret_id=secret_id)), Code.NOT_FOUND)


async def test_config_returned_with_data_and_guarded(control: Control) -> None:
    spec = specs_pb2.ConfigSpec(annotations=types_pb2.Annotations(name="app.conf"), data=b"k=v")
    config = (await control.stub.CreateConfig(Req.CreateConfigRequest(spec=spec))).config
    assert config.spec.data == b"k=v"
    got = (await control.stub.GetConfig(Req.GetConfigRequest(config_id=config.id))).config
    assert got.spec.data == b"k=v"
    await make_service(control, "web", config=config.id)
    msg = await fails(
        control.stub.RemoveConfig(Req.RemoveConfigRequest(config_id=config.id)),
        Code.FAILED_PRECONDITION,
    )
    assert msg == "config app.conf is in use by service(s) web"
    listed = await control.stub.ListConfigs(
        Req.ListConfigsRequest(filters=Req.ListFilters(name_prefixes=["APP"]))
    )
    assert [c.id for c in listed.configs] == [config.id]


async def test_network_lifecycle(control: Control) -> None:
    spec = specs_pb2.NetworkSpec(annotations=types_pb2.Annotations(name="backend"))
    net = (await control.stub.CreateNetwork(Req.CreateNetworkRequest(spec=spec))).network
    await fails(
        control.stub.CreateNetwork(Req.CreateNetworkRequest(spec=spec)), Code.ALREADY_EXISTS
    )
    bad = specs_pb2.NetworkSpec(annotations=types_pb2.Annotations(name="a b"))
    await fails(
        control.stub.CreateNetwork(Req.CreateNetworkRequest(spec=bad)), Code.INVALID_ARGUMENT
    )

    svc_id = await make_service(control, "web", network="backend")
    svc = (await control.stub.GetService(Req.GetServiceRequest(service_id=svc_id))).service
    assert svc.spec.task.networks[0].target == net.id  # names are resolved to ids
    msg = await fails(
        control.stub.RemoveNetwork(Req.RemoveNetworkRequest(network_id=net.id)),
        Code.FAILED_PRECONDITION,
    )
    assert msg == "network backend is in use by service(s) web"
    await control.stub.RemoveService(Req.RemoveServiceRequest(service_id=svc_id))
    await control.stub.RemoveNetwork(Req.RemoveNetworkRequest(network_id=net.id))
    listed = await control.stub.ListNetworks(Req.ListNetworksRequest())
    assert list(listed.networks) == []


async def test_service_with_unknown_network(control: Control) -> None:
    msg = await fails(make_service(control, "web", network="nope"), Code.INVALID_ARGUMENT)
    assert msg == 'invalid task.networks[0].target "nope": network not found'
