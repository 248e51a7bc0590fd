"""Promotion, manager side: a worker asked to become a manager gets a manager certificate at its
next renewal, and only then does the role manager observe it as a manager (real CA servers on
127.0.0.1, mTLS renewal; raft membership scripted, the promoted node has not joined raft yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from swarmd.api import types_pb2
from swarmd.ca import join
from swarmd.ca.renewer import Renewer
from swarmd.ca.rootca import Role
from swarmd.ca.security import SecurityConfig
from swarmd.clock import SystemClock
from swarmd.manager.rolemanager import RoleManager
from swarmd.raft import RaftID
from swarmd.rpc.channel import manager_channel
from tests.component.ca.harness import Manager, start_manager


@pytest.fixture
async def manager():
    mgr = await start_manager()
    try:
        yield mgr
    finally:
        await mgr.stop()


class NoRaft:
    """A leader whose raft has only itself; nothing is removed or transferred here."""

    raft_id = RaftID(1)

    def member_of_node(self, node_id):
        return None

    def members(self):
        return []

    async def remove_node(self, node_id, verb="removing"):
        raise AssertionError(f"unexpected removal of {node_id}")

    async def transfer_leadership(self):
        raise AssertionError("unexpected transfer")


async def test_membership_promotion_needs_a_manager_certificate_first(manager: Manager, tmp_path):
    creds = await join.join(
        manager.join_addr, manager.boot.worker_token, tmp_path, "w", ["10.1.1.1"]
    )
    security = SecurityConfig(creds)
    renewer = Renewer(security, tmp_path, lambda: manager_channel(manager.cluster_addr, security))
    node_id = creds.node_id
    store = manager.store

    def observed() -> int:
        return store.view(lambda tx: tx.nodes.get(node_id)).role

    def promote(tx):
        node = tx.nodes.get(node_id)
        node.spec.desired_role = types_pb2.NODE_ROLE_MANAGER  # what `node promote` writes
        tx.nodes.update(node)

    task = asyncio.create_task(RoleManager(store, NoRaft(), SystemClock()).run())
    try:
        await store.update(promote)
        await asyncio.sleep(0.1)
        assert observed() == types_pb2.NODE_ROLE_WORKER  # the certificate still says worker
        renewed = await renewer.renew()  # the node renews once it sees its desired role
        assert renewed.role is Role.MANAGER
        deadline = time.monotonic() + 10
        while observed() != types_pb2.NODE_ROLE_MANAGER:
            assert time.monotonic() < deadline, "role manager did not observe the promotion"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
