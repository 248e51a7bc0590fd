"""The Docker Engine executor: the only package of swarmd that imports the Docker SDK.

A plain implementation of the swarmd.agent.exec protocols: executor.py (DockerExecutor),
controller.py (DockerController), container.py (pure task -> container configuration),
adapter.py (blocking SDK calls on a bounded pool), callpool.py (that pool) and callqueue.py
(its order: urgent calls first, few creates at once), admission.py (how many new tasks are
between create and start), images.py (images recently seen present, one check at a time),
events.py (one engine event thread).
swarmd.node composes it with the agent; the agent itself never imports it.
"""

from swarmd.dockerexec.controller import DockerController
from swarmd.dockerexec.executor import ContainerRecord, DockerExecutor, describe_engine

__all__ = ["ContainerRecord", "DockerController", "DockerExecutor", "describe_engine"]
