"""swarmctl secret and config commands, id-prefix resolution and the CLI's own contract.

One swarmd for the module. The CLI contract: `--help` everywhere, usage errors and unreachable
managers as one line on stderr with exit 1, `SWARM_SOCKET`, and both `python -m swarmctl` and
the `swarmctl` console script.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmctl.client import Target, connect
from swarmd.api import control_pb2, specs_pb2, types_pb2
from tests.e2e.harness import BIN, SWARMCTL, CtlResult, SwarmdProcess

SECRET_VALUE = "hunter2-very-secret"


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmdProcess]:
    node = SwarmdProcess(state_dir=tmp_path_factory.mktemp("objs") / "mgr", hostname="mgr")
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


def run(*args: str, env: dict[str, str] | None = None, cmd: list[str] = SWARMCTL) -> CtlResult:
    """swarmctl without the harness's -s flag, and without GRPC_VERBOSITY: swarmctl must keep
    grpc's C core quiet by itself."""
    base = {k: v for k, v in os.environ.items() if k not in ("SWARM_SOCKET", "GRPC_VERBOSITY")}
    proc = subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**base, **(env or {})},
        check=False,
    )
    return CtlResult(proc.returncode, proc.stdout, proc.stderr)


def park(mgr: SwarmdProcess, name: str, *args: str) -> None:
    ok(
        mgr.ctl(
            "service", "create", "--name", name, "--image", "busybox",
            "--constraint", "node.labels.e2e==parked", *args,
        )
    )  # fmt: skip


# --- secrets -----------------------------------------------------------------------------------


def test_secret_create_ls_inspect_rm_never_show_the_data(mgr, tmp_path) -> None:
    from_stdin = ok(mgr.ctl("secret", "create", "db-pw", stdin=SECRET_VALUE)).out.strip()
    secret_file = tmp_path / "api.key"
    secret_file.write_text(SECRET_VALUE)
    from_file = ok(
        mgr.ctl("secret", "create", "api-key", "-f", str(secret_file), "--label", "team=a")
    ).out.strip()

    ls = ok(mgr.ctl("secret", "ls"))
    table = ls.out.splitlines()
    assert table[0].split() == ["ID", "NAME", "CREATED", "UPDATED"]
    rows = {line.split()[1]: line for line in table[1:]}
    assert rows["db-pw"].startswith(from_stdin)
    assert "ago" in rows["db-pw"]
    ls_json = ok(mgr.ctl("secret", "ls", "--format", "json"))
    listed = ls_json.json()
    assert {(s["ID"], s["Name"]) for s in listed} >= {(from_stdin, "db-pw"), (from_file, "api-key")}
    assert set(ok(mgr.ctl("secret", "ls", "-q")).out.split()) >= {from_stdin, from_file}

    shown = ok(mgr.ctl("secret", "inspect", "api-key"))
    doc = shown.json()
    assert doc["ID"] == from_file
    assert doc["Spec"]["Annotations"] == {"Name": "api-key", "Labels": {"team": "a"}}
    assert "Data" not in doc["Spec"]
    assert ok(mgr.ctl("secret", "inspect", from_file[:15])).json() == doc
    for r in (ls, ls_json, shown):
        assert SECRET_VALUE not in r.out

    assert ok(mgr.ctl("secret", "rm", "db-pw", from_file)).out == f"db-pw\n{from_file}\n"
    assert not {from_stdin, from_file} & set(ok(mgr.ctl("secret", "ls", "-q")).out.split())


def test_secret_in_use_cannot_be_removed(mgr) -> None:
    ok(mgr.ctl("secret", "create", "used-pw", stdin="x"))
    park(mgr, "uses-secret", "--secret", "used-pw")
    fails(mgr.ctl("secret", "rm", "used-pw"), "secret used-pw is in use by service(s) uses-secret")
    ok(mgr.ctl("service", "update", "uses-secret", "--secret-rm", "used-pw"))
    ok(mgr.ctl("secret", "rm", "used-pw"))


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["secret", "inspect", "ghost"], None, "secret ghost not found"),
        (["secret", "rm", "ghost"], None, "secret ghost not found"),
        (["secret", "create", "empty"], "", "no data for secret empty: stdin is empty"),
        (["secret", "create", "nofile", "-f", "/nonexistent/x"], None,
         "cannot read /nonexistent/x"),
        (["secret", "create", "bad/name"], "x", "invalid secret name"),
        (["secret", "create", "big"], "x" * (500 * 1024),
         "must be at least 1 byte and less than 500 KiB"),
    ],
)  # fmt: skip
def test_secret_errors(mgr, args, stdin, message) -> None:
    fails(mgr.ctl(*args, stdin=stdin), message)


def test_rm_with_one_unknown_name_removes_nothing(mgr) -> None:
    ok(mgr.ctl("secret", "create", "keep-me", stdin="x"))
    fails(mgr.ctl("secret", "rm", "keep-me", "ghost"), "secret ghost not found")
    assert ok(mgr.ctl("secret", "inspect", "keep-me")).json()["Spec"]["Annotations"]["Name"] == (
        "keep-me"
    )


def test_duplicate_secret_name_is_refused(mgr) -> None:
    ok(mgr.ctl("secret", "create", "dup-pw", stdin="a"))
    fails(
        mgr.ctl("secret", "create", "dup-pw", stdin="b"), "secret name 'dup-pw' is already in use"
    )


