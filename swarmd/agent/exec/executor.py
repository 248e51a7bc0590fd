"""The Executor protocol: one per node, it describes the node and makes task controllers.

Implemented by swarmd.dockerexec.DockerExecutor (the Docker Engine) and by
swarmd.testing.fake_executor.FakeExecutor. The agent calls describe() when it (re)registers and
every time it re-checks its node description, controller() once per assigned task, and
list_task_ids()/prune() after a restart to find and clean up what an earlier run left behind.
Everything here acts only on runtime objects that belong to this node (for Docker: containers
labelled with this node id), never on anyone else's.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from swarmd.agent.exec.controller import Controller
from swarmd.api import objects_pb2, types_pb2


class Executor(Protocol):
    """Runs tasks on one node. Loop-confined, like everything in the agent."""

    async def describe(self) -> types_pb2.NodeDescription:
        """Hostname, platform, resources and engine of this node, as the runtime sees them.

        `addresses` and `tls_info` are left empty for the agent to fill in. Raises
        `TemporaryError` when the runtime cannot be reached.
        """
        ...

    def controller(self, task: objects_pb2.Task) -> Controller:
        """A controller for `task`; does no I/O.

        Raises `InvalidTask` when the task cannot run here (no container spec, no image):
        the agent rejects it.
        """
        ...

    async def list_task_ids(self) -> frozenset[str]:
        """Ids of the tasks that have a runtime object (a container) on this node."""
        ...

    async def prune(self, keep: Collection[str]) -> list[str]:
        """Remove the runtime objects of every task of this node whose id is not in `keep`.

        Returns the ids of the tasks removed, sorted. Used after an agent restart, when the
        manager's complete assignment set is known.
        """
        ...


__all__ = ["Executor"]
