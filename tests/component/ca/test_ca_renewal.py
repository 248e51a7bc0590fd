"""Renewal over mTLS: new certificates, role changes, a live server picking up its new cert."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from swarmd import errors
from swarmd.api import types_pb2
from swarmd.ca import certstore, join
from swarmd.ca.renewer import Renewer
from swarmd.ca.rootca import Role
from swarmd.ca.security import SecurityConfig
from swarmd.rpc.channel import manager_channel
from swarmd.testing.fake_clock import FakeClock
from tests.component.ca.harness import Manager, server_cert_serial


async def _joined(manager: Manager, tmp_path, token=None) -> tuple[SecurityConfig, Renewer]:
    creds = await join.join(
        manager.join_addr, token or manager.boot.worker_token, tmp_path, "w", ["10.1.1.1"]
    )
    security = SecurityConfig(creds)
    renewer = Renewer(security, tmp_path, lambda: manager_channel(manager.cluster_addr, security))
    return security, renewer


async def test_renewal_keeps_node_id_and_replaces_certificate(manager: Manager, tmp_path):
    security, renewer = await _joined(manager, tmp_path)
    old = security.credentials
    new = await renewer.renew()
    assert new.node_id == old.node_id
    assert new.role is Role.WORKER
    assert new.serial != old.serial
    assert new.key_pem != old.key_pem
    assert security.credentials == new
    assert certstore.load(tmp_path) == new
    node = manager.store.view(lambda tx: tx.nodes.get(new.node_id))
    assert node is not None
    assert node.certificate.certificate == new.cert_pem


async def test_renewal_applies_role_from_store(manager: Manager, tmp_path):
    security, renewer = await _joined(manager, tmp_path)
    node_id = security.credentials.node_id

    def promote(tx):
        node = tx.nodes.get(node_id)
        node.spec.desired_role = types_pb2.NODE_ROLE_MANAGER
        node.role = types_pb2.NODE_ROLE_MANAGER
        tx.nodes.update(node)

    await manager.store.update(promote)
    new = await renewer.renew()
    assert new.role is Role.MANAGER
    assert new.is_manager


async def test_renewal_of_removed_node_is_permission_denied(manager: Manager, tmp_path):
    security, renewer = await _joined(manager, tmp_path)
    node_id = security.credentials.node_id
    await manager.store.update(lambda tx: tx.nodes.delete(node_id))
    with pytest.raises(errors.PermissionDenied, match=f"node {node_id}"):
        await renewer.renew()


async def test_server_presents_renewed_certificate_without_restart(manager: Manager, tmp_path):
    creds = manager.boot.credentials
    before = server_cert_serial(manager.cluster_addr, creds, tmp_path / "probe")
    assert before == creds.serial
    # The manager renews its own certificate through its own cluster port.
    renewer = Renewer(
        manager.security,
        tmp_path,
        lambda: manager_channel(manager.cluster_addr, manager.security),
    )
    new = await renewer.renew()
    after = server_cert_serial(manager.cluster_addr, new, tmp_path / "probe")
    assert after == new.serial
    assert after != before


async def test_renewer_runs_in_the_renewal_window(manager: Manager, tmp_path):
    security, _ = await _joined(manager, tmp_path)
    creds = security.credentials
    clock = FakeClock(start=creds.not_before.timestamp())
    renewer = Renewer(
        security,
        tmp_path,
        lambda: manager_channel(manager.cluster_addr, security),
        clock=clock,
    )
    task = asyncio.create_task(renewer.run())
    try:
        lifetime = (creds.not_after - creds.not_before).total_seconds()
        await clock.advance(lifetime * 0.49)
        assert security.credentials == creds  # not yet: the window starts at 50 %
        changed = asyncio.create_task(security.wait_changed())
        await clock.advance(lifetime * 0.32)  # past 80 %
        async with asyncio.timeout(10):
            new = await changed
        assert new.serial != creds.serial
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_renewer_backs_off_and_retries_after_failure(manager: Manager, tmp_path):
    security, _ = await _joined(manager, tmp_path)
    clock = FakeClock(start=security.credentials.not_before.timestamp())
    attempts = 0

    def connect():
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise errors.Unavailable("no manager known")
        return manager_channel(manager.cluster_addr, security)

    renewer = Renewer(security, tmp_path, connect, clock=clock)
    task = asyncio.create_task(renewer.run())
    try:
        changed = asyncio.create_task(security.wait_changed())
        renewer.request_renewal()
        for _ in range(20):
            await asyncio.sleep(0)
        assert attempts == 1
        await clock.advance(5.0)  # the first backoff is at most 5 s
        async with asyncio.timeout(10):
            await changed
        assert attempts == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_cluster_cert_expiry_comes_from_cluster_spec(tmp_path):
    from tests.component.ca.harness import start_manager

    mgr = await start_manager(node_cert_expiry=timedelta(hours=3))
    try:
        creds = await join.join(mgr.join_addr, mgr.boot.worker_token, tmp_path, "w", [])
        assert creds.not_after - creds.not_before == timedelta(hours=4)  # + 1 h backdate
    finally:
        await mgr.stop()
