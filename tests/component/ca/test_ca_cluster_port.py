"""The mTLS cluster port: who gets in, which role may call what, and current_peer()."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from swarmd.ca.rootca import Role, RootCA
from swarmd.rpc.status import from_rpc_error
from tests.component.ca.harness import Manager, get_node, get_root, mtls_channel


async def _code(coro) -> grpc.StatusCode:
    with pytest.raises(aio.AioRpcError) as exc:
        await coro
    return exc.value.code()


async def test_manager_certificate_may_call_control_and_peer_is_bound(manager: Manager):
    creds = manager.boot.credentials
    async with mtls_channel(manager.cluster_addr, creds, manager.root.cert_pem) as ch:
        node = await get_node(ch)
    assert node.id == creds.node_id
    assert node.description.hostname == f"swarm-manager/{manager.boot.cluster_id}"


async def test_no_client_certificate_is_refused_as_unavailable(manager: Manager):
    async with mtls_channel(manager.cluster_addr, None, manager.root.cert_pem) as ch:
        assert await _code(get_root(ch)) == grpc.StatusCode.UNAVAILABLE


async def test_certificate_from_another_ca_is_refused_as_unavailable(manager: Manager):
    other = RootCA.create()
    creds = manager.issue(Role.MANAGER, root=other)
    async with mtls_channel(manager.cluster_addr, creds, manager.root.cert_pem) as ch:
        with pytest.raises(aio.AioRpcError) as exc:
            await get_root(ch)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "TLS handshake failed or manager unreachable" in str(from_rpc_error(exc.value))


async def test_worker_calling_control_is_permission_denied(manager: Manager):
    creds = manager.issue(Role.WORKER)
    async with mtls_channel(manager.cluster_addr, creds, manager.root.cert_pem) as ch:
        with pytest.raises(aio.AioRpcError) as exc:
            await get_node(ch)
        # The same connection may still call what workers are allowed to.
        assert await get_root(ch) == manager.root.cert_pem
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == "role swarm-worker may not call /swarmkit.v1.Control/GetNode"


async def test_certificate_of_another_cluster_is_permission_denied(manager: Manager):
    creds = manager.issue(Role.MANAGER, cluster_id="someothercluster")
    async with mtls_channel(manager.cluster_addr, creds, manager.root.cert_pem) as ch:
        with pytest.raises(aio.AioRpcError) as exc:
            await get_root(ch)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "someothercluster" in (exc.value.details() or "")
