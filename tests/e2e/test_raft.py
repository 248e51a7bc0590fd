"""Replicated managers as real processes: failover, catch-up, partitions.

Three managers (127.0.0.1-3) and two workers (127.0.0.4-5), each its own swarmd process and
state dir, sharing this machine's dockerd. What is asserted is what an operator sees through
swarmctl on the surviving managers, and the containers.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.cluster import IMAGE, containers, remove_node_containers
from tests.e2e.harness import CtlResult, SwarmdProcess, wait_for
from tests.e2e.netns import NetnsHosts

pytestmark = pytest.mark.docker

SLEEP = ["--command", "sleep", "--args", "100000", "--stop-grace-period", "0s"]


@dataclass
class Managers:
    root: Path
    managers: list[SwarmdProcess] = field(default_factory=list)
    workers: list[SwarmdProcess] = field(default_factory=list)
    node_ids: set[str] = field(default_factory=set)

    def first(self) -> SwarmdProcess:
        m = SwarmdProcess(self.root / "m1", hostname="m1", host="127.0.0.1").start()
        self.managers.append(m)
        return m

    def tokens(self, via: SwarmdProcess) -> dict[str, str]:
        cluster = via.ctl("cluster", "inspect", "default").json()
        return {k.lower(): v for k, v in cluster["JoinTokens"].items()}

    def add(self, name: str, host: str, role: str) -> SwarmdProcess:
        via = self.managers[0]
        p = SwarmdProcess(
            self.root / name,
            hostname=name,
            host=host,
            join_addr=via.join_api,
            join_token=self.tokens(self.alive()[0])[role],
        ).start(wait=False)
        (self.managers if role == "manager" else self.workers).append(p)
        return p

    def alive(self) -> list[SwarmdProcess]:
        return [m for m in self.managers if m.proc is not None and m.proc.poll() is None]

    def nodes(self, via: SwarmdProcess) -> dict[str, dict[str, str]]:
        r = via.ctl("node", "ls", "--format", "json")
        if r.rc != 0:
            return {}
        nodes = {n["Hostname"]: n for n in r.json()}
        self.node_ids.update(n["ID"] for n in nodes.values())
        return nodes

    def leader(self, via: SwarmdProcess) -> str:
        for name, n in self.nodes(via).items():
            if n.get("ManagerStatus") == "LEADER":
                return name
        return ""

    def by_name(self, name: str) -> SwarmdProcess:
        return next(p for p in [*self.managers, *self.workers] if p.hostname == name)

    def close(self) -> None:
        for p in [*self.managers, *self.workers]:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)
        remove_node_containers(sorted(self.node_ids))


def _ready_everywhere(c: Managers, via: SwarmdProcess, names: list[str]) -> bool:
    nodes = c.nodes(via)
    return all(nodes.get(n, {}).get("Status") == "READY" for n in names)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Managers]:
    c = Managers(tmp_path)
    try:
        m1 = c.first()
        assert m1.ctl("cluster", "update", "--heartbeat-period", "1s").rc == 0
        c.add("m2", "127.0.0.2", "manager")
        c.add("m3", "127.0.0.3", "manager")
        c.add("w1", "127.0.0.4", "worker")
        c.add("w2", "127.0.0.5", "worker")
        wait_for(
            lambda: _ready_everywhere(c, m1, ["m1", "m2", "m3", "w1", "w2"]),
            timeout=60,
            what="5 nodes READY",
        )
        wait_for(
            lambda: all(
                c.nodes(m1)[m]["ManagerStatus"] in ("LEADER", "REACHABLE") for m in ("m2", "m3")
            ),
            timeout=60,
            what="managers reachable",
        )
        yield c
    finally:
        c.close()


def _ok(r: CtlResult) -> CtlResult:
    assert r.rc == 0, r.err
    return r


def _running(via: SwarmdProcess, service: str) -> int:
    r = via.ctl("service", "ls", "--format", "json")
    if r.rc != 0:
        return -1
    for s in r.json():
        if s["Name"] == service:
            running, _, _desired = s["Replicas"].partition("/")
            return int(running)
    return -1


def test_leader_killed_new_leader_serves_and_old_one_catches_up(cluster: Managers) -> None:
    m1 = cluster.managers[0]
    _ok(m1.ctl("service", "create", "--name", "web", "--image", IMAGE, "--replicas", "4", *SLEEP))
    wait_for(lambda: _running(m1, "web") == 4, timeout=60, what="4 running")
    assert cluster.leader(m1) == "m1"

    killed_at = time.monotonic()
    m1.kill()
    survivor = cluster.by_name("m2")
    # A write through a survivor succeeds once a new leader is elected.
    wait_for(
        lambda: survivor.ctl("service", "scale", "web=6").rc == 0,
        timeout=30,
        interval=0.1,
        what="a write through a survivor",
    )
    failover = time.monotonic() - killed_at
    assert failover < 15, failover
    new_leader = wait_for(lambda: cluster.leader(survivor), timeout=20, what="new leader")
    assert new_leader in ("m2", "m3")
    wait_for(lambda: _running(survivor, "web") == 6, timeout=90, what="6 running after failover")

    # The old leader comes back as a follower and catches up with what happened meanwhile.
    m1.join_addr = ""
    m1.start(wait=False)
    wait_for(
        lambda: (
            (r := m1.ctl("service", "inspect", "web")).rc == 0
            and r.json()["Spec"]["Replicated"]["Replicas"] == 6
        ),
        timeout=60,
        what="m1 caught up",
    )
    assert cluster.leader(m1) == new_leader


@pytest.fixture
def netns_managers(tmp_path: Path) -> Iterator[tuple[Managers, NetnsHosts]]:
    hosts = NetnsHosts(3)
    c = Managers(tmp_path)
    try:
        hosts.create()

        def start(i: int, **join: str) -> SwarmdProcess:
            p = SwarmdProcess(
                tmp_path / f"m{i}",
                hostname=f"m{i}",
                host=hosts.addr(i),
                remote_port=4242,
                join_port=4243,
                prefix=hosts.wrap(i, []),
                **join,  # type: ignore[arg-type]
            )
            c.managers.append(p)
            return p.start(wait=not join)

        m1 = start(1)
        token = c.tokens(m1)["manager"]
        for i in (2, 3):
            start(i, join_addr=m1.join_api, join_token=token)
        wait_for(
            lambda: all(
                c.nodes(m1).get(f"m{i}", {}).get("ManagerStatus") in ("LEADER", "REACHABLE")
                for i in (1, 2, 3)
            ),
            timeout=60,
            what="3 managers reachable",
        )
        yield c, hosts
    finally:
        c.close()
        hosts.close()


def test_partitioned_leader_cannot_commit_and_steps_down(netns_managers) -> None:
    cluster, hosts = netns_managers
    m1, m2 = cluster.managers[0], cluster.managers[1]
    assert cluster.leader(m1) == "m1"
    hosts.partition(1)
    try:
        # The isolated leader cannot commit: a write through it fails (no quorum).
        r = m1.ctl("--timeout", "5s", "service", "create", "--name", "lost", "--image", IMAGE)
        assert r.rc != 0
        # The majority elects a new leader and keeps serving.
        wait_for(lambda: cluster.leader(m2) in ("m2", "m3"), timeout=30, what="majority leader")
        _ok(m2.ctl("service", "create", "--name", "kept", "--image", IMAGE, "--replicas", "0"))
        # The old leader stepped down (check-quorum): it no longer serves as leader and says so.
        stepped = wait_for(
            lambda: (r := m1.ctl("--timeout", "3s", "node", "ls")).rc != 0 and r,
            timeout=15,
            what="old leader stepped down",
        )
        assert "leader" in stepped.err
    finally:
        hosts.heal(1)
    # Healed, the old leader follows the new one and has the majority's writes, not its own.
    wait_for(lambda: m1.ctl("service", "inspect", "kept").rc == 0, timeout=60, what="m1 healed")
    assert m1.ctl("service", "inspect", "lost").rc != 0
    assert cluster.leader(m1) in ("m2", "m3")


def test_workers_keep_their_tasks_through_a_leader_failover(cluster: Managers) -> None:
    m1 = cluster.managers[0]
    _ok(m1.ctl("service", "create", "--name", "web", "--image", IMAGE, "--replicas", "5", *SLEEP))
    wait_for(lambda: _running(m1, "web") == 5, timeout=60, what="5 running")
    before = {c["Id"] for c in containers(**{"swarmd.service.name": "web"})}
    m1.stop(signal.SIGKILL)
    m2 = cluster.by_name("m2")
    wait_for(lambda: cluster.leader(m2) in ("m2", "m3"), timeout=30, what="new leader")
    time.sleep(5)
    # No task was restarted because of the failover (m1's own tasks moved, the rest stayed).
    after = {c["Id"] for c in containers(**{"swarmd.service.name": "web"})}
    assert len(before & after) >= 3
    wait_for(lambda: _running(m2, "web") == 5, timeout=90, what="5 running")


def test_quorum_loss_then_force_new_cluster_keeps_every_service(cluster: Managers) -> None:
    m1, m2, m3 = cluster.managers
    _ok(m1.ctl("service", "create", "--name", "web", "--image", IMAGE, "--replicas", "2", *SLEEP))
    _ok(m1.ctl("service", "create", "--name", "db", "--image", IMAGE, "--replicas", "0"))
    _ok(m1.ctl("secret", "create", "pw", stdin="hunter2"))
    before = sorted(s["Name"] for s in m1.ctl("service", "ls", "--format", "json").json())
    m2.kill()
    m3.kill()
    # Without a quorum nothing can be written.
    r = m1.ctl("--timeout", "5s", "service", "scale", "web=3")
    assert r.rc != 0
    assert m1.stop(signal.SIGTERM) == 0
    m1.extra = ["--force-new-cluster"]
    m1.start()
    m1.extra = []
    after = sorted(s["Name"] for s in m1.ctl("service", "ls", "--format", "json").json())
    assert after == before
    assert [s["Name"] for s in m1.ctl("secret", "ls", "--format", "json").json()] == ["pw"]
    # It leads alone and takes writes again; its services keep running.
    _ok(m1.ctl("service", "scale", "web=3"))
    assert cluster.leader(m1) == "m1"
    wait_for(lambda: _running(m1, "web") == 3, timeout=90, what="web at 3 after recovery")


def _managers_view(c: Managers, via: SwarmdProcess) -> dict[str, str]:
    return {h: n["ManagerStatus"] for h, n in c.nodes(via).items() if n["Role"] == "manager"}


def test_more_managers_join_then_demote_promote_and_remove(cluster: Managers) -> None:
    m1 = cluster.managers[0]
    cluster.add("m4", "127.0.0.6", "manager")
    cluster.add("m5", "127.0.0.7", "manager")
    wait_for(
        lambda: (
            sorted(_managers_view(cluster, m1)) == ["m1", "m2", "m3", "m4", "m5"]
            and all(s in ("LEADER", "REACHABLE") for s in _managers_view(cluster, m1).values())
        ),
        timeout=90,
        what="5 reachable managers",
    )
    # Demote m5: it leaves raft, becomes a worker and stays in the cluster.
    _ok(m1.ctl("node", "demote", "m5"))
    wait_for(
        lambda: (
            cluster.nodes(m1)["m5"]["Role"] == "worker" and "m5" not in _managers_view(cluster, m1)
        ),
        timeout=60,
        what="m5 demoted",
    )
    wait_for(
        lambda: cluster.nodes(m1)["m5"]["Status"] == "READY", timeout=60, what="m5 still READY"
    )
    # Promote it again: it gets a manager certificate and joins raft anew.
    _ok(m1.ctl("node", "promote", "m5"))
    wait_for(
        lambda: _managers_view(cluster, m1).get("m5") in ("LEADER", "REACHABLE"),
        timeout=90,
        what="m5 a reachable manager again",
    )
    # Remove m4: stop it, demote it, then remove its node.
    cluster.by_name("m4").kill()
    _ok(m1.ctl("node", "demote", "m4"))
    wait_for(lambda: "m4" not in _managers_view(cluster, m1), timeout=60, what="m4 out of raft")
    wait_for(lambda: cluster.nodes(m1)["m4"]["Status"] == "DOWN", timeout=30, what="m4 down")
    _ok(m1.ctl("node", "rm", "m4"))
    assert "m4" not in cluster.nodes(m1)
    # 4 managers left; the cluster still writes.
    _ok(m1.ctl("service", "create", "--name", "after", "--image", IMAGE, "--replicas", "0"))


def test_demotion_that_would_lose_quorum_is_refused(cluster: Managers) -> None:
    m1, _, m3 = cluster.managers
    m3.kill()
    wait_for(
        lambda: _managers_view(cluster, m1).get("m3") == "UNREACHABLE",
        timeout=30,
        what="m3 unreachable",
    )
    r = m1.ctl("node", "demote", "m2")
    assert r.rc == 1
    assert "quorum" in r.err
    assert r.err.count("\n") == 1
    assert cluster.nodes(m1)["m2"]["Role"] == "manager"


def test_a_follower_far_behind_catches_up_from_a_snapshot(cluster: Managers) -> None:
    m1, _, m3 = cluster.managers
    _ok(
        m1.ctl(
            "cluster",
            "update",
            "--snapshot-interval",
            "20",
            "--log-entries-for-slow-followers",
            "5",
        )
    )
    m3.stop(signal.SIGTERM)
    # Far more changes than the leader keeps in its log: m3 can only catch up from a snapshot.
    for i in range(40):
        _ok(m1.ctl("secret", "create", f"s{i}", stdin="x"))
    m3.join_addr = ""
    m3.start(wait=False)
    wait_for(
        lambda: (r := m3.ctl("secret", "ls", "-q")).rc == 0 and len(r.out.split()) == 40,
        timeout=60,
        what="m3 has every secret",
    )
    # It got there by installing the leader's snapshot (the log alone no longer reaches back).
    wait_for(
        lambda: "store restored from raft snapshot" in m3.logs(tail=0),
        timeout=30,
        what="m3 installed a snapshot",
    )
