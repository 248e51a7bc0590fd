"""DockerController: the swarmd.agent.exec.Controller of one task, as a Docker container.

Made by DockerExecutor.controller(task); driven by swarmd.agent.exec.do(). The container is
found by its labels (swarmd.task.id and this node's swarmd.node.id), never by name alone, so a
restarted agent adopts the container an earlier run created instead of creating a second one.
Waiting is event-driven (events.py): start() and wait() subscribe to the task's engine events
before they look at the container, so an exit between the look and the wait is not missed.

Engine calls are few on the common path, a new task (benchmarks.md, "Workload path"): a task
this agent never prepared (state below PREPARING when the controller is made) cannot have a
container yet, so prepare() creates without the label lookup (a container left by a lost
create answer is still adopted through the name conflict); the executor's PresentImages saves
the image inspect (tasks preparing together share one); and the inspect made right after
start serves the RUNNING report and the start of wait(), whose event subscription start()
opened before it and hands over. A fresh task costs create, start and one inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog

from swarmd.agent.exec import (
    ContainerUnhealthy,
    ExitError,
    ImageNotFound,
    LogLine,
    LogOptions,
    RuntimeStatus,
)
from swarmd.api import objects_pb2, types_pb2
from swarmd.dockerexec import container as spec
from swarmd.dockerexec.adapter import DockerAdapter, EngineConflict, EngineError
from swarmd.dockerexec.admission import AdmissionGate
from swarmd.dockerexec.events import HEALTHY, RESYNC, UNHEALTHY, EngineEvent, EventHub
from swarmd.dockerexec.images import PresentImages
from swarmd.dockerexec.logs import read_logs
from swarmd.errors import FailedPrecondition, NotFound

_log = structlog.get_logger(component="dockerexec")

Info = dict[str, Any]


class DockerController:
    """Runs one task as one container. See swarmd.agent.exec.controller for the contract."""

    def __init__(
        self,
        adapter: DockerAdapter,
        hub: EventHub,
        task: objects_pb2.Task,
        node_id: str,
        *,
        images: PresentImages | None = None,
        admission: AdmissionGate | None = None,
    ) -> None:
        self.task = task
        self._adapter = adapter
        self._hub = hub
        self._node_id = node_id
        self._images = images or PresentImages(ttl=0.0)
        # PREPARING is recorded before prepare() runs, so below it no container was made.
        self._fresh = task.status.state < types_pb2.TASK_STATE_PREPARING
        # A new task that is to run goes from create to start inside an admission slot.
        self._admission = (
            admission
            if self._fresh and task.desired_state >= types_pb2.TASK_STATE_RUNNING
            else None
        )
        # Computed up front: an invalid spec fails controller creation (InvalidTask), which
        # rejects the task before anything is created.
        self._kwargs = spec.create_kwargs(task, node_id)
        self._name: str = self._kwargs["name"]
        self._image: str = self._kwargs["image"]
        self._grace = spec.stop_grace_seconds(task.spec.container)
        self._container_id: str | None = None
        # The container is known to be as prepare() created it: never started.
        self._just_created = False
        # What observe() reports without asking the engine again, until the next action.
        self._runtime: RuntimeStatus | None = None
        # start()'s event subscription and its last inspect, handed over to wait().
        self._held: contextlib.ExitStack | None = None
        self._held_events: asyncio.Queue[EngineEvent] | None = None
        self._held_info: Info | None = None
        self._log = _log.bind(task_id=task.id, container=self._name)

    @property
    def container_id(self) -> str | None:
        """The container's id once prepare() created or adopted it."""
        return self._container_id

    # -- finding the container -------------------------------------------------------------

    async def _lookup(self) -> Info | None:
        """Inspect this task's container, finding it by labels the first time."""
        if self._container_id is not None:
            info = await self._adapter.inspect(self._container_id)
            if info is not None:
                return info
            self._container_id = None
        found = await self._adapter.list_by_labels(
            {spec.LABEL_TASK_ID: self.task.id, spec.LABEL_NODE_ID: self._node_id}
        )
        if not found:
            return None
        info = await self._adapter.inspect(str(found[0]["Id"]))
        if info is not None:
            self._container_id = str(info["Id"])
        return info

    async def _require(self) -> Info:
        info = await self._lookup()
        if info is None:
            raise FailedPrecondition(f"container {self._name} of task {self.task.id} not found")
        return info

    def _owns(self, info: Info) -> bool:
        labels = (info.get("Config") or {}).get("Labels") or {}
        return bool(
            labels.get(spec.LABEL_TASK_ID) == self.task.id
            and labels.get(spec.LABEL_NODE_ID) == self._node_id
        )

    # -- the Controller protocol -----------------------------------------------------------

    async def prepare(self) -> None:
        """Adopt the task's container if it exists; else ensure the image and create it."""
        self._forget()
        if not self._fresh and await self._lookup() is not None:
            self._log.info("adopted existing container", container_id=self._container_id)
            return
        trusted = await self._ensure_image()
        if self._admission is not None:
            await self._admission.acquire(self.task.id)
        try:
            created = await self._create_or_adopt_image_again(trusted)
        except BaseException:
            self._release()
            raise
        if not created or self._container_id is None:
            self._log.info("adopted existing container", container_id=self._container_id)
            return
        self._just_created = True
        self._runtime = RuntimeStatus(
            container=types_pb2.ContainerStatus(container_id=self._container_id)
        )
        self._log.info("container created", container_id=self._container_id)

    async def _create_or_adopt_image_again(self, trusted: bool) -> bool:
        try:
            return await self._create_or_adopt()
        except NotFound:
            if not trusted:
                raise
            # The image was removed since it was seen (the engine: 404 "no such image").
            self._images.forget(self._image)
            await self._ensure_image()
            return await self._create_or_adopt()

    def _release(self) -> None:
        """Give back the admission slot, if this task holds one (every exit path may call)."""
        if self._admission is not None:
            self._admission.release(self.task.id)

    async def _create_or_adopt(self) -> bool:
        """Create the container (True), or adopt ours that already has its name (False)."""
        try:
            self._container_id = await self._adapter.create(self._kwargs)
            return True
        except EngineConflict as err:
            # The name is taken: by our own container (an earlier create whose answer was
            # lost), which we adopt, or by a stranger, which we must not touch.
            info = await self._adapter.inspect(self._name)
            if info is None or not self._owns(info):
                raise FailedPrecondition(
                    f"container name {self._name} is in use by a container "
                    f"that does not belong to task {self.task.id}"
                ) from err
            self._container_id = str(info["Id"])
            return False

    async def _ensure_image(self) -> bool:
        """Make sure the image is there; True when only PresentImages said so.

        Tasks preparing at the same time share one check (and one pull) of their image; a
        task that joined another's check trusts it like a PresentImages entry.
        """
        # decisions.md: use the local image when present, pull only when missing.
        if self._image in self._images:
            return True
        return await self._images.check_once(self._image, self._check_image)

    async def _check_image(self) -> None:
        if await self._adapter.inspect_image(self._image) is not None:
            self._images.seen(self._image)
            return
        self._log.info("pulling image", image=self._image)
        try:
            await self._adapter.pull(self._image)
        except (EngineError, NotFound) as err:
            raise ImageNotFound(self._image, _reason(err)) from err
        if await self._adapter.inspect_image(self._image) is None:
            raise ImageNotFound(self._image, "the pull finished but the image is not there")
        self._images.seen(self._image)

    async def start(self) -> None:
        """Start the container once; with a health check, return when it is healthy."""
        just_created, container_id = self._just_created, self._container_id
        self._forget()
        stack = contextlib.ExitStack()
        try:
            events = stack.enter_context(self._hub.subscribe(self.task.id))
            if not just_created or container_id is None:
                info = await self._require()
                container_id = str(info["Id"])
                if spec.has_started(info):
                    container_id = None
            if container_id is not None:
                try:
                    await self._adapter.start(container_id)
                finally:
                    self._release()  # started or failed: the next task may create
                self._log.info("container started")
            # Taken after the start, inside the subscription: what wait() would look at first.
            after = await self._require()
            if spec.has_healthcheck(after):
                await self._until_healthy(events, after)
                return
            self._runtime = self._runtime_of(after)
            self._held, self._held_events, self._held_info = stack, events, after
            stack = contextlib.ExitStack()  # handed over: not closed here
        finally:
            self._release()
            stack.close()

    def _forget(self) -> None:
        """Drop what start() kept for observe() and wait(): an action makes it stale."""
        self._just_created = False
        self._runtime = None
        self._held_events = None
        self._held_info = None
        if self._held is not None:
            held, self._held = self._held, None
            held.close()

    async def _until_healthy(self, events: asyncio.Queue[EngineEvent], first: Info) -> None:
        info: Info | None = first
        while True:
            if info is not None:
                health = spec.health_state(info)
                if health == types_pb2.HEALTH_STATE_HEALTHY:
                    return
                if health == types_pb2.HEALTH_STATE_UNHEALTHY:
                    raise ContainerUnhealthy()
                if not spec.is_running(info):
                    raise _exit_error(spec.exit_code(info), "exited before it became healthy")
            event = await events.get()
            info = None
            if event.action == HEALTHY:
                return
            if event.action == UNHEALTHY:
                raise ContainerUnhealthy()
            if event.action == "die":
                raise _exit_error(event.exit_code or 0, "exited before it became healthy")
            if event.action in ("destroy", RESYNC.action):
                info = await self._require()

    async def wait(self) -> None:
        """Until the container exits: 0 returns, anything else raises ExitError."""
        held, held_events, held_info = self._held, self._held_events, self._held_info
        self._held = None
        self._forget()
        with contextlib.ExitStack() as stack:
            info: Info | None
            if held is not None and held_events is not None:
                stack.push(held)  # closed when this wait ends, however it ends
                events, info = held_events, held_info
            else:
                events = stack.enter_context(self._hub.subscribe(self.task.id))
                info = await self._require()
            oom = False
            while True:
                if info is not None:
                    if spec.has_started(info) and not spec.is_running(info):
                        _check_exit(spec.exit_code(info), oom or spec.oom_killed(info))
                        return
                    if spec.health_state(info) == types_pb2.HEALTH_STATE_UNHEALTHY:
                        await self._fail_unhealthy()
                event = await events.get()
                info = None
                if event.action == "oom":
                    oom = True
                elif event.action == "die":
                    _check_exit(event.exit_code or 0, oom)
                    return
                elif event.action == UNHEALTHY:
                    await self._fail_unhealthy()
                elif event.action == "destroy":
                    raise FailedPrecondition(f"task: container {self._name} was removed")
                elif event.action == RESYNC.action:
                    info = await self._require()

    async def _fail_unhealthy(self) -> None:
        # SwarmKit stops an unhealthy container, then fails the task.
        self._log.info("container unhealthy; stopping it")
        await self.shutdown()
        raise ContainerUnhealthy()

    async def shutdown(self) -> None:
        """`docker stop` with the task's stop signal and grace period; no-op if not running."""
        self._forget()
        self._release()
        info = await self._lookup()
        if info is None or not spec.is_running(info):
            return
        try:
            await self._adapter.stop(str(info["Id"]), self._grace)
        except NotFound:
            return
        self._log.info("container stopped", grace=self._grace)

    async def terminate(self) -> None:
        """`docker kill`; a no-op when the container is gone or not running."""
        self._forget()
        self._release()
        info = await self._lookup()
        if info is None or not spec.is_running(info):
            return
        try:
            await self._adapter.kill(str(info["Id"]))
        except (NotFound, EngineConflict):
            return  # gone, or exited between the inspect and the kill

    async def remove(self) -> None:
        """Force-remove the container and its anonymous volumes; no-op when it is gone."""
        self._forget()
        self._release()
        info = await self._lookup()
        if info is None:
            return
        try:
            await self._adapter.remove(str(info["Id"]))
        except EngineConflict as err:
            if "already in progress" not in str(err):
                raise
        self._container_id = None
        self._log.info("container removed")

    async def close(self) -> None:
        """Release the event subscription start() kept for a wait() that never came."""
        self._forget()
        self._release()

    async def observe(self) -> RuntimeStatus:
        """Container id, pid, exit code, bound host ports and health, from one inspect.

        Right after prepare() or start(), what that step already learnt, without an inspect.
        """
        if self._runtime is not None:
            return self._runtime
        info = await self._lookup()
        if info is None:
            return RuntimeStatus()
        return self._runtime_of(info)

    def _runtime_of(self, info: Info) -> RuntimeStatus:
        return RuntimeStatus(
            container=spec.container_status(info),
            ports=spec.published_ports(info, self.task),
            health=spec.health_state(info),
        )

    async def logs(self, options: LogOptions) -> AsyncIterator[LogLine]:
        """The container's output (dockerexec.logs: one thread per stream, off the call pool).

        Raises NotFound when the task has no container.
        """
        info = await self._require_for_logs()
        lines = read_logs(
            self._adapter.new_client, str(info["Id"]), options, self._adapter.call_timeout
        )
        # Closed explicitly, so that a reader that stops early stops the threads at once.
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield line

    async def _require_for_logs(self) -> Info:
        info = await self._lookup()
        if info is None:
            raise NotFound("container", self._name, f"task {self.task.id} has no container")
        return info


def _reason(err: BaseException) -> str:
    text = str(err)
    # Drop our own "docker pull <ref>: " prefix: the image is named by the outer message.
    head, sep, tail = text.partition(": ")
    return tail if sep and head.startswith("docker ") else text


def _exit_error(code: int, detail: str) -> FailedPrecondition:
    if code != 0:
        return ExitError(code, detail)
    return FailedPrecondition(f"task: container {detail}")


def _check_exit(code: int, oom: bool) -> None:
    if code != 0:
        raise ExitError(code, "container ran out of memory" if oom else "")


__all__ = ["DockerController"]