# --- configs -----------------------------------------------------------------------------------


def test_config_create_ls_inspect_rm(mgr, tmp_path) -> None:
    cfg_id = ok(mgr.ctl("config", "create", "app-cfg", stdin="level=debug\n")).out.strip()
    path = tmp_path / "nginx.conf"
    path.write_text("worker_processes 1;\n")
    file_id = ok(mgr.ctl("config", "create", "nginx", "-f", str(path))).out.strip()

    table = ok(mgr.ctl("config", "ls")).out.splitlines()
    assert table[0].split() == ["ID", "NAME", "CREATED", "UPDATED"]
    listed = ok(mgr.ctl("config", "ls", "--format", "json")).json()
    assert {(c["ID"], c["Name"]) for c in listed} >= {(cfg_id, "app-cfg"), (file_id, "nginx")}
    assert set(ok(mgr.ctl("config", "ls", "-q")).out.split()) >= {cfg_id, file_id}

    doc = ok(mgr.ctl("config", "inspect", "app-cfg")).json()
    assert doc["ID"] == cfg_id
    assert doc["Spec"] == {"Annotations": {"Name": "app-cfg"}, "Data": "level=debug\n"}
    assert ok(mgr.ctl("config", "inspect", "nginx")).json()["Spec"]["Data"] == (
        "worker_processes 1;\n"
    )

    park(mgr, "uses-config", "--config", "app-cfg")
    fails(mgr.ctl("config", "rm", "app-cfg"), "config app-cfg is in use by service(s) uses-config")
    ok(mgr.ctl("service", "rm", "uses-config"))
    assert ok(mgr.ctl("config", "rm", "app-cfg", "nginx")).out == "app-cfg\nnginx\n"
    fails(mgr.ctl("config", "inspect", "app-cfg"), "config app-cfg not found")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["config", "inspect", "ghost"], None, "config ghost not found"),
        (["config", "rm", "ghost"], None, "config ghost not found"),
        (["config", "create", "empty"], "", "no data for config empty: stdin is empty"),
        (["config", "create", "bad name"], "x", "invalid config name"),
    ],
)  # fmt: skip
def test_config_errors(mgr, args, stdin, message) -> None:
    fails(mgr.ctl(*args, stdin=stdin), message)


# --- resolution --------------------------------------------------------------------------------


async def _create_configs(sock: Path, count: int) -> list[str]:
    async with connect(Target(socket=str(sock))) as client:
        ids = []
        for i in range(count):
            spec = specs_pb2.ConfigSpec(
                annotations=types_pb2.Annotations(name=f"many-{i}"), data=b"x"
            )
            resp = await client.control.CreateConfig(
                control_pb2.CreateConfigRequest(spec=spec), timeout=10
            )
            ids.append(resp.config.id)
        return ids


def test_ambiguous_prefix_is_a_clear_error_and_a_longer_one_resolves(mgr) -> None:
    # 37 ids over a 36-letter alphabet: two of them must share their first character.
    ids = asyncio.run(_create_configs(mgr.socket, 37))
    by_first: dict[str, list[str]] = defaultdict(list)
    for config_id in ids:
        by_first[config_id[0]].append(config_id)
    prefix, shared = next((p, group) for p, group in by_first.items() if len(group) > 1)
    others = [c for c in ok(mgr.ctl("config", "ls", "-q")).out.split() if c.startswith(prefix)]
    line = fails(mgr.ctl("config", "inspect", prefix), f"config id prefix {prefix} is ambiguous")
    assert f"it matches {len(others)} configs" in line
    assert shared[0] in line or len(others) > 5
    # Any id, or a prefix long enough to be unique, still resolves.
    assert ok(mgr.ctl("config", "inspect", shared[0][:20])).json()["ID"] == shared[0]
    assert ok(mgr.ctl("config", "inspect", shared[1])).json()["ID"] == shared[1]
    # An exact name wins over an id prefix: a config named like the ambiguous prefix.
    named = ok(mgr.ctl("config", "create", prefix, stdin="x")).out.strip()
    doc: dict[str, Any] = ok(mgr.ctl("config", "inspect", prefix)).json()
    assert doc["ID"] == named


# --- the CLI contract --------------------------------------------------------------------------


def test_socket_from_the_environment_and_console_script(mgr) -> None:
    env = {"SWARM_SOCKET": str(mgr.socket)}
    via_module = ok(run("node", "ls", "-q", env=env))
    via_script = ok(run("node", "ls", "-q", env=env, cmd=[str(BIN / "swarmctl")]))
    assert via_module.out == via_script.out
    assert len(via_module.out.split()) == 1


def test_unreachable_manager_is_one_line(mgr, tmp_path) -> None:
    fails(
        run("-s", str(tmp_path / "nope.sock"), "node", "ls"),
        f"control socket {tmp_path / 'nope.sock'} does not exist",
    )
    # A socket file nobody listens on.
    stale = tmp_path / "stale.sock"
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    fails(
        run("-s", str(stale), "--timeout", "5s", "node", "ls"), "cannot connect to swarmd at unix:"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: RESOURCE"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_exit_1(args, message) -> None:
    fails(run(*args), message)


def test_help_exits_0() -> None:
    top = ok(run("--help"))
    assert top.out.startswith("usage: swarmctl")
    assert ok(run("secret", "create", "-h")).out.startswith("usage: swarmctl secret create")
