"""The `swarmd` command: parse flags, set up logging, run one Node until SIGTERM/SIGINT.

A stop signal starts a graceful stop, bounded by swarmd/shutdown.py's deadline; a second
signal ends the process at once.

Bad flags and unusable state dirs are one `swarmd: error: ...` line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import NoReturn

import structlog

from swarmd import config, errors, gctuning
from swarmd import log as swarmlog
from swarmd.shutdown import Shutdown


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"swarmd: error: {message}\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="swarmd", description="Run a swarmd node (manager or worker).")
    p.add_argument("-d", "--state-dir", default="/var/lib/swarmd", help="state directory")
    p.add_argument(
        "--listen-remote-api",
        default=config.DEFAULT_REMOTE_API,
        help="cluster port (mTLS) HOST:PORT",
    )
    p.add_argument(
        "--listen-join-api",
        default=config.DEFAULT_JOIN_API,
        help="join port (TLS, bootstrap only) HOST:PORT",
    )
    p.add_argument(
        "--listen-control-api",
        default="",
        help="unix socket for swarmctl (default STATE_DIR/swarmd.sock)",
    )
    p.add_argument("--advertise-addr", default="", help="address other nodes use to reach this one")
    p.add_argument("--hostname", default="", help="hostname to report (default: the host's)")
    p.add_argument("--join-addr", default="", help="join port HOST:PORT of a manager to join")
    p.add_argument("--join-token", default="", help="SWMTKN-1-... join token")
    p.add_argument(
        "--engine-addr", default=config.DEFAULT_ENGINE_ADDR, help="Docker Engine address"
    )
    p.add_argument(
        "--force-new-cluster",
        action="store_true",
        help="make this manager the only member of a new cluster, keeping all its data "
        "(recovery after losing quorum)",
    )
    p.add_argument("-l", "--log-level", default="info", help="debug, info, warning or error")
    p.add_argument("--log-format", default="console", choices=["console", "json"])
    p.add_argument("-v", "--version", action="version", version="swarmd 0.1.0")
    return p


def build_config(argv: list[str]) -> config.NodeConfig:
    """Parse and validate argv; raises SystemExit(2) with one line on bad input."""
    parser = _parser()
    ns = parser.parse_args(argv)
    try:
        swarmlog.parse_level(ns.log_level)
        remote = config.parse_host_port(ns.listen_remote_api, "--listen-remote-api")
        join_api = config.parse_host_port(ns.listen_join_api, "--listen-join-api")
        join_addr = (
            config.parse_host_port(ns.join_addr, "--join-addr", allow_zero=False)
            if ns.join_addr
            else None
        )
        advertise = config.validate_advertise_addr(ns.advertise_addr)
        if join_addr is not None and not ns.join_token:
            raise errors.InvalidArgument("--join-addr needs --join-token")
        if ns.join_token and join_addr is None:
            raise errors.InvalidArgument("--join-token needs --join-addr")
        if ns.force_new_cluster and join_addr is not None:
            raise errors.InvalidArgument("--force-new-cluster cannot be combined with --join-addr")
        state_dir = config.prepare_state_dir(Path(ns.state_dir))
    except (errors.SwarmError, ValueError) as err:
        parser.error(str(err))
    control = (
        Path(ns.listen_control_api)
        if ns.listen_control_api
        else (state_dir / config.CONTROL_SOCKET_NAME)
    )
    return config.NodeConfig(
        state_dir=state_dir,
        listen_remote_api=remote,
        listen_join_api=join_api,
        control_socket=control.absolute(),
        advertise_addr=advertise,
        hostname=ns.hostname or socket.gethostname(),
        join_addr=join_addr,
        join_token=ns.join_token,
        engine_addr=ns.engine_addr,
        log_level=ns.log_level,
        log_format=ns.log_format,
        force_new_cluster=ns.force_new_cluster,
    )


async def _run(cfg: config.NodeConfig) -> None:
    from swarmd.node import Node

    node = Node(cfg)
    task = asyncio.current_task()
    assert task is not None
    stop = Shutdown(task)
    stop.install((signal.SIGTERM, signal.SIGINT))
    try:
        await node.run()
    except asyncio.CancelledError:
        pass
    finally:
        stop.disarm()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `swarmd` console script."""
    cfg = build_config(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    gctuning.configure()
    swarmlog.configure(cfg.log_level, "json" if cfg.log_format == "json" else "console")
    try:
        asyncio.run(_run(cfg))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BaseException as err:
        if isinstance(err, SystemExit):
            raise
        swarm_err = _first_swarm_error(err)
        if swarm_err is None:
            structlog.get_logger(component="node").exception("swarmd failed")
            sys.stderr.write(f"swarmd: error: {_describe(err)}\n")
        else:
            sys.stderr.write(f"swarmd: error: {swarm_err}\n")
        raise SystemExit(1) from None


def _first_swarm_error(err: BaseException) -> errors.SwarmError | None:
    if isinstance(err, errors.SwarmError):
        return err
    if isinstance(err, BaseExceptionGroup):
        for sub in err.exceptions:
            found = _first_swarm_error(sub)
            if found is not None:
                return found
    return None


def _describe(err: BaseException) -> str:
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return f"{type(err).__name__}: {err}"


if __name__ == "__main__":
    main()
