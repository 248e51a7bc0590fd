"""Service lifecycle on real containers: rolling update, automatic rollback, health, revisions.

A manager and one worker (real swarmd processes on 127.0.0.1-2 sharing dockerd), driven with
swarmctl as an operator would; states are read through the control API, containers with docker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmd.api import types_pb2
from tests.e2e.cluster import IMAGE, Cluster, containers
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.docker

RUNNING = types_pb2.TASK_STATE_RUNNING
SLEEP = ["--command", "sleep", "--args", "100000", "--stop-grace-period", "0s"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start_manager()
        c.add_worker("wrk1")
        yield c
    finally:
        c.close()


def _ok(r) -> None:
    assert r.rc == 0, r.err


def _env_of_running(c: Cluster, service: str) -> list[str]:
    """The GREETING env of each running task's spec."""
    out = []
    for t in c.running(service):
        env = [e for e in t.spec.container.env if e.startswith("GREETING=")]
        out.append(env[0] if env else "")
    return sorted(out)


def test_rolling_update_stop_first_keeps_at_most_parallelism_down(cluster: Cluster) -> None:
    _ok(
        cluster.ctl(
            "service", "create", "--name", "web", "--image", IMAGE, "--replicas", "6",
            "--env", "GREETING=one", "--update-parallelism", "2", "--update-delay", "0s",
            "--update-monitor", "1s", *SLEEP,
        )
    )  # fmt: skip
    cluster.wait_running("web", 6)
    _ok(cluster.ctl("service", "update", "web", "--env-add", "GREETING=two"))
    worst = 6
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = len(cluster.running("web"))
        worst = min(worst, running)
        if _env_of_running(cluster, "web") == ["GREETING=two"] * 6:
            break
        time.sleep(0.05)
    assert _env_of_running(cluster, "web") == ["GREETING=two"] * 6
    assert worst >= 4, f"{6 - worst} tasks were down at once (parallelism 2)"
    wait_for(
        lambda: "completed" in cluster.ctl("service", "inspect", "web").out,
        timeout=30,
        what="update completed",
    )


def test_update_to_a_crashing_command_rolls_back_by_itself(cluster: Cluster) -> None:
    _ok(
        cluster.ctl(
            "service", "create", "--name", "web", "--image", IMAGE, "--replicas", "3",
            "--update-failure-action", "rollback", "--update-monitor", "3s",
            "--update-parallelism", "1", *SLEEP,
        )
    )  # fmt: skip
    cluster.wait_running("web", 3)
    _ok(cluster.ctl("service", "update", "web", "--command", "sh", "--args=-c", "--args=exit 1"))

    def rolled_back() -> dict | None:
        svc = json.loads(cluster.ctl("service", "inspect", "web").out)
        state = svc.get("UpdateStatus", {}).get("State", "")
        return svc if state == "rollback-completed" else None

    svc = wait_for(rolled_back, timeout=120, interval=0.5, what="automatic rollback completed")
    assert svc["Spec"]["Task"]["Container"]["Command"] == ["sleep"]
    assert "failed" in svc["UpdateStatus"]["Message"]
    cluster.wait_running("web", 3)
    assert all(list(t.spec.container.command) == ["sleep"] for t in cluster.running("web"))


def test_failing_healthcheck_replaces_the_task(cluster: Cluster) -> None:
    _ok(
        cluster.ctl(
            "service", "create", "--name", "sick", "--image", IMAGE, "--replicas", "1",
            "--health-cmd", "test -f /healthy", "--health-interval", "200ms",
            "--health-retries", "2", "--health-timeout", "1s", "--restart-delay", "0s", *SLEEP,
        )
    )  # fmt: skip
    # Never healthy: the first task fails for being unhealthy and a replacement is made.
    wait_for(
        lambda: (
            any(t.status.state == types_pb2.TASK_STATE_FAILED for t in cluster.tasks("sick"))
            and len(cluster.tasks("sick")) >= 2
        ),
        timeout=90,
        what="unhealthy task failed and replaced",
    )
    failed = next(t for t in cluster.tasks("sick") if t.status.state == types_pb2.TASK_STATE_FAILED)
    assert "unhealthy" in failed.status.err


