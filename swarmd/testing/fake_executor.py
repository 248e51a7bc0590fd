"""FakeExecutor and FakeController: the agent's executor seam without Docker, for tests.

Agent, task-manager and cluster tests use these where production uses
swarmd.dockerexec.DockerExecutor. They implement the same protocols
(swarmd.agent.exec.Executor/Controller) with the same idempotence rules, and keep "containers"
in memory, in the executor, so a test can restart an agent over the same executor and see its
old containers adopted or pruned, as with a real engine.

Scripting. Every task gets a `Behaviour`: the executor's default, or one set for its task id
(`script_task`) or service name (`script_service`), task id first. A Behaviour can make
prepare() or start() fail (fatally, or temporarily for the first N calls), make the process
exit with a code after some seconds of the injected Clock (a FakeClock in unit tests, real time
in cluster tests), report unhealthy, or print lines on stdout/stderr when it starts. `write(task_id,
text)` makes a running task print a line later; `logs()` serves them with the same tail/since/
follow rules as the Docker controller (follow ends when the process exits). `exit(task_id,
code)` ends a running task from outside, like a process dying on its own; `refuse(task_id,
reason)` makes controller() raise InvalidTask.

What is recorded, for assertions: each controller's `calls` (method names in order), the
executor's `controllers` (latest per task id) and `containers` (live ones, by task id).
Loop-confined; nothing here is thread-safe, as nothing in the agent is.

Prior art: SwarmKit's agent/testutils TestExecutor/TestController, httpx's MockTransport.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Collection, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from swarmd.agent.exec import (
    ContainerUnhealthy,
    Controller,
    Executor,
    ExitError,
    InvalidTask,
    LogLine,
    LogOptions,
    RuntimeStatus,
    TemporaryError,
)
from swarmd.api import logs_pb2, objects_pb2, types_pb2
from swarmd.clock import Clock, SystemClock
from swarmd.errors import FailedPrecondition, NotFound

#: The exit code of a process stopped by shutdown() (128 + SIGTERM) and by terminate() (SIGKILL).
STOP_EXIT_CODE = 143
KILL_EXIT_CODE = 137


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a fake task behaves. The default runs until it is shut down.

    Attributes:
        prepare_error: raised by every prepare() (a fatal error rejects the task).
        prepare_temporary_failures: the first N prepare() calls raise TemporaryError.
        start_error: raised by every start() (a fatal error fails the task).
        exit_code: when set, the process exits with it `run_seconds` after start().
        run_seconds: clock seconds between start() and that exit (0 = at once).
        unhealthy: start() raises ContainerUnhealthy, as a failing health check would.
        ports: host ports the container reports as published, for observe().
        stdout: lines the process prints on stdout when it starts.
        stderr: lines it prints on stderr after those.
        logs_stall: logs() never finishes its backlog, like an engine that stopped answering.
    """

    prepare_error: Exception | None = None
    prepare_temporary_failures: int = 0
    start_error: Exception | None = None
    exit_code: int | None = None
    run_seconds: float = 0.0
    unhealthy: bool = False
    ports: tuple[types_pb2.PortConfig, ...] = ()
    stdout: tuple[str, ...] = ()
    stderr: tuple[str, ...] = ()
    logs_stall: bool = False


