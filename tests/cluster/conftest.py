"""Fixtures for in-process cluster tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.harness import InProcessCluster


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    c = InProcessCluster(tmp_path)
    try:
        yield c
    finally:
        await c.close()
