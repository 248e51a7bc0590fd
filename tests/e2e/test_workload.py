"""Services run as real containers over three hosts: spread, scale, drain, failures, adoption.

A manager and two workers, each a swarmd process on its own 127.0.0.x address, sharing this
machine's dockerd (multihost.md, cheap variant). What is asserted is what an operator sees:
swarmctl's answers, the tasks' states and nodes, and `docker ps`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmd.api import objects_pb2, types_pb2
from tests.e2e.cluster import IMAGE, Cluster, containers, docker
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.docker

SLEEP = ["--command", "sleep", "--args", "100000"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start_manager()
        c.add_worker("wrk1")
        c.add_worker("wrk2")
        yield c
    finally:
        c.close()


def _create(c: Cluster, name: str, *args: str) -> None:
    r = c.ctl("service", "create", "--name", name, "--image", IMAGE, *args)
    assert r.rc == 0, r.err


def test_replicas_spread_scale_and_drain(cluster: Cluster) -> None:
    # Stop grace 0: `sleep` as PID 1 ignores SIGTERM.
    _create(cluster, "web", "--replicas", "6", "--stop-grace-period", "0s", *SLEEP)
    cluster.wait_running("web", 6)
    assert sorted(cluster.spread("web").values()) == [2, 2, 2]
    # The containers carry our names and labels.
    ctrs = cluster.wait_containers("web", 6)
    for ctr in ctrs:
        labels = ctr["Config"]["Labels"]
        assert labels["swarmd.service.name"] == "web"
        assert ctr["Name"].lstrip("/").startswith(f"web.{labels['swarmd.task.slot']}.")
        assert labels["swarmd.task.id"] in ctr["Name"]
    # service ls shows running/desired.
    ls = cluster.ctl("service", "ls")
    assert "6/6" in ls.out, ls.out

    assert cluster.ctl("service", "scale", "web=12").rc == 0
    cluster.wait_running("web", 12)
    assert sorted(cluster.spread("web").values()) == [4, 4, 4]

    assert cluster.ctl("service", "scale", "web=2").rc == 0
    cluster.wait_running("web", 2)
    cluster.wait_containers("web", 2)
    spread = cluster.spread("web")
    assert max(spread.values()) == 1, spread

    assert cluster.ctl("service", "scale", "web=6").rc == 0
    cluster.wait_running("web", 6)
    r = cluster.ctl("node", "drain", "wrk1")
    assert r.rc == 0, r.err
    wait_for(
        lambda: (
            cluster.spread("web").get("wrk1", 0) == 0 and sum(cluster.spread("web").values()) == 6
        ),
        timeout=60,
        what="tasks moved off the drained node",
    )
    assert sorted(cluster.spread("web").values()) == [3, 3]
    wrk1 = cluster.node_id("wrk1")
    wait_for(lambda: not containers(**{"swarmd.node.id": wrk1}), what="wrk1 containers gone")


def test_killed_worker_goes_down_and_its_tasks_move(cluster: Cluster) -> None:
    _create(cluster, "web", "--replicas", "6", "--stop-grace-period", "0s", *SLEEP)
    cluster.wait_running("web", 6)
    wrk2 = cluster.workers[1]
    wrk2_id = cluster.node_id("wrk2")
    killed_at = time.monotonic()
    wrk2.kill()
    wait_for(
        lambda: cluster.nodes()["wrk2"].status.state == objects_pb2.NodeStatus.STATE_DOWN,
        timeout=15,
        what="wrk2 DOWN",
    )
    # Heartbeat 1 s: the node is DOWN within the grace (3 periods) plus scheduling slack.
    assert time.monotonic() - killed_at < 8
    wait_for(
        lambda: sum(cluster.spread("web").values()) == 6 and "wrk2" not in cluster.spread("web"),
        timeout=60,
        what="tasks rescheduled off wrk2",
    )
    # The dead agent's containers still run (a host that lost its agent) ...
    assert len(containers(**{"swarmd.node.id": wrk2_id})) == 2
    # ... until it comes back and removes the tasks it no longer has.
    wrk2.join_addr = ""
    wrk2.start(wait=False)
    cluster.wait_node_ready("wrk2")
    wait_for(
        lambda: not containers(**{"swarmd.node.id": wrk2_id}),
        timeout=60,
        what="stale containers removed after restart",
    )
    assert sum(cluster.spread("web").values()) == 6


def test_killed_container_is_replaced_per_restart_policy(cluster: Cluster) -> None:
    _create(
        cluster,
        "web",
        "--replicas",
        "1",
        "--restart-delay",
        "0s",
        "--stop-grace-period",
        "0s",
        *SLEEP,
    )
    (first,) = cluster.wait_running("web", 1)
    (ctr,) = cluster.wait_containers("web", 1)
    docker("kill", ctr["Id"])
    (second,) = wait_for(
        lambda: (run := cluster.running("web")) and run[0].id != first.id and run,
        timeout=60,
        what="replacement task running",
    )
    assert second.slot == first.slot
    old = next(t for t in cluster.tasks("web") if t.id == first.id)
    assert old.status.state == types_pb2.TASK_STATE_FAILED
    assert "137" in old.status.err or "exit" in old.status.err

    _create(
        cluster,
        "once",
        "--replicas",
        "1",
        "--restart-condition",
        "none",
        "--command",
        "sh",
        "--args=-c",
        "--args=exit 3",
    )
    wait_for(
        lambda: any(t.status.state == types_pb2.TASK_STATE_FAILED for t in cluster.tasks("once")),
        timeout=60,
        what="task failed",
    )
    time.sleep(2)
    assert len(cluster.tasks("once")) == 1  # condition none: never restarted


def test_global_service_follows_join_and_drain(cluster: Cluster) -> None:
    _create(cluster, "agent", "--mode", "global", "--stop-grace-period", "0s", *SLEEP)
    wait_for(
        lambda: sorted(cluster.spread("agent")) == ["mgr", "wrk1", "wrk2"],
        timeout=60,
        what="one task per node",
    )
    cluster.add_worker("wrk3")
    wait_for(
        lambda: sorted(cluster.spread("agent")) == ["mgr", "wrk1", "wrk2", "wrk3"],
        timeout=60,
        what="task on the joined node",
    )
    assert cluster.ctl("node", "drain", "wrk1").rc == 0
    wait_for(
        lambda: sorted(cluster.spread("agent")) == ["mgr", "wrk2", "wrk3"],
        timeout=60,
        what="no task on the drained node",
    )


def test_constraints_and_reservations_explain_pending_tasks(cluster: Cluster) -> None:
    _create(
        cluster,
        "eu",
        "--replicas",
        "1",
        "--constraint",
        "node.labels.zone==eu",
        "--stop-grace-period",
        "0s",
        *SLEEP,
    )
    _create(cluster, "huge", "--replicas", "1", "--reserve-memory", "100000GiB", *SLEEP)

    def reason(service: str) -> str:
        tasks = cluster.tasks(service)
        if not tasks or tasks[0].status.state != types_pb2.TASK_STATE_PENDING:
            return ""
        return tasks[0].status.err

    eu = wait_for(lambda: reason("eu"), timeout=30, what="pending reason for eu")
    assert "constraint node.labels.zone==eu unmet on 3 nodes" in eu
    huge = wait_for(lambda: reason("huge"), timeout=30, what="pending reason for huge")
    assert "insufficient memory on 3 nodes" in huge
    # `task inspect` shows the reason to the operator.
    task_id = cluster.tasks("eu")[0].id
    shown = cluster.ctl("task", "inspect", task_id)
    assert shown.rc == 0, shown.err
    assert "constraint node.labels.zone==eu unmet" in shown.out

    # A node joins and gets the wanted label: it takes the pending task.
    cluster.add_worker("wrk3")
    assert cluster.ctl("node", "update", "--label-add", "zone=eu", "wrk3").rc == 0
    wait_for(lambda: cluster.spread("eu") == {"wrk3": 1}, timeout=60, what="eu task on wrk3")


def test_restarted_agent_adopts_its_running_containers(cluster: Cluster) -> None:
    # A restart within the node's grace (a broken session gets one heartbeat period): with the
    # fixture's 1 s period a restart under load could take longer, and the node would be DOWN.
    assert cluster.ctl("cluster", "update", "--heartbeat-period", "5s").rc == 0
    _create(cluster, "web", "--replicas", "3", "--stop-grace-period", "0s", *SLEEP)
    cluster.wait_running("web", 3)
    wrk1 = cluster.workers[0]
    wrk1_id = cluster.node_id("wrk1")
    before = {c["Id"]: c["State"]["StartedAt"] for c in containers(**{"swarmd.node.id": wrk1_id})}
    tasks_before = {t.id for t in cluster.running("web")}
    assert len(before) == 1
    wrk1.stop(signal.SIGTERM)
    wrk1.join_addr = ""
    wrk1.start(wait=False)
    cluster.wait_node_ready("wrk1")
    time.sleep(3)
    after = {c["Id"]: c["State"]["StartedAt"] for c in containers(**{"swarmd.node.id": wrk1_id})}
    assert after == before  # same containers, never restarted
    assert {t.id for t in cluster.running("web")} == tasks_before
