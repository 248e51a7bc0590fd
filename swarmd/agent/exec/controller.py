"""The Controller protocol: the lifecycle of one task's runtime, as the agent drives it.

This is the boundary between the agent and whatever runs containers (swarmd.dockerexec, or
swarmd.testing.fake_executor in tests), modelled on SwarmKit's `agent/exec/controller.go`.
`swarmd.agent.exec.step.do()` calls these methods, one per step; the agent's task manager owns
retries, reporting and persistence.

Rules every implementation follows:

- One controller per task, made by `Executor.controller(task)`. Its methods are coroutines on
  the agent's event loop; they are never called concurrently with each other, except that
  `shutdown()`/`terminate()` may be called while a `wait()` or `start()` is in flight (the
  caller then cancels the waiting call).
- Every method is idempotent: calling it again after it succeeded succeeds again without
  repeating side effects, so a restarted agent can replay the step it was in.
- Errors: raise `TemporaryError` (or anything `is_temporary()` accepts) for "try again later";
  anything else is fatal for the task. Errors are `swarmd.errors` subclasses with a message a user
  can read (`image "x" not found locally and could not be pulled: ...`).
- Cancellation (`asyncio.CancelledError`) is always propagated, never swallowed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from swarmd.api import logs_pb2, types_pb2


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """What a controller observes of its runtime, attached to task statuses from STARTING on.

    `container` is None while no container exists; `ports` lists the host-published ports
    actually bound (published_port filled in when the engine picked one).
    """

    container: types_pb2.ContainerStatus | None = None
    ports: tuple[types_pb2.PortConfig, ...] = field(default_factory=tuple)
    health: types_pb2.HealthState.ValueType = types_pb2.HEALTH_STATE_NONE


@dataclass(frozen=True, slots=True)
class LogOptions:
    """Which of a task's log lines `Controller.logs()` returns.

    `tail` is the number of most recent lines to start with (None: all of them, 0: none, which
    with `follow` means only new lines); it counts stdout and stderr together. `since` is a unix
    time in seconds: older lines are left out. With `follow` the iterator goes on with new lines
    until the process has exited and its output is drained, or until the caller stops reading.
    """

    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    tail: int | None = None
    since: float | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a task wrote: which stream, when (unix nanoseconds), the bytes without newline."""

    stream: logs_pb2.LogStream.ValueType
    timestamp_ns: int
    data: bytes


class Controller(Protocol):
    """Runs one task. See the module docstring for the rules shared by all methods."""

    async def prepare(self) -> None:
        """Make the task ready to start: have the image, create the container.

        Precondition: none (the task is PREPARING). If a container for this task already
        exists it is adopted rather than created again; the controller may then raise
        `TaskPrepared` (or simply return). A missing image that cannot be pulled raises
        `ImageNotFound`, which rejects the task.
        """
        ...

    async def start(self) -> None:
        """Start the prepared container; return once it runs (and is healthy, if checked).

        Precondition: prepare() succeeded. A task that already started (running or exited)
        is not started twice: tasks are one-shot. With a health check, returns only after the
        first "healthy" report and raises `ContainerUnhealthy` on "unhealthy".
        """
        ...

    async def wait(self) -> None:
        """Block until the task's process exits; return on exit code 0.

        Precondition: start() succeeded. Raises `ExitError` on a non-zero exit code and
        `ContainerUnhealthy` when the health check fails while running. Returns (or raises)
        at once for a container that has already exited.
        """
        ...

    async def shutdown(self) -> None:
        """Stop the task gracefully: stop signal, then kill after the stop grace period.

        Precondition: none; a task whose container never existed or already stopped is a
        no-op. The container is kept (its status and logs stay inspectable) until remove().
        """
        ...

    async def terminate(self) -> None:
        """Kill the task's process at once. No-op when it is not running."""
        ...

    async def remove(self) -> None:
        """Remove every resource of the task (the container, its anonymous volumes).

        Precondition: none; may be called in any state and kills a running container. No-op
        when nothing is left.
        """
        ...

    async def close(self) -> None:
        """Release what the controller holds in memory. The runtime itself is left alone."""
        ...

    async def observe(self) -> RuntimeStatus:
        """The current container status, host ports and health (cheap: one inspect)."""
        ...

    def logs(self, options: LogOptions) -> AsyncIterator[LogLine]:
        """The task's output lines, oldest first within each stream, as `options` select.

        Precondition: none; a task whose container does not exist (yet, or any more) raises
        `NotFound` when iterated. May be called while other methods are in flight (it only
        reads). Closing the iterator (`aclose()`, or cancelling the reader) releases
        everything it holds at once, also while it waits for new lines with `follow`.
        """
        ...


__all__ = ["Controller", "LogLine", "LogOptions", "RuntimeStatus"]
