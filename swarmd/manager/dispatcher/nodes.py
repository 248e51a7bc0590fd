"""Heartbeat bookkeeping for registered nodes: pure, driven by the caller's clock readings.

The DispatcherServicer owns one tracker; it calls `register` when a session opens, `heartbeat` on
each beat and `expired` periodically to learn which nodes missed their grace. No I/O, no clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from swarmd import errors


@dataclass(slots=True)
class _Entry:
    session_id: str
    deadline: float
    registered: bool


class HeartbeatTracker:
    """Tracks each node's session and heartbeat deadline.

    A node is expired when `now` passes its deadline. Registering gives a fresh session id and a
    deadline of now + grace; each heartbeat from the current session moves it again.
    `watch_unknown` gives nodes the store believes alive a longer first deadline after a leader
    change (SwarmKit gives them twice the grace to re-register).
    """

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._nodes: dict[str, _Entry] = {}

    @property
    def grace(self) -> float:
        return self._grace

    def set_grace(self, grace: float) -> None:
        """Change the grace for future deadlines (the cluster's heartbeat period changed)."""
        self._grace = grace

    def register(self, node_id: str, now: float) -> str:
        """Start a new session for `node_id`, replacing any older one; return its id."""
        session_id = secrets.token_hex(12)
        self._nodes[node_id] = _Entry(session_id, now + self._grace, registered=True)
        return session_id

    def watch_unknown(self, node_id: str, now: float) -> None:
        """Expect `node_id` to register within twice the grace (after a leader change)."""
        if node_id not in self._nodes:
            self._nodes[node_id] = _Entry("", now + 2 * self._grace, registered=False)

    def disconnected(self, node_id: str, now: float, grace: float) -> None:
        """The node's session broke: expect it back within `grace` (if that is sooner).

        A broken stream is a strong sign (the agent's process or host is gone, or the network
        reset the connection); a busy but healthy node keeps its connection and is judged by
        its heartbeats alone.
        """
        entry = self._nodes.get(node_id)
        if entry is None:
            self._nodes[node_id] = _Entry("", now + grace, registered=False)
        elif not entry.registered:
            entry.deadline = min(entry.deadline, now + grace)

    def heartbeat(self, node_id: str, session_id: str, now: float) -> None:
        """Record a beat; raise InvalidArgument for a session that is not the node's current one."""
        entry = self._nodes.get(node_id)
        if entry is None or not entry.registered or entry.session_id != session_id:
            raise errors.InvalidArgument(
                f"session {session_id or '(none)'} of node {node_id} is not active; "
                "open a new session"
            )
        entry.deadline = now + self._grace

    def is_current(self, node_id: str, session_id: str) -> bool:
        entry = self._nodes.get(node_id)
        return entry is not None and entry.registered and entry.session_id == session_id

    def end_session(self, node_id: str, session_id: str) -> bool:
        """Forget the session if it is still current; True when it was."""
        entry = self._nodes.get(node_id)
        if entry is None or entry.session_id != session_id:
            return False
        entry.registered = False
        entry.session_id = ""
        return True

    def expired(self, now: float) -> list[str]:
        """Remove and return the nodes whose deadline has passed."""
        gone = [node_id for node_id, e in self._nodes.items() if now > e.deadline]
        for node_id in gone:
            del self._nodes[node_id]
        return gone

    def forget(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)


__all__ = ["HeartbeatTracker"]
