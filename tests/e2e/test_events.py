"""`swarmctl events`: a scale is the service update and each task's life; resume by version."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import IMAGE, Cluster
from tests.e2e.harness import SWARMCTL, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start_manager()
        yield c
    finally:
        c.close()


def _subscribed(c: Cluster) -> int:
    """How many Watch subscriptions the manager has opened (it logs each at debug)."""
    assert c.manager is not None
    return c.manager.logs(tail=0).count("watch started")


def _events(c: Cluster, *args: str) -> subprocess.Popen[str]:
    """`swarmctl events` in the background, returned once its subscription is live."""
    assert c.manager is not None
    before = _subscribed(c)
    proc = subprocess.Popen(
        [*SWARMCTL, "-s", str(c.manager.socket), "events", "--format", "json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, GRPC_VERBOSITY="NONE"),
    )
    wait_for(lambda: _subscribed(c) > before, timeout=30, what="events subscribed")
    return proc


def _read(proc: subprocess.Popen[str], timeout: float = 60) -> list[dict]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_scale_shows_the_service_update_and_each_tasks_life(cluster: Cluster) -> None:
    r = cluster.ctl(
        "service", "create", "--name", "web", "--image", IMAGE, "--replicas", "1",
        "--stop-grace-period", "0s", "--command", "sleep", "--args", "100000",
    )  # fmt: skip
    assert r.rc == 0, r.err
    cluster.wait_running("web", 1)
    # One service update, then for each of 2 new tasks: create, and updates up to running.
    proc = _events(cluster, "--service", "web", "--count", "9")
    assert cluster.ctl("service", "scale", "web=3").rc == 0
    events = _read(proc)
    assert events[0]["Kind"] == "service"
    assert events[0]["Action"] == "update"
    assert events[0]["Service"]["Spec"]["Replicated"]["Replicas"] == 3
    created = [e for e in events if e["Kind"] == "task" and e["Action"] == "create"]
    assert len(created) == 2
    new_ids = {e["ID"] for e in created}
    states = [e["Task"]["Status"].get("State") for e in events if e["ID"] in new_ids]
    assert "pending" in states
    assert any(
        s in ("assigned", "accepted", "preparing", "ready", "starting", "running") for s in states
    )
    versions = [e["Version"] for e in events]
    assert versions == sorted(versions)


def test_a_client_resuming_from_its_last_version_misses_nothing(cluster: Cluster) -> None:
    first = _events(cluster, "--kind", "secret", "--count", "1")
    assert cluster.ctl("secret", "create", "a", stdin="1").rc == 0
    (seen,) = _read(first)
    # While no client listens, three more changes are committed.
    for name in ("b", "c"):
        assert cluster.ctl("secret", "create", name, stdin="x").rc == 0
    assert cluster.ctl("secret", "rm", "a").rc == 0
    resumed = _read(
        _events(cluster, "--kind", "secret", "--since", str(seen["Version"]), "--count", "3")
    )
    assert [(e["Action"], e["Name"]) for e in resumed] == [
        ("create", "b"),
        ("create", "c"),
        ("remove", "a"),
    ]
    assert all("Data" not in e["Secret"].get("Spec", {}) for e in [seen, *resumed])
