"""The executor seam of the agent: Executor/Controller protocols, do() and its errors.

See controller.py for the lifecycle contract and step.py for the one-step state machine.
Implementations live outside the agent: swarmd.dockerexec (Docker Engine) and
swarmd.testing.fake_executor (tests).
"""

from swarmd.agent.exec.controller import Controller, LogLine, LogOptions, RuntimeStatus
from swarmd.agent.exec.errors import (
    ContainerUnhealthy,
    ExitError,
    ImageNotFound,
    InvalidTask,
    TaskNoop,
    TaskPrepared,
    TaskRetry,
    TaskStarted,
    TemporaryError,
    is_temporary,
    make_temporary,
)
from swarmd.agent.exec.executor import Executor
from swarmd.agent.exec.step import (
    Action,
    Step,
    do,
    fatal_state,
    is_transient,
    plan_step,
    resolve,
)

__all__ = [
    "Action",
    "ContainerUnhealthy",
    "Controller",
    "Executor",
    "ExitError",
    "ImageNotFound",
    "InvalidTask",
    "LogLine",
    "LogOptions",
    "RuntimeStatus",
    "Step",
    "TaskNoop",
    "TaskPrepared",
    "TaskRetry",
    "TaskStarted",
    "TemporaryError",
    "do",
    "fatal_state",
    "is_temporary",
    "is_transient",
    "make_temporary",
    "plan_step",
    "resolve",
]
