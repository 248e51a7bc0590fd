"""The entry point's contract without a manager: help, usage errors, exit codes, one line."""

from __future__ import annotations

import io

import grpc
import pytest
from grpc import aio

from swarmctl.cli import run
from swarmctl.client import Target, describe_rpc_error
from swarmd import errors


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        rc = run(list(argv), out, err)
    except SystemExit as exit_:  # --help
        rc = int(exit_.code or 0)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "the following arguments are required: RESOURCE"),
        (("node",), "the following arguments are required: COMMAND"),
        (("node", "ls", "--bogus"), "unrecognized arguments: --bogus"),
        (("service", "scale", "web"), "must be SERVICE=REPLICAS"),
        (("--timeout", "soon", "node", "ls"), "invalid duration 'soon'"),
        (("--timeout", "0s", "node", "ls"), "invalid timeout '0s'"),
        (("node", "ls", "--format", "yaml"), "argument --format: invalid choice: 'yaml'"),
        (("service", "create", "--image", "busybox"),
         "the following arguments are required: --name"),
        (("service", "create", "--name", "x", "--limit-memory", "lots"),
         "argument --limit-memory: invalid memory size 'lots'"),
        (("service", "create", "--name", "x", "--reserve-cpu", "-1"),
         "argument --reserve-cpu: invalid cpu count '-1'"),
        (("service", "create", "--name", "x", "-p", "99999:80"), "invalid port '99999'"),
        (("service", "create", "--name", "x", "--mount", "type=nfs,target=/x"),
         "invalid type 'nfs'"),
        (("service", "create", "--name", "x", "--restart-condition", "often"),
         "invalid restart condition 'often': must be one of any, none, on-failure"),
        (("service", "create", "--name", "x", "--bogus"), "unrecognized arguments: --bogus"),
        (("service", "update", "web", "--env", "A=1"), "unrecognized arguments: --env"),
        (("node", "update", "wrk", "--availability", "sleep"),
         "invalid availability 'sleep': must be one of active, pause, drain"),
        (("node", "update", "wrk", "--role", "boss"), "invalid role 'boss'"),
        (("node", "rm"), "the following arguments are required: NODE"),
        (("cluster", "update", "--rotate-join-token", "admin"), "invalid join token role 'admin'"),
        (("cluster", "update", "--task-history", "many"), "invalid number 'many'"),
        (("task", "ls", "--desired-state", "sleeping"), "invalid choice: 'sleeping'"),
        (("secret", "create"), "the following arguments are required: name"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_with_exit_1(argv, message) -> None:
    rc, out, err = _run(*argv)
    assert rc == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("swarmctl: error: ")
    assert message in err


def test_missing_socket_is_one_line(tmp_path) -> None:
    rc, out, err = _run("-s", str(tmp_path / "none.sock"), "service", "ls")
    assert (rc, out) == (1, "")
    assert err == (
        f"swarmctl: error: cannot connect to swarmd: control socket {tmp_path / 'none.sock'} "
        "does not exist (is swarmd running? set -s/--socket or SWARM_SOCKET)\n"
    )


def test_remote_without_certificates_is_one_line() -> None:
    rc, _, err = _run("--addr", "127.0.0.1:4242", "--cert", "c.pem", "node", "ls")
    assert rc == 1
    assert err == "swarmctl: error: --addr needs --key, --ca\n"


VERBS = {
    "service": ("create", "inspect", "ls", "update", "scale", "rm", "logs"),
    "task": ("ls", "inspect", "logs"),
    "node": ("ls", "inspect", "update", "activate", "pause", "drain", "promote", "demote", "rm"),
    "cluster": ("inspect", "update"),
    "secret": ("create", "ls", "inspect", "rm"),
    "config": ("create", "ls", "inspect", "rm"),
}


def test_help_exits_0_for_every_command(capsys) -> None:
    assert _run("--help")[0] == 0
    top = capsys.readouterr().out
    for resource, verbs in VERBS.items():
        assert resource in top
        assert _run(resource, "--help")[0] == 0
        assert capsys.readouterr().out.startswith(f"usage: swarmctl {resource}")
        for verb in verbs:
            assert _run(resource, verb, "--help")[0] == 0
            assert capsys.readouterr().out.startswith(f"usage: swarmctl {resource} {verb}")


def test_help_lists_the_flags_of_the_issue(capsys) -> None:
    _run("service", "create", "--help")
    create = capsys.readouterr().out
    for flag in ("--update-max-failure-ratio", "--health-start-period", "--placement-pref", "-p"):
        assert flag in create
    _run("service", "update", "--help")
    update = capsys.readouterr().out
    for flag in ("--env-add", "--env-rm", "--label-rm", "--force", "--rollback"):
        assert flag in update
    _run("cluster", "update", "--help")
    assert "--rotate-join-token" in capsys.readouterr().out


def _rpc_error(code: grpc.StatusCode, details: str) -> aio.AioRpcError:
    return aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), details=details)


def test_rpc_errors_become_swarm_errors_worded_for_the_transport() -> None:
    local = Target(socket="/run/s.sock")
    remote = Target(addr="10.0.0.1:4242", cert="c", key="k", ca="r")
    refused = _rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    err = describe_rpc_error(refused, local)
    assert isinstance(err, errors.Unavailable)
    assert str(err) == "cannot connect to swarmd at unix:/run/s.sock"
    assert str(describe_rpc_error(refused, remote)).startswith(
        "TLS handshake failed or manager unreachable"
    )
    late = describe_rpc_error(_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline"), remote)
    assert str(late) == "no answer from swarmd at 10.0.0.1:4242 in time"
    missing = describe_rpc_error(
        _rpc_error(grpc.StatusCode.NOT_FOUND, "service x not found"), local
    )
    assert isinstance(missing, errors.NotFound)
    assert str(missing) == "service x not found"
    stale = _rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "update out of sequence")
    assert isinstance(describe_rpc_error(stale, local), errors.FailedPrecondition)
