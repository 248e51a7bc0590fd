"""`swarmctl service logs` against real swarmd processes and real containers.

A manager (127.0.0.1) and a worker (127.0.0.2), each its own swarmd sharing this machine's
dockerd. What is asserted is what an operator sees: lines named `<task>@<node> | <text>`,
container stderr on stderr, a follow that goes on with the replacement of a killed task, and a
node killed with SIGKILL reported as a warning while the command still returns at once.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.e2e.cluster import IMAGE, Cluster, docker
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.docker

# Each container says who it is (its hostname is its container id) and keeps running. The
# pause orders the two lines: the engine stamps each stream's lines as it reads that pipe.
HELLO = "echo hello from $(hostname); sleep 0.3; echo oops from $(hostname) >&2; exec sleep 100000"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start_manager()
        c.add_worker("wrk1")
        yield c
    finally:
        c.close()


def _create(c: Cluster, name: str, replicas: int, script: str = HELLO) -> None:
    r = c.ctl(
        "service", "create", "--name", name, "--image", IMAGE, "--replicas", str(replicas),
        "--restart-delay", "0s", "--stop-grace-period", "0s",
        "--command", "sh", "--args=-c", "--args", script,
    )  # fmt: skip
    assert r.rc == 0, r.err
    c.wait_running(name, replicas)


def _sources(c: Cluster, service: str) -> dict[str, str]:
    """`web.1@mgr` for each running task, by task id."""
    names = {n.id: h for h, n in c.nodes().items()}
    return {t.id: f"{service}.{t.slot}@{names[t.node_id]}" for t in c.running(service)}


def _logs(c: Cluster, *args: str):
    return wait_for(
        lambda: (r := c.ctl("service", "logs", *args)).rc == 0 and r,
        timeout=20,
        what=f"service logs {' '.join(args)}",
    )


def test_replicas_on_two_nodes_come_back_named_by_task_and_node(cluster: Cluster) -> None:
    _create(cluster, "web", 3)
    sources = _sources(cluster, "web")
    assert {s.split("@")[1] for s in sources.values()} == {"mgr", "wrk1"}

    def complete():
        r = cluster.ctl("service", "logs", "web")
        return r.rc == 0 and len(r.out.splitlines()) == 3 and len(r.err.splitlines()) == 3 and r

    r = wait_for(complete, timeout=20, what="3 stdout and 3 stderr lines")
    out = sorted(r.out.splitlines())
    assert [ln.split(" | ")[0] for ln in out] == sorted(sources.values())
    for ln in out:
        assert re.fullmatch(r"web\.\d@(mgr|wrk1) \| hello from [0-9a-f]{12}", ln), ln
    err = sorted(r.err.splitlines())
    assert [ln.split(" | ")[0] for ln in err] == sorted(sources.values())
    assert all(" | oops from " in ln for ln in err)
    assert "warning" not in r.err

    # --tail 1 keeps each task's last line (its stderr one); --timestamps puts the time first.
    r = _logs(cluster, "web", "--tail", "1", "--timestamps")
    assert r.out == ""
    stamped = r.err.splitlines()
    assert len(stamped) == 3
    for ln in stamped:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z web\.\d@\w+ \| oops .*", ln)
    # task logs narrows to one task.
    tid, source = next(iter(sources.items()))
    r = cluster.ctl("task", "logs", tid)
    assert r.rc == 0, r.err
    assert r.out.splitlines() == [ln for ln in out if ln.startswith(source + " |")]


class Follower:
    """`swarmctl service logs -f` running in the background; its stdout lines in a queue."""

    def __init__(self, c: Cluster, service: str) -> None:
        assert c.manager is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            [*harness.SWARMCTL, "-s", str(c.manager.socket), "service", "logs", "-f", service],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ, GRPC_VERBOSITY="NONE"),
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 30) -> str:
        return self.lines.get(timeout=timeout)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_follow_goes_on_with_the_task_that_replaces_a_killed_one(cluster: Cluster) -> None:
    _create(cluster, "web", 1)
    follower = Follower(cluster, "web")
    try:
        first = follower.next()
        assert re.fullmatch(r"web\.1@(mgr|wrk1) \| hello from [0-9a-f]{12}", first), first
        (task,) = cluster.running("web")
        docker("kill", task.status.container.container_id)
        second = follower.next(timeout=60)
        assert re.fullmatch(r"web\.1@(mgr|wrk1) \| hello from [0-9a-f]{12}", second), second
        assert second.split()[-1] != first.split()[-1]  # another container
        assert follower.proc.poll() is None  # still following
    finally:
        follower.stop()


def test_a_killed_node_is_a_warning_and_the_command_still_returns_at_once(
    cluster: Cluster,
) -> None:
    _create(cluster, "web", 3)
    sources = _sources(cluster, "web")
    on_mgr = sorted(s for s in sources.values() if s.endswith("@mgr"))
    wait_for(
        lambda: len(cluster.ctl("service", "logs", "web").out.splitlines()) == 3,
        timeout=20,
        what="every task's first line",
    )
    wrk1_id = cluster.node_id("wrk1")
    cluster.workers[0].kill()  # SIGKILL: the node's containers keep running, its agent is gone

    t0 = time.monotonic()
    r = cluster.ctl("service", "logs", "web")
    took = time.monotonic() - t0
    assert r.rc == 0, r.err
    assert took < 2.0, f"service logs took {took:.2f}s with a node down"
    assert f"swarmctl: warning: no logs from node wrk1 ({wrk1_id}): " in r.err
    assert sorted(ln.split(" | ")[0] for ln in r.out.splitlines()) == on_mgr
