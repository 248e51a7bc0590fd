"""Control API component fixtures: a real grpc.aio server on 127.0.0.1:0 over a real MemoryStore."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.component.controlapi.harness import Control, cluster_object, start_control

from swarmd.manager.store import MemoryStore  # isort: skip  (the harness may install a fake)


@pytest.fixture
async def store() -> MemoryStore:
    store = MemoryStore(proposer=None)
    await store.update(lambda tx: tx.clusters.create(cluster_object()))
    return store


@pytest.fixture
async def control(store: MemoryStore) -> AsyncIterator[Control]:
    server, channel, ctl = await start_control(store)
    try:
        yield ctl
    finally:
        await channel.close()
        await server.stop(None)
