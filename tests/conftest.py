"""Test-wide setup: quiet grpc C-core, structured logs at debug to stderr (shown on failure)."""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from swarmd import log

log.configure("debug", "console")
