"""Logging setup (structlog over stdlib logging) and the names of bound context fields.

Only entrypoints (`swarmd.__main__`, `swarmctl.cli`) and tests call configure(). Modules log with
`_log = structlog.get_logger(component="...")`, events as short static phrases, values as fields.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

# Set before grpc is imported anywhere: C-core logs bypass Python logging.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import structlog

NODE_ID = "node_id"
ROLE = "role"
SERVICE_ID = "service_id"
TASK_ID = "task_id"
RPC = "rpc"
PEER_NODE_ID = "peer_node_id"
RAFT_ID = "raft_id"

Format = Literal["console", "json"]
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def parse_level(name: str) -> int:
    """Map a level name to its number; raises ValueError naming the accepted ones."""
    try:
        return _LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r} (want one of {', '.join(_LEVELS)})") from None


def configure(level: str = "info", fmt: Format = "console") -> None:
    """Route structlog and stdlib logging (grpc, docker, urllib3) to stderr in one shape."""
    lvl = parse_level(level)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        cache_logger_on_first_use=True,
    )
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    # grpc._cython logs "Loaded running loop" at debug for every call.
    for noisy in ("urllib3", "docker", "asyncio", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, lvl))


__all__ = [
    "NODE_ID",
    "PEER_NODE_ID",
    "RAFT_ID",
    "ROLE",
    "RPC",
    "SERVICE_ID",
    "TASK_ID",
    "Format",
    "configure",
    "parse_level",
]
