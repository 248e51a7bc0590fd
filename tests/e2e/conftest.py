"""Fixtures for end-to-end tests: swarmd processes cleaned up after each test."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import SwarmdProcess


@pytest.fixture
def swarmd_factory(tmp_path: Path) -> Iterator[object]:
    procs: list[SwarmdProcess] = []

    def make(name: str = "node-1", **kw: object) -> SwarmdProcess:
        p = SwarmdProcess(state_dir=tmp_path / name, hostname=name, **kw)  # type: ignore[arg-type]
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.send_signal(signal.SIGKILL)
            p.proc.wait(10)
