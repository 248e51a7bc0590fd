"""Errors of the executor seam: how a Controller tells `do()` to retry, fail or do nothing.

    SwarmError
    ├── Unavailable
    │   └── TemporaryError       the operation may succeed later: `do()` retries, state unchanged
    ├── NotFound
    │   └── ImageNotFound        the image is neither local nor pullable: the task is REJECTED
    ├── InvalidArgument
    │   └── InvalidTask          no controller can run this task (no container spec, no image)
    ├── FailedPrecondition
    │   ├── ExitError            the container exited with a non-zero code: the task FAILED
    │   └── ContainerUnhealthy   the health check failed: the task FAILED
    ├── TaskNoop                 `do()` has nothing to do until the desired state changes
    ├── TaskRetry                `do()` met a temporary error; report `status` and call again later
    ├── TaskPrepared             idempotency marker: prepare() found the work already done
    └── TaskStarted              idempotency marker: start() found the task already started

Any other exception a controller raises is fatal for the task (REJECTED before STARTING, FAILED
from STARTING on), unless `is_temporary()` says otherwise. This is SwarmKit's `agent/exec`
error set (`ErrTaskNoop`, `ErrTaskRetry`, `MakeTemporary`/`IsTemporary`) in Python shape.
"""

from __future__ import annotations

from swarmd.api import types_pb2
from swarmd.errors import FailedPrecondition, InvalidArgument, NotFound, SwarmError, Unavailable


class TemporaryError(Unavailable):
    """A failure that may go away on its own (engine unreachable, call timed out)."""


class ImageNotFound(NotFound):
    """The image is not present locally and could not be pulled."""

    def __init__(self, image: str, reason: str) -> None:
        super().__init__(
            "image",
            image,
            f'image "{image}" not found locally and could not be pulled: {reason}',
        )
        self.image = image
        self.reason = reason


class InvalidTask(InvalidArgument):
    """The task cannot be run by this executor; the message says why."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(f"task {task_id}: {reason}")
        self.task_id = task_id
        self.reason = reason


class ExitError(FailedPrecondition):
    """The task's process exited with a non-zero code."""

    def __init__(self, exit_code: int, detail: str = "") -> None:
        suffix = f": {detail}" if detail else ""
        super().__init__(f"task: non-zero exit ({exit_code}){suffix}")
        self.exit_code = exit_code


class ContainerUnhealthy(FailedPrecondition):
    """The container's health check reported unhealthy."""

    def __init__(self, detail: str = "") -> None:
        suffix = f": {detail}" if detail else ""
        super().__init__(f"task: container unhealthy{suffix}")


class TaskNoop(SwarmError):
    """`do()` cannot advance the task now; wait for a change of its desired state."""

    def __init__(self, task_id: str, state: types_pb2.TaskState.ValueType) -> None:
        super().__init__(f"task {task_id}: nothing to do in state {state_name(state)}")
        self.task_id = task_id
        self.state = state


class TaskRetry(SwarmError):
    """`do()` hit a temporary error; `status` (same state, `err` set) may be reported."""

    def __init__(self, status: types_pb2.TaskStatus, cause: BaseException) -> None:
        super().__init__(f"retry: {cause}")
        self.status = status


class TaskPrepared(SwarmError):
    """Raised by prepare() when the task was already prepared; `do()` treats it as success."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} is already prepared")


class TaskStarted(SwarmError):
    """Raised by start() when the task was already started; `do()` treats it as success."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} is already started")


def make_temporary(err: BaseException) -> TemporaryError:
    """Wrap `err` so `is_temporary()` holds; raise the result `from err`."""
    wrapped = TemporaryError(str(err))
    wrapped.__cause__ = err
    return wrapped


def is_temporary(err: BaseException | None) -> bool:
    """True when `err`, or an exception it was raised from, is a TemporaryError."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, TemporaryError):
            return True
        seen.add(id(err))
        err = err.__cause__
    return False


def state_name(state: types_pb2.TaskState.ValueType) -> str:
    """`RUNNING` for TASK_STATE_RUNNING; the number for a value outside the enum."""
    try:
        return types_pb2.TaskState.Name(state).removeprefix("TASK_STATE_")
    except ValueError:
        return str(int(state))


__all__ = [
    "ContainerUnhealthy",
    "ExitError",
    "ImageNotFound",
    "InvalidTask",
    "TaskNoop",
    "TaskPrepared",
    "TaskRetry",
    "TaskStarted",
    "TemporaryError",
    "is_temporary",
    "make_temporary",
    "state_name",
]