def test_history_lists_revisions_and_rollback_to_goes_two_back(cluster: Cluster) -> None:
    _ok(
        cluster.ctl(
            "service", "create", "--name", "web", "--image", IMAGE, "--replicas", "2",
            "--env", "GREETING=one", "--update-parallelism", "0", *SLEEP,
        )
    )  # fmt: skip
    cluster.wait_running("web", 2)
    _ok(cluster.ctl("service", "update", "web", "--env-add", "GREETING=two"))
    _ok(cluster.ctl("service", "update", "web", "--env-add", "GREETING=three"))
    hist = cluster.ctl("service", "history", "web")
    assert hist.rc == 0, hist.err
    lines = hist.out.splitlines()
    assert lines[0].split()[:3] == ["REVISION", "CREATED", "IMAGE"]
    assert len(lines) == 4
    assert "-GREETING=one +GREETING=two" in lines[2]
    assert "(current)" in lines[3]
    rev = [json.loads(cluster.ctl("service", "history", "web", "--format", "json").out)]
    first = rev[0][0]["Revision"]
    _ok(cluster.ctl("service", "rollback", "web", "--to", first))
    wait_for(
        lambda: _env_of_running(cluster, "web") == ["GREETING=one"] * 2,
        timeout=90,
        what="tasks back on revision 1",
    )
    ctr_env = containers(**{"swarmd.service.name": "web"})[0]["Config"]["Env"]
    assert "GREETING=one" in ctr_env
    bad = cluster.ctl("service", "rollback", "web", "--to", "99")
    assert bad.rc == 1
    assert "has no revision 99" in bad.err


def test_rolling_update_start_first_keeps_all_replicas_running(cluster: Cluster) -> None:
    _ok(
        cluster.ctl(
            "service", "create", "--name", "web", "--image", IMAGE, "--replicas", "6",
            "--env", "GREETING=one", "--update-parallelism", "2", "--update-delay", "0s",
            "--update-order", "start-first", "--update-monitor", "1s", *SLEEP,
        )
    )  # fmt: skip
    cluster.wait_running("web", 6)
    _ok(cluster.ctl("service", "update", "web", "--env-add", "GREETING=two"))
    fewest = 6
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        fewest = min(fewest, len(cluster.running("web")))
        if _env_of_running(cluster, "web") == ["GREETING=two"] * 6:
            break
        time.sleep(0.05)
    assert _env_of_running(cluster, "web") == ["GREETING=two"] * 6
    assert fewest >= 6, f"only {fewest} running at one poll (start-first)"


def test_failing_update_with_pause_stops_and_says_why(cluster: Cluster) -> None:
    _ok(
        cluster.ctl(
            "service", "create", "--name", "web", "--image", IMAGE, "--replicas", "3",
            "--update-failure-action", "pause", "--update-parallelism", "1",
            "--update-monitor", "3s", *SLEEP,
        )
    )  # fmt: skip
    cluster.wait_running("web", 3)
    _ok(cluster.ctl("service", "update", "web", "--command", "sh", "--args=-c", "--args=exit 1"))

    def paused() -> dict | None:
        svc = json.loads(cluster.ctl("service", "inspect", "web").out)
        return svc if svc.get("UpdateStatus", {}).get("State") == "paused" else None

    svc = wait_for(paused, timeout=120, interval=0.5, what="update paused")
    message = svc["UpdateStatus"]["Message"]
    assert "paused" in message
    assert "non-zero exit (1)" in message

    # Paused means no more slots are updated: the updated ones stay as they are (their tasks
    # may restart), the others keep running the old command.
    def new_slots() -> set[int]:
        return {t.slot for t in cluster.tasks("web") if list(t.spec.container.command) == ["sh"]}

    at_pause = new_slots()
    time.sleep(4)
    assert new_slots() == at_pause
    old = [t for t in cluster.running("web") if list(t.spec.container.command) == ["sleep"]]
    assert old, "every replica was updated although the update paused"


@pytest.mark.timeout(200)
def test_update_whose_tasks_never_get_healthy_rolls_back(cluster: Cluster) -> None:
    _ok(
        cluster.ctl(
            "service", "create", "--name", "web", "--image", IMAGE, "--replicas", "2",
            "--update-failure-action", "rollback", "--update-parallelism", "1",
            "--update-monitor", "5s", "--restart-delay", "0s", *SLEEP,
        )
    )  # fmt: skip
    cluster.wait_running("web", 2)
    _ok(
        cluster.ctl(
            "service", "update", "web", "--health-cmd", "test -f /never",
            "--health-interval", "200ms", "--health-retries", "2", "--health-timeout", "1s",
        )
    )  # fmt: skip

    def rolled_back() -> dict | None:
        svc = json.loads(cluster.ctl("service", "inspect", "web").out)
        state = svc.get("UpdateStatus", {}).get("State", "")
        return svc if state == "rollback-completed" else None

    svc = wait_for(rolled_back, timeout=100, interval=0.5, what="rollback after unhealthy update")
    assert "Healthcheck" not in svc["Spec"]["Task"]["Container"]
    cluster.wait_running("web", 2)
