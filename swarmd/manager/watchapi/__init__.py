"""The Watch API: a resumable stream of committed store changes (`swarmctl events`)."""

from swarmd.manager.watchapi.server import WatchServicer

__all__ = ["WatchServicer"]
