"""The managers an agent knows of, persisted in the state dir so a restarted node can reconnect.

Agent calls `pick()` to choose a manager (rotating past ones that failed) and `update()` when a
session announces the current manager list.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import structlog

_log = structlog.get_logger(component="agent")


class Remotes:
    """An ordered set of manager cluster-port addresses with simple failure rotation."""

    def __init__(self, path: Path, initial: list[str] | None = None) -> None:
        self._path = path
        self._addrs: list[str] = []
        self._next = 0
        loaded = self._load()
        for addr in [*(initial or []), *loaded]:
            if addr and addr not in self._addrs:
                self._addrs.append(addr)

    def _load(self) -> list[str]:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            _log.warning("ignoring unreadable managers file", path=str(self._path), error=str(err))
            return []
        if not isinstance(data, list):
            return []
        return [a for a in data if isinstance(a, str)]

    def addrs(self) -> list[str]:
        return list(self._addrs)

    def pick(self) -> str | None:
        """The next manager to try, round robin; None when none is known."""
        if not self._addrs:
            return None
        addr = self._addrs[self._next % len(self._addrs)]
        self._next += 1
        return addr

    def update(self, addrs: list[str]) -> None:
        """Replace the known managers (keeping order stable) and persist them."""
        fresh = [a for a in addrs if a]
        if not fresh or fresh == self._addrs:
            return
        self._addrs = fresh
        self._save()

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".managers.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self._addrs, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except OSError as err:
            _log.warning("cannot save managers file", path=str(self._path), error=str(err))
            try:
                os.unlink(tmp)
            except OSError:
                pass


__all__ = ["Remotes"]
