"""swarmctl service create|inspect|ls|update|scale|rm against a real swarmd, as an operator sees it.

One swarmd for the module. Services are parked by a placement constraint no node satisfies, so
their tasks (if the orchestrator makes any) stay pending and no container is started: these
tests are about the CLI and the control API, not about Docker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from swarmctl.cli import build_parser
from swarmctl.client import Client, Target, connect, describe_rpc_error
from swarmctl.commands import service as service_cmd
from tests.e2e.harness import CtlResult, SwarmdProcess, swarmctl, wait_for

PARKED = ("--constraint", "node.labels.e2e==parked")
ID = re.compile(r"[0-9a-z]{25}")


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmdProcess]:
    node = SwarmdProcess(state_dir=tmp_path_factory.mktemp("svc") / "mgr", hostname="mgr")
    node.start()
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


def create(mgr: SwarmdProcess, name: str, *args: str) -> str:
    r = ok(mgr.ctl("service", "create", "--name", name, "--image", "busybox", *PARKED, *args))
    service_id = r.out.strip()
    assert ID.fullmatch(service_id), r.out
    return service_id


def inspect(mgr: SwarmdProcess, ref: str) -> dict[str, Any]:
    doc: dict[str, Any] = ok(mgr.ctl("service", "inspect", ref)).json()
    return doc


def container(mgr: SwarmdProcess, ref: str) -> dict[str, Any]:
    c: dict[str, Any] = inspect(mgr, ref)["Spec"]["Task"]["Container"]
    return c


def test_create_then_ls_shows_an_aligned_table_json_and_ids(mgr) -> None:
    web = create(mgr, "web", "--replicas", "3")
    glob = create(mgr, "everywhere", "--mode", "global")

    table = ok(mgr.ctl("service", "ls")).out.splitlines()
    header = table[0]
    assert header.split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE"]
    rows = {line.split()[1]: line for line in table[1:]}
    assert rows["web"].split() == [web, "web", "replicated", "0/3", "busybox"]
    assert rows["everywhere"].split()[:3] == [glob, "everywhere", "global"]
    for column in ("NAME", "MODE", "REPLICAS", "IMAGE"):
        # Every cell starts under its header.
        assert rows["web"][header.index(column) - 1] == " "
        assert rows["web"][header.index(column)] != " "

    listed = ok(mgr.ctl("service", "ls", "--format", "json")).json()
    assert {
        "ID": web,
        "Name": "web",
        "Mode": "replicated",
        "Replicas": "0/3",
        "Image": "busybox",
    } in listed
    ids = ok(mgr.ctl("service", "ls", "-q")).out.split()
    assert web in ids
    assert glob in ids


def test_inspect_by_name_full_id_and_unique_prefix(mgr) -> None:
    svc = create(mgr, "lookup")
    by_name = inspect(mgr, "lookup")
    assert by_name["ID"] == svc
    assert by_name["Spec"]["Annotations"]["Name"] == "lookup"
    assert by_name["Spec"]["Replicated"]["Replicas"] == 1
    assert by_name["Meta"]["Version"]["Index"] > 0
    assert inspect(mgr, svc) == by_name
    assert inspect(mgr, svc[:20]) == by_name
    # Names compare case-insensitively, like the store's name index.
    assert inspect(mgr, "LOOKUP")["ID"] == svc


def test_create_maps_every_flag_into_the_spec(mgr) -> None:
    ok(mgr.ctl("secret", "create", "svc-pw", stdin="hunter2"))
    ok(mgr.ctl("config", "create", "svc-cfg", stdin="k=v"))
    create(
        mgr,
        "full",
        "--replicas", "2",
        "--command", "sh -c",
        "--args", "echo hi", "--args=-x",
        "-e", "A=1", "--env", "B=two words",
        "--label", "team=infra", "--label", "tier",
        "--constraint", "node.role==worker",
        "--placement-pref", "spread=node.labels.zone",
        "--reserve-cpu", "0.25", "--reserve-memory", "64MiB",
        "--limit-cpu", "1.5", "--limit-memory", "1g",
        "-p", "8080:80/tcp", "--publish", "mode=host,target=53,published=5353,protocol=udp",
        "--restart-condition", "on-failure", "--restart-delay", "500ms",
        "--restart-max-attempts", "3", "--restart-window", "1m30s",
        "--update-parallelism", "2", "--update-delay", "10s", "--update-order", "start-first",
        "--update-failure-action", "rollback", "--update-monitor", "5s",
        "--update-max-failure-ratio", "0.25",
        "--stop-grace-period", "20s", "--stop-signal", "SIGINT",
        "--user", "nobody", "--workdir", "/tmp", "--hostname", "box",
        "--mount", "type=bind,source=/tmp,target=/host,readonly",
        "--mount", "type=tmpfs,target=/scratch,tmpfs-size=16m",
        "--mount", "type=volume,source=data,target=/data",
        "--secret", "svc-pw",
        "--config", "source=svc-cfg,target=/etc/app.conf,mode=0440",
        "--health-cmd", "cat /tmp/ok", "--health-interval", "2s", "--health-timeout", "1s",
        "--health-retries", "4", "--health-start-period", "3s",
        "--init",
    )  # fmt: skip
    spec = inspect(mgr, "full")["Spec"]
    c = spec["Task"]["Container"]
    assert c["Image"] == "busybox"
    assert c["Command"] == ["sh", "-c"]
    assert c["Args"] == ["echo hi", "-x"]
    assert c["Env"] == ["A=1", "B=two words"]
    assert (c["User"], c["Dir"], c["Hostname"]) == ("nobody", "/tmp", "box")
    assert (c["StopGracePeriod"], c["StopSignal"]) == ("20s", "SIGINT")
    assert c["Init"] == "enabled"
    assert c["Mounts"] == [
        {"Type": "bind", "Source": "/tmp", "Target": "/host", "Readonly": True},
        {"Type": "tmpfs", "Target": "/scratch", "TmpfsSizeBytes": 16 * 2**20},
        {"Type": "volume", "Source": "data", "Target": "/data"},
    ]
    assert c["Healthcheck"] == {
        "Test": ["CMD-SHELL", "cat /tmp/ok"],
        "Interval": "2s",
        "Timeout": "1s",
        "Retries": 4,
        "StartPeriod": "3s",
    }
    [secret] = c["Secrets"]
    assert secret["SecretName"] == "svc-pw"
    assert ID.fullmatch(secret["SecretID"])  # the manager resolved the name
    assert secret["File"] == {"Name": "svc-pw", "UID": "0", "GID": "0", "Mode": 0o444}
    [config] = c["Configs"]
    assert config["ConfigName"] == "svc-cfg"
    assert config["File"]["Name"] == "/etc/app.conf"
    assert config["File"]["Mode"] == 0o440
    assert spec["Annotations"]["Labels"] == {"team": "infra", "tier": ""}
    assert spec["Replicated"] == {"Replicas": 2}
    task = spec["Task"]
    assert task["Placement"]["Constraints"] == ["node.labels.e2e==parked", "node.role==worker"]
    assert task["Placement"]["Preferences"] == [
        {"Spread": {"SpreadDescriptor": "node.labels.zone"}}
    ]
    assert task["Resources"] == {
        "Limits": {"NanoCPUs": 1_500_000_000, "MemoryBytes": 2**30},
        "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 64 * 2**20},
    }
    assert task["Restart"] == {
        "Condition": "on-failure",
        "Delay": "500ms",
        "MaxAttempts": 3,
        "Window": "1m30s",
    }
    assert spec["Update"] == {
        "Parallelism": 2,
        "Delay": "10s",
        "FailureAction": "rollback",
        "Monitor": "5s",
        "MaxFailureRatio": 0.25,
        "Order": "start-first",
    }
    assert spec["Endpoint"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
        {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
    ]


def test_update_edits_lists_and_bumps_the_version(mgr) -> None:
    create(mgr, "upd", "-e", "A=1", "-e", "B=2", "--label", "x=1", "-p", "80", "--args", "one")
    before = inspect(mgr, "upd")
    out = ok(
        mgr.ctl(
            "service", "update", "upd",
            "--image", "busybox:1.36",
            "--env-add", "A=10", "--env-add", "C=3", "--env-rm", "B",
            "--label-add", "y=2", "--label-rm", "x",
            "--publish-add", "9090:90", "--publish-rm", "80",
            "--mount-add", "type=tmpfs,target=/t",
            "--args", "two", "--args", "three",
            "--replicas", "4",
            "--constraint-add", "node.role==manager",
        )
    ).out  # fmt: skip
    assert out.strip() == before["ID"]
    after = inspect(mgr, "upd")
    c = after["Spec"]["Task"]["Container"]
    assert c["Image"] == "busybox:1.36"
    assert c["Env"] == ["A=10", "C=3"]
    assert c["Args"] == ["two", "three"]
    assert c["Mounts"] == [{"Type": "tmpfs", "Target": "/t"}]
    assert after["Spec"]["Annotations"]["Labels"] == {"y": "2"}
    assert [p["TargetPort"] for p in after["Spec"]["Endpoint"]["Ports"]] == [90]
    assert after["Spec"]["Replicated"]["Replicas"] == 4
    assert "node.role==manager" in after["Spec"]["Task"]["Placement"]["Constraints"]
    assert after["Meta"]["Version"]["Index"] > before["Meta"]["Version"]["Index"]
    assert after["PreviousSpec"] == before["Spec"]

    ok(mgr.ctl("service", "update", "upd", "--mount-rm", "/t", "--force"))
    forced = inspect(mgr, "upd")
    assert "Mounts" not in forced["Spec"]["Task"]["Container"]
    assert forced["Spec"]["Task"]["ForceUpdate"] == 1

    ok(mgr.ctl("service", "update", "upd", "--rollback"))
    assert inspect(mgr, "upd")["Spec"] == after["Spec"]
    fails(
        mgr.ctl("service", "update", "upd", "--rollback", "--image", "busybox:2"),
        "--rollback cannot be combined with other changes",
    )


def test_scale_sets_replicas_and_refuses_global_services(mgr) -> None:
    create(mgr, "scaled")
    create(mgr, "scaled-global", "--mode", "global")
    assert ok(mgr.ctl("service", "scale", "scaled=5")).out == "scaled scaled to 5\n"
    assert inspect(mgr, "scaled")["Spec"]["Replicated"]["Replicas"] == 5
    assert ok(mgr.ctl("service", "scale", "scaled=0")).out == "scaled scaled to 0\n"
    assert inspect(mgr, "scaled")["Spec"]["Replicated"] == {"Replicas": 0}
    fails(mgr.ctl("service", "scale", "scaled-global=2"), "scaled-global is global")
    fails(mgr.ctl("service", "scale", "scaled=many"), "invalid replica count 'many'")
    fails(mgr.ctl("service", "scale", "scaled"), "must be SERVICE=REPLICAS")
    fails(mgr.ctl("service", "scale", "ghost=1"), "service ghost not found")


def test_rm_removes_and_then_the_service_is_not_found(mgr) -> None:
    svc = create(mgr, "doomed")
    assert ok(mgr.ctl("service", "rm", svc[:12])).out == f"{svc[:12]}\n"
    fails(mgr.ctl("service", "inspect", "doomed"), "service doomed not found")
    assert svc not in ok(mgr.ctl("service", "ls", "-q")).out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["service", "inspect", "nope"], "service nope not found"),
        (["service", "update", "nope", "--image", "x"], "service nope not found"),
        (["service", "rm", "nope"], "service nope not found"),
        (["service", "create", "--name", "noimage"], "--image is required"),
        # A bad flag value, refused before anything is sent (more: tests/unit/swarmctl).
        (["service", "create", "--name", "x", "--image", "i", "--restart-delay", "10x"],
         "argument --restart-delay: invalid duration '10x'"),
        (["service", "create", "--name", "x", "--image", "i", "--mode", "global",
          "--replicas", "2"], "--replicas cannot be used with --mode global"),
        (["service", "create", "--name", "x", "--image", "i", "--no-healthcheck",
          "--health-cmd", "true"], "--no-healthcheck conflicts with --health-cmd"),
        (["service", "update", "web", "--env", "A=1"], "unrecognized arguments: --env"),
        # Refused by the manager's validation, shown as its one-line message.
        (["service", "create", "--name", "x", "--image", "Bad Image"],
         'invalid task.container.image "Bad Image"'),
        (["service", "create", "--name", "bad_name!", "--image", "i"], "invalid service name"),
        (["service", "create", "--name", "x", "--image", "i", "--secret", "no-such-secret"],
         "secret not found"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_1(mgr, args, message) -> None:
    fails(mgr.ctl(*args), message)


def test_duplicate_name_is_refused(mgr) -> None:
    create(mgr, "twin")
    fails(
        mgr.ctl("service", "create", "--name", "twin", "--image", "busybox"),
        "service name 'twin' is already in use",
    )
    fails(
        mgr.ctl("service", "update", "twin", "--mode", "global"),
        "unrecognized arguments: --mode",
    )


def test_a_concurrent_change_makes_update_fail_with_a_conflict(mgr) -> None:
    """Two operators: the second's write is based on a version the first already replaced."""
    create(mgr, "raced")

    class RacingStub:
        """Lets another swarmctl update the service between our read and our write."""

        def __init__(self, stub: Any) -> None:
            self._stub = stub

        def __getattr__(self, name: str) -> Any:
            return getattr(self._stub, name)

        async def UpdateService(self, req: Any, **kwargs: Any) -> Any:  # noqa: N802
            other = await asyncio.to_thread(
                swarmctl, mgr.socket, "service", "update", "raced", "--env-add", "FIRST=1"
            )
            assert other.rc == 0, other.err
            return await self._stub.UpdateService(req, **kwargs)

    async def second_operator() -> str:
        ns = build_parser().parse_args(["service", "update", "raced", "--env-add", "SECOND=1"])
        async with connect(Target(socket=str(mgr.socket))) as client:
            racing = dataclasses.replace(client, control=RacingStub(client.control))  # type: ignore[arg-type]
            assert isinstance(racing, Client)
            try:
                await service_cmd.update(racing, ns)
            except grpc.RpcError as err:
                return str(describe_rpc_error(err, racing.target))
            return "no error"

    message = asyncio.run(second_operator())
    assert "update out of sequence" in message
    assert "read it again and retry" in message
    env = container(mgr, "raced")["Env"]
    assert env == ["FIRST=1"]  # the first write stands, the stale one was not applied


@pytest.mark.docker
def test_replicas_count_running_tasks(mgr) -> None:
    """REPLICAS is running/desired: a real container on this host's dockerd makes it 1/1."""
    ok(
        mgr.ctl(
            "service", "create", "--name", "live", "--image", "swarmd-busybox:latest",
            "--command", "sleep", "--args", "100000", "--stop-grace-period", "1s",
        )
    )  # fmt: skip
    try:
        wait_for(
            lambda: {"Name": "live", "Replicas": "1/1"}.items()
            <= next(
                s for s in ok(mgr.ctl("service", "ls", "--format", "json")).json()
                if s["Name"] == "live"
            ).items(),
            timeout=60,
            what="service live 1/1",
        )  # fmt: skip
        [row] = ok(mgr.ctl("task", "ls", "--service", "live", "--format", "json")).json()
        assert row["Node"] == "mgr"
        assert row["CurrentState"].startswith("RUNNING")
    finally:
        ok(mgr.ctl("service", "rm", "live"))
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=swarmd.service.name=live"],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout.split()  # fmt: skip
        if ids:
            subprocess.run(
                ["docker", "rm", "-f", *ids], capture_output=True, timeout=60, check=False
            )
