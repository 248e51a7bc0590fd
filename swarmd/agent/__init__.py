"""Worker agent: keeps a session with a manager's dispatcher (issue 3 adds task execution)."""

from swarmd.agent.agent import Agent
from swarmd.agent.description import describe_host
from swarmd.agent.remotes import Remotes

__all__ = ["Agent", "Remotes", "describe_host"]
