"""CA component fixtures: a manager CA with real grpc.aio servers on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.component.ca.harness import Manager, start_manager


@pytest.fixture
async def manager() -> AsyncIterator[Manager]:
    mgr = await start_manager()
    try:
        yield mgr
    finally:
        await mgr.stop()
