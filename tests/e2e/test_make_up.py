"""`make up` brings up a one-host cluster with a demo service; `make down` removes it all.

Runs the real Makefile targets as an operator would (in a scratch state dir and on free ports,
so it cannot disturb a developer's own `make up` cluster).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.cluster import containers
from tests.e2e.harness import REPO, free_port, swarmctl, wait_for

pytestmark = pytest.mark.docker


def _make(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_make_up_runs_demo_service_and_make_down_removes_it(tmp_path: Path) -> None:
    state = tmp_path / "swarmd-up"
    common = [
        f"STATE_DIR={state}",
        f"REMOTE_API=127.0.0.1:{free_port()}",
        f"JOIN_API=127.0.0.1:{free_port()}",
    ]
    up = _make("up", *common)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "READY" in up.stdout
        sock = state / "swarmd.sock"
        nodes = swarmctl(sock, "node", "ls", "--format", "json")
        assert nodes.rc == 0, nodes.err
        (node,) = nodes.json()
        assert node["Status"] == "READY"
        demo = wait_for(
            lambda: len(c := containers(**{"swarmd.service.name": "demo"})) == 2 and c,
            timeout=90,
            what="2 demo containers",
        )
        for ctr in demo:
            assert ctr["Config"]["Labels"]["swarmd.node.id"] == node["ID"]
        # Running it again changes nothing.
        again = _make("up", *common)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout
    finally:
        down = _make("down", *common)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not state.exists()
    assert containers(**{"swarmd.service.name": "demo"}) == []