@dataclass(slots=True)
class FakeContainer:
    """An in-memory stand-in for one task's container."""

    task_id: str
    container_id: str
    state: str = "created"  # created -> running -> exited
    exit_code: int = 0
    pid: int = 0
    started_at: float | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    #: What the process printed, oldest first.
    lines: list[LogLine] = field(default_factory=list)
    _waiters: set[asyncio.Future[None]] = field(default_factory=set)

    def finish(self, code: int) -> None:
        """Mark the process as exited with `code`, waking wait() and log followers."""
        if self.state == "exited":
            return
        self.state = "exited"
        self.exit_code = code
        self.pid = 0
        self.exited.set()
        self._notify()

    def print(self, stream: logs_pb2.LogStream.ValueType, text: str, now: float) -> None:
        """Record one line the process wrote; timestamps strictly increase."""
        ts = int(now * 1e9)
        if self.lines:
            ts = max(ts, self.lines[-1].timestamp_ns + 1)
        self.lines.append(LogLine(stream=stream, timestamp_ns=ts, data=text.encode()))
        self._notify()

    async def changed(self) -> None:
        """Until the next line or the exit."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await fut
        finally:
            self._waiters.discard(fut)

    def _notify(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)


class FakeExecutor:
    """An Executor whose containers live in memory; see the module docstring."""

    def __init__(
        self,
        description: types_pb2.NodeDescription | None = None,
        *,
        default: Behaviour | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.description = description or types_pb2.NodeDescription(
            hostname="fake-host",
            platform=types_pb2.Platform(os="linux", architecture="x86_64"),
            resources=types_pb2.Resources(nano_cpus=2_000_000_000, memory_bytes=4 << 30),
            engine=types_pb2.EngineDescription(engine_version="fake-1.0"),
        )
        self.default = default or Behaviour()
        self.clock: Clock = clock or SystemClock()
        self.containers: dict[str, FakeContainer] = {}
        self.controllers: dict[str, FakeController] = {}
        self._by_task: dict[str, Behaviour] = {}
        self._by_service: dict[str, Behaviour] = {}
        self._refused: dict[str, str] = {}
        self._pids = itertools.count(1000)

    # -- scripting -------------------------------------------------------------------------

    def script_task(self, task_id: str, behaviour: Behaviour) -> None:
        """Use `behaviour` for the task with this id (takes precedence over its service)."""
        self._by_task[task_id] = behaviour

    def script_service(self, service_name: str, behaviour: Behaviour) -> None:
        """Use `behaviour` for every task of the service with this name."""
        self._by_service[service_name] = behaviour

    def refuse(self, task_id: str, reason: str) -> None:
        """Make controller() raise InvalidTask(reason) for this task."""
        self._refused[task_id] = reason

    def behaviour_for(self, task: objects_pb2.Task) -> Behaviour:
        """The Behaviour a task gets: by task id, else by service name, else the default."""
        if task.id in self._by_task:
            return self._by_task[task.id]
        return self._by_service.get(task.service_annotations.name, self.default)

    def add_container(self, task_id: str, *, running: bool = True) -> FakeContainer:
        """A container left by an earlier agent run (running, or exited with code 0)."""
        container = self._new_container(task_id)
        if running:
            container.state = "running"
            container.pid = next(self._pids)
            container.started_at = self.clock.monotonic()
        else:
            container.finish(0)
        return container

    def exit(self, task_id: str, code: int) -> None:
        """End the running process of `task_id` with `code` (as if it died on its own)."""
        container = self.containers.get(task_id)
        if container is None or container.state != "running":
            raise FailedPrecondition(f"fake container of task {task_id} is not running")
        container.finish(code)

    def write(
        self,
        task_id: str,
        text: str,
        stream: logs_pb2.LogStream.ValueType = logs_pb2.LOG_STREAM_STDOUT,
    ) -> None:
        """Make the process of `task_id` print one line (on stdout unless told otherwise)."""
        container = self.containers.get(task_id)
        if container is None or container.state != "running":
            raise FailedPrecondition(f"fake container of task {task_id} is not running")
        container.print(stream, text, self.clock.now())

    def _new_container(self, task_id: str) -> FakeContainer:
        container = FakeContainer(task_id=task_id, container_id=f"fake-{task_id}")
        self.containers[task_id] = container
        return container

    def _next_pid(self) -> int:
        return next(self._pids)

    # -- the Executor protocol -------------------------------------------------------------

    async def describe(self) -> types_pb2.NodeDescription:
        """A copy of `description`."""
        out = types_pb2.NodeDescription()
        out.CopyFrom(self.description)
        return out

    def controller(self, task: objects_pb2.Task) -> FakeController:
        """A FakeController for `task`, following its Behaviour."""
        if task.id in self._refused:
            raise InvalidTask(task.id, self._refused[task.id])
        if not task.spec.container.image:
            raise InvalidTask(task.id, "the task has no container image")
        ctlr = FakeController(self, task, self.behaviour_for(task))
        self.controllers[task.id] = ctlr
        return ctlr

    async def list_task_ids(self) -> frozenset[str]:
        """Ids of the tasks that have a fake container."""
        return frozenset(self.containers)

    async def prune(self, keep: Collection[str]) -> list[str]:
        """Drop the containers of tasks not in `keep`; returns their ids, sorted."""
        gone = sorted(t for t in self.containers if t not in keep)
        for task_id in gone:
            self.containers.pop(task_id).finish(KILL_EXIT_CODE)
        return gone


class FakeController:
    """A Controller over a FakeContainer, idempotent like the Docker one."""

    def __init__(self, executor: FakeExecutor, task: objects_pb2.Task, behaviour: Behaviour):
        self.task = task
        self.behaviour = behaviour
        #: Names of the protocol methods called, in order.
        self.calls: list[str] = []
        #: True when prepare() found an existing container instead of creating one.
        self.adopted = False
        self.closed = False
        self._executor = executor
        self._prepare_attempts = 0

    def _container(self) -> FakeContainer | None:
        return self._executor.containers.get(self.task.id)

    def _require(self) -> FakeContainer:
        container = self._container()
        if container is None:
            raise FailedPrecondition(f"task {self.task.id} has no container")
        return container

    async def prepare(self) -> None:
        """Create the fake container (or adopt the existing one)."""
        self.calls.append("prepare")
        self._prepare_attempts += 1
        if self._prepare_attempts <= self.behaviour.prepare_temporary_failures:
            raise TemporaryError(f"fake engine unavailable for task {self.task.id}")
        if self.behaviour.prepare_error is not None:
            raise self.behaviour.prepare_error
        if self._container() is not None:
            self.adopted = True
            return
        self._executor._new_container(self.task.id)

    async def start(self) -> None:
        """Start the container once; later calls are no-ops (tasks are one-shot)."""
        self.calls.append("start")
        if self.behaviour.start_error is not None:
            raise self.behaviour.start_error
        container = self._require()
        if container.state == "created":
            container.state = "running"
            container.pid = self._executor._next_pid()
            container.started_at = self._executor.clock.monotonic()
            now = self._executor.clock.now()
            for text in self.behaviour.stdout:
                container.print(logs_pb2.LOG_STREAM_STDOUT, text, now)
            for text in self.behaviour.stderr:
                container.print(logs_pb2.LOG_STREAM_STDERR, text, now)
        if self.behaviour.unhealthy:
            container.finish(STOP_EXIT_CODE)
            raise ContainerUnhealthy("fake health check failed")

    async def wait(self) -> None:
        """Until the process exits: scripted exit, exit(), shutdown() or terminate()."""
        self.calls.append("wait")
        container = self._require()
        code = self.behaviour.exit_code
        if container.state == "running" and code is not None:
            now = self._executor.clock.monotonic()
            started = now if container.started_at is None else container.started_at
            delay = started + self.behaviour.run_seconds - now
            await _first_of(container.exited.wait(), self._executor.clock.sleep(max(0.0, delay)))
            container.finish(code)
        elif container.state != "exited":
            await container.exited.wait()
        if container.exit_code != 0:
            raise ExitError(container.exit_code)

    async def shutdown(self) -> None:
        """Stop a running process (it exits with STOP_EXIT_CODE); otherwise a no-op."""
        self.calls.append("shutdown")
        container = self._container()
        if container is not None and container.state == "running":
            container.finish(STOP_EXIT_CODE)

    async def terminate(self) -> None:
        """Kill a running process (it exits with KILL_EXIT_CODE); otherwise a no-op."""
        self.calls.append("terminate")
        container = self._container()
        if container is not None and container.state == "running":
            container.finish(KILL_EXIT_CODE)

    async def remove(self) -> None:
        """Drop the container, killing it first if needed; a no-op when none is left."""
        self.calls.append("remove")
        container = self._executor.containers.pop(self.task.id, None)
        if container is not None:
            container.finish(KILL_EXIT_CODE)

    async def close(self) -> None:
        """Mark the controller closed; the container stays."""
        self.calls.append("close")
        self.closed = True

    async def observe(self) -> RuntimeStatus:
        """Container id, pid, exit code and the scripted ports."""
        container = self._container()
        if container is None:
            return RuntimeStatus()
        return RuntimeStatus(
            container=types_pb2.ContainerStatus(
                container_id=container.container_id,
                pid=container.pid,
                exit_code=container.exit_code,
            ),
            ports=self.behaviour.ports,
        )

    async def logs(self, options: LogOptions) -> AsyncIterator[LogLine]:
        """The lines printed so far as `options` select, then new ones with `follow`."""
        self.calls.append("logs")
        container = self._container()
        if container is None:
            raise NotFound("container", self.task.id, f"task {self.task.id} has no container")
        wanted = {
            s
            for s, on in (
                (logs_pb2.LOG_STREAM_STDOUT, options.stdout),
                (logs_pb2.LOG_STREAM_STDERR, options.stderr),
            )
            if on
        }
        since_ns = int(options.since * 1e9) if options.since is not None else 0

        def selected(line: LogLine) -> bool:
            return line.stream in wanted and line.timestamp_ns >= since_ns

        backlog = [ln for ln in container.lines if selected(ln)]
        seen = len(container.lines)
        if options.tail is not None:
            backlog = backlog[len(backlog) - options.tail :] if options.tail else []
        for line in backlog:
            yield line
        if self.behaviour.logs_stall:
            await asyncio.Event().wait()
        while options.follow:
            for line in container.lines[seen:]:
                if selected(line):
                    yield line
            seen = len(container.lines)
            if container.state == "exited":
                return
            await container.changed()


async def _first_of(*aws: Coroutine[Any, Any, object]) -> None:
    """Wait until the first of the coroutines finishes, then cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if TYPE_CHECKING:

    def _conforms(e: FakeExecutor, c: FakeController) -> tuple[Executor, Controller]:
        return e, c  # mypy checks both protocols here


__all__ = [
    "KILL_EXIT_CODE",
    "STOP_EXIT_CODE",
    "Behaviour",
    "FakeContainer",
    "FakeController",
    "FakeExecutor",
]
