"""swarmd flag parsing: bad input is one clear line and exit 2."""

from __future__ import annotations

import pytest

from swarmd.__main__ import build_config
from swarmd.config import parse_host_port


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen-remote-api", "nohost"], "invalid --listen-remote-api 'nohost': want HOST:PORT"),
        (["--listen-join-api", "1.2.3.4:x"], "port must be a number"),
        (["--listen-remote-api", "1.2.3.4:70000"], "port must be 0-65535"),
        (["--join-addr", "1.2.3.4:4243"], "--join-addr needs --join-token"),
        (["--join-token", "SWMTKN-1-x"], "--join-token needs --join-addr"),
        (["--log-level", "loud"], "unknown log level 'loud'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exc:
        build_config(["-d", str(tmp_path / "s"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert err.startswith("swarmd: error: ")


def test_unusable_state_dir_is_refused(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        build_config(["-d", str(blocker / "sub")])
    assert exc.value.code == 2
    assert "state dir" in capsys.readouterr().err


def test_defaults_put_the_control_socket_in_the_state_dir(tmp_path) -> None:
    cfg = build_config(["-d", str(tmp_path / "s"), "--hostname", "h1"])
    assert cfg.control_socket == (tmp_path / "s" / "swarmd.sock").resolve()
    assert cfg.hostname == "h1"
    assert cfg.listen_remote_api.port == 4242
    assert cfg.listen_join_api.port == 4243


def test_ipv6_host_port() -> None:
    hp = parse_host_port("[::1]:4242", "x")
    assert (hp.host, hp.port, str(hp)) == ("::1", 4242, "[::1]:4242")
