"""Dispatcher: the leader's side of agent sessions (registration, heartbeats, node liveness).

Issue 3 adds the Assignments stream and task status updates on the same sessions.
"""

from swarmd.manager.dispatcher.dispatcher import DispatcherServicer
from swarmd.manager.dispatcher.nodes import HeartbeatTracker

__all__ = ["DispatcherServicer", "HeartbeatTracker"]
