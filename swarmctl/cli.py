"""The `swarmctl` entry point: the parser tree, the connection, and the one-line error contract.

swarmctl layer; `main` is the console script and `python -m swarmctl`. Global flags come before
the resource: `-s/--socket` (default `$SWARM_SOCKET`, else swarmd's default socket), or `--addr
HOST:PORT` with `--cert`, `--key` and `--ca` for mutual TLS to a manager's cluster port. Every
failure, argparse's included, is one line `swarmctl: error: ...` on stderr and exit status 1;
`--help` prints help and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TextIO

import grpc

from swarmctl.client import (
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    SOCKET_ENV,
    Target,
    connect,
    describe_rpc_error,
)
from swarmctl.command import Parser
from swarmctl.commands import MODULES
from swarmctl.flags import parse_duration_nanos
from swarmd import errors

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _timeout(text: str) -> float:
    nanos = parse_duration_nanos(text)
    if nanos <= 0:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: must be positive")
    return nanos / 1e9


def build_parser() -> Parser:
    """The whole parser tree: global flags, then one group per resource."""
    parser = Parser(
        prog="swarmctl",
        description="Control a swarmd cluster through a manager's Control API.",
    )
    parser.add_argument(
        "-s",
        "--socket",
        default=os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET,
        help=f"manager control socket (env {SOCKET_ENV}, default {DEFAULT_SOCKET})",
    )
    parser.add_argument("--addr", default="", help="remote manager cluster port HOST:PORT (mTLS)")
    parser.add_argument("--cert", default="", help="client certificate (PEM) for --addr")
    parser.add_argument("--key", default="", help="client private key (PEM) for --addr")
    parser.add_argument("--ca", default="", help="cluster root CA certificate (PEM) for --addr")
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        help=f"deadline of each call, e.g. 30s (default {DEFAULT_TIMEOUT:g}s)",
    )
    sub = parser.add_subparsers(title="resources", dest="resource", metavar="RESOURCE")
    sub.required = True
    for module in MODULES:
        module.register(sub)
    return parser


async def _dispatch(ns: argparse.Namespace) -> str:
    target = Target(socket=ns.socket, addr=ns.addr, cert=ns.cert, key=ns.key, ca=ns.ca)
    async with connect(target, ns.timeout) as client:
        try:
            text: str = await ns.handler(client, ns)
        except grpc.RpcError as err:
            raise describe_rpc_error(err, target) from err
    return text


def _one_line(message: str) -> str:
    return " ".join(message.split())


def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Parse `argv`, run the command, print its output; returns the exit status."""
    try:
        ns = build_parser().parse_args(list(argv))
        text = asyncio.run(_dispatch(ns))
    except errors.SwarmError as exc:
        err.write(f"swarmctl: error: {_one_line(str(exc))}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.write("swarmctl: error: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the CLI's promise: one line, never a traceback
        err.write(f"swarmctl: error: unexpected {type(exc).__name__}: {_one_line(str(exc))}\n")
        return EXIT_ERROR
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        # `swarmctl task ls | head -1`: the reader left, which is not an error worth a message.
        # Point stdout at /dev/null so the interpreter's final flush does not complain either.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console script entry point; exits with the status of `run`."""
    raise SystemExit(run(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr))


__all__ = ["build_parser", "main", "run"]
