"""swarmctl node, cluster and task commands, and remote mTLS, against real swarmd processes.

One manager and one joined worker for the module. Tests that change a node put it back, so
their order does not matter; the removal test joins a worker of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from swarmctl.cli import build_parser
from swarmctl.client import Target, connect, describe_rpc_error
from swarmctl.commands import cluster as cluster_cmd
from tests.e2e.harness import CtlResult, SwarmdProcess, swarmctl, wait_for


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_path_factory.mktemp("nodes")


@pytest.fixture(scope="module")
def mgr(root) -> Iterator[SwarmdProcess]:
    node = SwarmdProcess(state_dir=root / "mgr", hostname="mgr").start()
    # The manager's own agent registers with its dispatcher shortly after the socket is up.
    wait_for(lambda: nodes(node).get("mgr", {}).get("Status") == "READY", 20, what="mgr READY")
    yield node
    node.kill()


def join(mgr: SwarmdProcess, root: Any, name: str) -> SwarmdProcess:
    token = ok(mgr.ctl("cluster", "inspect")).json()["JoinTokens"]["Worker"]
    node = SwarmdProcess(
        state_dir=root / name, hostname=name, join_addr=mgr.join_api, join_token=token
    ).start()
    wait_for(lambda: nodes(mgr).get(name, {}).get("Status") == "READY", 30, what=f"{name} READY")
    return node


@pytest.fixture(scope="module")
def wrk(mgr, root) -> Iterator[SwarmdProcess]:
    node = join(mgr, root, "wrk")
    yield node
    node.kill()


def ok(r: CtlResult) -> CtlResult:
    assert r.rc == 0, r.err
    assert r.err == ""
    return r


def fails(r: CtlResult, message: str) -> str:
    """The command failed the swarmctl way: exit 1, nothing on stdout, one line on stderr."""
    assert r.rc == 1, (r.out, r.err)
    assert r.out == ""
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("swarmctl: error: "), r.err
    assert message in lines[0], r.err
    return lines[0]


def nodes(mgr: SwarmdProcess) -> dict[str, dict[str, str]]:
    return {n["Hostname"]: n for n in ok(mgr.ctl("node", "ls", "--format", "json")).json()}


def node_doc(mgr: SwarmdProcess, ref: str) -> dict[str, Any]:
    doc: dict[str, Any] = ok(mgr.ctl("node", "inspect", ref)).json()
    return doc


def cluster_doc(mgr: SwarmdProcess) -> dict[str, Any]:
    doc: dict[str, Any] = ok(mgr.ctl("cluster", "inspect")).json()
    return doc


# --- nodes -------------------------------------------------------------------------------------


def test_node_ls_table_json_and_ids(mgr, wrk) -> None:
    table = ok(mgr.ctl("node", "ls")).out.splitlines()
    header = table[0]
    assert header.split() == [
        "ID",
        "HOSTNAME",
        "STATUS",
        "AVAILABILITY",
        "ROLE",
        "MANAGER",
        "STATUS",
    ]
    rows = {line.split()[1]: line for line in table[1:]}
    listed = nodes(mgr)
    mgr_id, wrk_id = listed["mgr"]["ID"], listed["wrk"]["ID"]
    assert rows["mgr"].split() == [mgr_id, "mgr", "READY", "ACTIVE", "manager", "LEADER"]
    assert rows["wrk"].split() == [wrk_id, "wrk", "READY", "ACTIVE", "worker"]
    assert rows["mgr"].index("LEADER") == header.index("MANAGER STATUS")
    assert listed["wrk"] == {
        "ID": wrk_id,
        "Hostname": "wrk",
        "Status": "READY",
        "Availability": "ACTIVE",
        "Role": "worker",
        "ManagerStatus": "",
    }
    assert sorted(ok(mgr.ctl("node", "ls", "-q")).out.split()) == sorted([mgr_id, wrk_id])


def test_node_inspect_by_hostname_id_and_prefix(mgr, wrk) -> None:
    doc = node_doc(mgr, "wrk")
    assert doc["Description"]["Hostname"] == "wrk"
    assert doc["Role"] == "worker"
    assert doc["Status"]["State"] == "ready"
    assert doc["Spec"]["Membership"] == "accepted"
    assert node_doc(mgr, doc["ID"]) == doc
    assert node_doc(mgr, doc["ID"][:10]) == doc
    manager = node_doc(mgr, "mgr")
    assert manager["ManagerStatus"]["Leader"] is True
    assert manager["Spec"]["DesiredRole"] == "manager"


def test_pause_drain_activate_change_availability(mgr, wrk) -> None:
    wrk_id = nodes(mgr)["wrk"]["ID"]
    try:
        for verb, shown in (("pause", "PAUSE"), ("drain", "DRAIN"), ("activate", "ACTIVE")):
            assert ok(mgr.ctl("node", verb, "wrk")).out == f"{wrk_id}\n"
            assert nodes(mgr)["wrk"]["Availability"] == shown
    finally:
        mgr.ctl("node", "activate", "wrk")


def test_node_update_labels_and_availability(mgr, wrk) -> None:
    try:
        ok(mgr.ctl("node", "update", "wrk", "--label-add", "zone=a", "--label-add", "ssd"))
        ok(mgr.ctl("node", "update", "wrk", "--availability", "drain", "--label-rm", "ssd"))
        doc = node_doc(mgr, "wrk")
        assert doc["Spec"]["Annotations"]["Labels"] == {"zone": "a"}
        assert doc["Spec"]["Availability"] == "drain"
    finally:
        mgr.ctl("node", "update", "wrk", "--availability", "active", "--label-rm", "zone")
    assert "Labels" not in node_doc(mgr, "wrk")["Spec"].get("Annotations", {})


def test_promote_and_demote_set_the_desired_role(mgr, wrk) -> None:
    try:
        ok(mgr.ctl("node", "promote", "wrk"))
        assert node_doc(mgr, "wrk")["Spec"]["DesiredRole"] == "manager"
    finally:
        ok(mgr.ctl("node", "demote", "wrk"))
    assert node_doc(mgr, "wrk")["Spec"]["DesiredRole"] == "worker"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["node", "inspect", "ghost"], "node ghost not found"),
        (["node", "drain", "ghost"], "node ghost not found"),
        (["node", "demote", "mgr"], "is the last manager of the swarm and cannot be demoted"),
        (["node", "rm", "mgr"], "must be demoted to worker before removal"),
        (["node", "rm", "wrk"], "is not down and can't be removed; use --force"),
    ],
)  # fmt: skip
def test_node_errors(mgr, wrk, args, message) -> None:
    fails(mgr.ctl(*args), message)


def test_node_rm_force_removes_an_up_worker(mgr, root) -> None:
    gone = join(mgr, root, "gone")
    try:
        assert ok(mgr.ctl("node", "rm", "--force", "gone")).out == "gone\n"
        assert "gone" not in nodes(mgr)
        fails(mgr.ctl("node", "inspect", "gone"), "node gone not found")
    finally:
        gone.kill()


# --- cluster -----------------------------------------------------------------------------------


def test_cluster_inspect_shows_settings_and_tokens_but_no_ca_key(mgr) -> None:
    doc = cluster_doc(mgr)
    assert ok(mgr.ctl("cluster", "inspect", "default")).json() == doc
    assert ok(mgr.ctl("cluster", "inspect", doc["ID"][:8])).json() == doc
    assert doc["Spec"]["Annotations"]["Name"] == "default"
    assert doc["JoinTokens"]["Worker"].startswith("SWMTKN-1-")
    assert doc["JoinTokens"]["Manager"].startswith("SWMTKN-1-")
    assert doc["JoinTokens"]["Worker"] != doc["JoinTokens"]["Manager"]
    assert doc["RootCA"]["CACert"].startswith("-----BEGIN CERTIFICATE-----")
    assert "CAKey" not in doc["RootCA"]
    assert "PRIVATE KEY" not in ok(mgr.ctl("cluster", "inspect")).out


def test_cluster_update_writes_the_spec(mgr) -> None:
    before = cluster_doc(mgr)
    out = ok(
        mgr.ctl(
            "cluster", "update",
            "--task-history", "7", "--heartbeat-period", "1s",
            "--snapshot-interval", "5000", "--keep-old-snapshots", "2",
            "--log-entries-for-slow-followers", "300",
            "--heartbeat-tick", "2", "--election-tick", "20", "--tick-interval", "200ms",
            "--cert-expiry", "48h", "--service-history", "3",
            "--log-driver", "json-file", "--log-opt", "max-size=10m",
            "--label-add", "env=test",
        )
    ).out  # fmt: skip
    assert out == f"{before['ID']}\n"
    spec = cluster_doc(mgr)["Spec"]
    assert spec["Orchestration"]["TaskHistoryRetentionLimit"] == 7
    assert spec["Dispatcher"]["HeartbeatPeriod"] == "1s"
    assert spec["Raft"] == {
        "SnapshotInterval": 5000,
        "KeepOldSnapshots": 2,
        "LogEntriesForSlowFollowers": 300,
        "HeartbeatTick": 2,
        "ElectionTick": 20,
        "TickInterval": "200ms",
    }
    assert spec["CAConfig"]["NodeCertExpiry"] == "48h0m0s"
    assert spec["ServiceHistory"]["Revisions"] == 3
    assert spec["TaskDefaultsLogDriver"] == {"Name": "json-file", "Options": {"max-size": "10m"}}
    assert spec["Annotations"]["Labels"]["env"] == "test"


def test_rotate_join_tokens_one_at_a_time(mgr) -> None:
    before = cluster_doc(mgr)["JoinTokens"]
    ok(mgr.ctl("cluster", "update", "default", "--rotate-join-token", "worker"))
    middle = cluster_doc(mgr)["JoinTokens"]
    assert middle["Worker"] != before["Worker"]
    assert middle["Manager"] == before["Manager"]
    ok(mgr.ctl("cluster", "update", "--rotate-join-token", "manager"))
    after = cluster_doc(mgr)["JoinTokens"]
    assert after["Manager"] != before["Manager"]
    assert after["Worker"] == middle["Worker"]


def test_a_concurrent_cluster_change_is_a_conflict_not_an_overwrite(mgr) -> None:
    class RacingStub:
        """Lets another swarmctl change the cluster between our read and our write."""

        def __init__(self, stub: Any) -> None:
            self._stub = stub

        def __getattr__(self, name: str) -> Any:
            return getattr(self._stub, name)

        async def UpdateCluster(self, req: Any, **kwargs: Any) -> Any:  # noqa: N802
            other = await asyncio.to_thread(
                swarmctl, mgr.socket, "cluster", "update", "--label-add", "first=1"
            )
            assert other.rc == 0, other.err
            return await self._stub.UpdateCluster(req, **kwargs)

    async def second_operator() -> str:
        ns = build_parser().parse_args(["cluster", "update", "--label-add", "second=1"])
        async with connect(Target(socket=str(mgr.socket))) as client:
            racing = dataclasses.replace(client, control=RacingStub(client.control))  # type: ignore[arg-type]
            try:
                await cluster_cmd.update(racing, ns)
            except grpc.RpcError as err:
                return str(describe_rpc_error(err, racing.target))
            return "no error"

    message = asyncio.run(second_operator())
    assert message.startswith("update out of sequence: cluster"), message
    labels = cluster_doc(mgr)["Spec"]["Annotations"]["Labels"]
    assert labels.get("first") == "1"
    assert "second" not in labels


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cluster", "inspect", "nope"], "cluster nope not found"),
        (["cluster", "update"], "nothing to update"),
        # Refused by the manager's validation.
        (["cluster", "update", "--heartbeat-period", "10ms"], "must be at least 100ms"),
        (["cluster", "update", "--election-tick", "1", "--heartbeat-tick", "1"],
         "invalid raft.election_tick 1: must be greater than raft.heartbeat_tick"),
        (["cluster", "update", "--cert-expiry", "1m"], "must be at least 1h"),
    ],
)  # fmt: skip
def test_cluster_errors(mgr, args, message) -> None:
    fails(mgr.ctl(*args), message)


# --- tasks -------------------------------------------------------------------------------------


def test_task_ls_header_and_errors(mgr) -> None:
    header = ok(mgr.ctl("task", "ls")).out.splitlines()[0]
    assert header.split() == [
        "ID", "NAME", "IMAGE", "NODE", "DESIRED", "STATE", "CURRENT", "STATE", "HEALTH", "ERROR",
    ]  # fmt: skip
    assert isinstance(ok(mgr.ctl("task", "ls", "--format", "json")).json(), list)
    fails(mgr.ctl("task", "ls", "--service", "ghost"), "service ghost not found")
    fails(mgr.ctl("task", "ls", "--node", "ghost"), "node ghost not found")
    fails(mgr.ctl("task", "inspect", "ghost"), "task ghost not found")


def test_task_ls_and_inspect_show_the_tasks_of_a_service(mgr) -> None:
    ok(
        mgr.ctl(
            "service", "create", "--name", "pending", "--image", "busybox", "--replicas", "2",
            "--constraint", "node.labels.e2e==parked",
        )
    )  # fmt: skip
    rows = wait_for(
        lambda: (
            len(r := ok(mgr.ctl("task", "ls", "--service", "pending", "--format", "json")).json())
            == 2
            and r
        ),
        timeout=30,
        what="2 tasks of service pending",
    )
    assert sorted(r["Name"] for r in rows) == ["pending.1", "pending.2"]
    for row in rows:
        assert row["Image"] == "busybox"
        assert row["Node"] == ""  # no node satisfies the constraint
        assert row["DesiredState"] == "RUNNING"
        assert row["CurrentState"].startswith("PENDING")
        assert "ago" in row["CurrentState"]
    table = ok(mgr.ctl("task", "ls", "--service", "pending")).out.splitlines()
    assert [line.split()[1] for line in table[1:]] == ["pending.1", "pending.2"]
    ids = ok(mgr.ctl("task", "ls", "-q", "--desired-state", "running")).out.split()
    assert {r["ID"] for r in rows} <= set(ids)
    assert ok(mgr.ctl("task", "ls", "-q", "--node", "mgr", "--service", "pending")).out == ""

    task_id = rows[0]["ID"]
    doc = ok(mgr.ctl("task", "inspect", task_id)).json()
    assert doc["ID"] == task_id
    assert doc["ServiceID"] == ok(mgr.ctl("service", "inspect", "pending")).json()["ID"]
    assert doc["DesiredState"] == "running"
    assert doc["Status"]["State"] == "pending"
    assert doc["Spec"]["Container"]["Image"] == "busybox"
    assert ok(mgr.ctl("task", "inspect", task_id[:12])).json()["ID"] == task_id
    ok(mgr.ctl("service", "rm", "pending"))


# --- remote mTLS -------------------------------------------------------------------------------


def tls_flags(node: SwarmdProcess, addr: str) -> list[str]:
    certs = node.state_dir / "certificates"
    return [
        "--addr", addr,
        "--cert", str(certs / "swarm-node.crt"),
        "--key", str(certs / "swarm-node.key"),
        "--ca", str(certs / "swarm-root-ca.crt"),
    ]  # fmt: skip


def test_remote_mtls_with_a_manager_certificate(mgr, tmp_path) -> None:
    # A socket path that does not exist proves the call went over TCP.
    no_socket = tmp_path / "absent.sock"
    addr = f"127.0.0.1:{mgr.remote_port}"
    r = ok(swarmctl(no_socket, *tls_flags(mgr, addr), "node", "ls", "-q"))
    assert nodes(mgr)["mgr"]["ID"] in r.out.split()
    assert ok(swarmctl(no_socket, *tls_flags(mgr, addr), "cluster", "inspect")).json() == (
        cluster_doc(mgr)
    )


def test_remote_errors(mgr, wrk, tmp_path) -> None:
    no_socket = tmp_path / "absent.sock"
    addr = f"127.0.0.1:{mgr.remote_port}"
    # A worker's certificate is valid, but the control API serves managers only.
    fails(
        swarmctl(no_socket, *tls_flags(wrk, addr), "node", "ls"),
        "role swarm-worker may not call /swarmkit.v1.Control/ListNodes",
    )
    flags = tls_flags(mgr, addr)
    fails(
        swarmctl(no_socket, *flags[:-2], "--ca", flags[1 + flags.index("--cert")], "node", "ls"),
        "node certificate was not issued by the root ca",
    )
    fails(swarmctl(no_socket, "--addr", addr, "node", "ls"), "--addr needs --cert, --key, --ca")
    fails(
        swarmctl(
            no_socket, *flags[:4], "--key", str(tmp_path / "no.key"), *flags[6:], "node", "ls"
        ),
        "cannot read key",
    )
    fails(
        swarmctl(no_socket, *tls_flags(mgr, "127.0.0.1:1"), "node", "ls"),
        "TLS handshake failed or manager unreachable",
    )
