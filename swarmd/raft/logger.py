"""RaftLogger: the logging seam of the raft core, plus a logger that discards everything.

Raft core layer. The core never imports structlog; the driver adapts this protocol to a bound
structlog logger, and the interaction tests record it into their transcripts. Events are short
static lowercase phrases; values go in keyword fields.
"""

from __future__ import annotations

from typing import Protocol


class RaftLogger(Protocol):
    """Where the core reports what it does. Calls must not raise or call back into the core."""

    def debug(self, event: str, **fields: object) -> None:
        """Per-message chatter."""

    def info(self, event: str, **fields: object) -> None:
        """Role and term changes, membership changes, snapshots."""

    def warning(self, event: str, **fields: object) -> None:
        """Something recoverable that an operator may want to know about."""


class DiscardLogger:
    """A RaftLogger that drops every event (the default)."""

    def debug(self, event: str, **fields: object) -> None:
        """Drop the event."""

    def info(self, event: str, **fields: object) -> None:
        """Drop the event."""

    def warning(self, event: str, **fields: object) -> None:
        """Drop the event."""
