"""Raw Docker Engine calls, run off the event loop on a small dedicated thread pool.

DockerController and DockerExecutor call these coroutines; nothing else in swarmd talks to the
engine's request API (the event stream has its own client and thread, events.py). Why a
dedicated pool: the Docker SDK blocks, and the loop's default executor is shared by everyone
(measurements.md section 5: more than 4-6 parallel calls only add latency, and the SDK's
connection pool must be at least as large as the number of threads using it). The pool runs
the calls that move a task forward (start, stop, kill, inspect) before queued lists, pulls and
removes, and those before creates, of which only `create_limit` run at once (callqueue.py):
containers start while others are still being created, and the creates do not crowd the
starts out of the engine.

Every call has two timeouts: the client's HTTP timeout (`call_timeout`, applied to each socket
operation by the SDK; `stop` adds the grace period itself) and an overall deadline on the
awaiting side, after which the caller gets a TemporaryError even though the thread may still
be blocked (threads cannot be cancelled).

Errors leave this module as swarmd errors only:
  - the engine cannot be reached, or does not answer in time -> TemporaryError;
  - the object does not exist -> NotFound (methods that tolerate it return None instead);
  - a name is taken or the container is in the wrong state (409) -> EngineConflict;
  - any other engine refusal -> EngineError, with the engine's explanation.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import docker
import docker.errors
import docker.models.containers
import structlog

from swarmd.agent.exec import TemporaryError
from swarmd.dockerexec.callpool import CREATE, NORMAL, URGENT, CallPool
from swarmd.dockerexec.callqueue import DEFAULT_CREATE_LIMIT
from swarmd.errors import FailedPrecondition, NotFound

_log = structlog.get_logger(component="dockerexec")

T = TypeVar("T")

#: Threads for engine calls, and new tasks between create and start (admission.py). dockerd
#: starts only 5-10 containers a second here, but it waits on containerd and runc for much of
#: each start, so a few more starts in flight than the 8 of decisions.md keep it busier: with
#: 12, create 10 and create 50 met both of the issue's goals in two runs of three, with 8 in
#: none of eight (benchmarks.md, "Update 2026-12-01 (afternoon)"). The raw floor uses the same.
DEFAULT_WORKERS = 12
# Stops in their grace, at once, per node (each holds a thread while the engine waits).
STOP_WORKERS = 32
DEFAULT_CALL_TIMEOUT = 30.0
DEFAULT_PULL_TIMEOUT = 300.0


class EngineError(FailedPrecondition):
    """The engine refused a request; the message carries its explanation."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class EngineConflict(EngineError):
    """409 from the engine: a name in use, or a container in the wrong state."""


class PullError(EngineError):
    """A pull finished without the image (the registry reported an error)."""


def _explain(err: docker.errors.APIError) -> str:
    text: object = err.explanation or str(err)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return str(text).strip()


class DockerAdapter:
    """Blocking Docker SDK calls behind coroutines, with bounded threads and timeouts.

    The client is made lazily in a pool thread (making it talks to the engine to negotiate
    the API version), so an engine that is down at start-up only makes calls fail with
    TemporaryError until it is back.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        pull_timeout: float = DEFAULT_PULL_TIMEOUT,
        create_limit: int = DEFAULT_CREATE_LIMIT,
    ) -> None:
        self.base_url = base_url
        self.call_timeout = call_timeout
        self.pull_timeout = pull_timeout
        self._workers = workers
        self._pool = CallPool(workers, "dockerexec", {CREATE: create_limit})
        # A stop blocks its thread for the whole stop grace (the engine waits, then kills): on
        # the shared pool, 8 stops in their grace would hold every thread and stall the node's
        # creates and starts (a start-first update retiring old tasks). Stops get their own.
        self._stop_pool = CallPool(STOP_WORKERS, "dockerexec-stop")
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self._closed = False

    def new_client(self, timeout: float | None) -> docker.DockerClient:
        """A fresh client for this engine (blocking). Used by the event stream for its own."""
        # The SDK types timeout as int but passes it to requests, which takes floats and None.
        t: Any = timeout
        if self.base_url:
            client = docker.DockerClient(
                base_url=self.base_url, timeout=t, max_pool_size=self._connections()
            )
        else:
            client = docker.DockerClient.from_env(timeout=t, max_pool_size=self._connections())
        # The low-level client is a requests Session: without this, every call looks for
        # proxy variables and stats ~/.netrc, CPU that the engine's own work needs here.
        client.api.trust_env = False
        return client

    def _connections(self) -> int:
        # Every thread of both pools may hold a connection at once.
        return max(self._workers + STOP_WORKERS, 10)

    def _get_client(self) -> docker.DockerClient:
        with self._client_lock:
            if self._client is None:
                self._client = self.new_client(self.call_timeout)
            return self._client

    async def _run(
        self,
        op: str,
        fn: Callable[[docker.DockerClient], T],
        deadline: float | None = None,
        *,
        cls: int = NORMAL,
        stop_pool: bool = False,
    ) -> T:
        if self._closed:
            raise TemporaryError(f"docker {op}: the docker executor is closed")
        pool = self._stop_pool if stop_pool else self._pool
        job = pool.submit(cls, functools.partial(self._call, op, fn))
        fut = asyncio.wrap_future(job)
        budget = deadline if deadline is not None else self.call_timeout + 5.0
        try:
            async with asyncio.timeout(budget):
                return await fut
        except TimeoutError as err:
            raise TemporaryError(
                f"docker {op}: the engine did not answer within {budget:g}s"
            ) from err

    def _call(self, op: str, fn: Callable[[docker.DockerClient], T]) -> T:
        # Runs in a pool thread: translate SDK and transport errors into swarmd errors here,
        # so nothing Docker-specific crosses into the loop.
        try:
            return fn(self._get_client())
        except docker.errors.NotFound as err:
            raise NotFound("docker object", op, f"docker {op}: {_explain(err)}") from err
        except docker.errors.APIError as err:
            code = err.status_code
            cls = EngineConflict if code == 409 else EngineError
            raise cls(f"docker {op}: {_explain(err)}", code) from err
        except (docker.errors.DockerException, OSError) as err:
            # requests' ConnectionError/Timeout are OSErrors; DockerException covers a failed
            # version negotiation when the engine is down.
            raise TemporaryError(f"docker {op}: engine unreachable: {err}") from err

    # -- engine ----------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """`docker info`."""
        return await self._run("info", lambda c: c.api.info())

    # -- images ----------------------------------------------------------------------------

    async def inspect_image(self, ref: str) -> dict[str, Any] | None:
        """The local image `ref`, or None when it is not present."""

        def call(c: docker.DockerClient) -> dict[str, Any] | None:
            # types-docker leaves inspect_image untyped; it returns the image's JSON object.
            inspect_image: Callable[[str], dict[str, Any]] = c.api.inspect_image
            try:
                return inspect_image(ref)
            except docker.errors.NotFound:
                return None

        return await self._run(f"image inspect {ref}", call)

    async def pull(self, ref: str) -> None:
        """Pull `ref` (a tag defaults to latest). Raises PullError with the registry's reason."""

        def call(c: docker.DockerClient) -> None:
            reason = ""
            for line in c.api.pull(ref, stream=True, decode=True):
                if isinstance(line, Mapping) and line.get("error"):
                    reason = str(line["error"])
            if reason:
                raise PullError(f"docker pull {ref}: {reason}")

        await self._run(f"pull {ref}", call, deadline=self.pull_timeout)

    # -- containers ------------------------------------------------------------------------

    async def create(self, kwargs: Mapping[str, Any]) -> str:
        """Create a container from `containers.create()` kwargs; returns its id.

        Through the low-level API: `containers.create()` inspects the new container before it
        returns, a second engine call nobody here needs.
        """

        def call(c: docker.DockerClient) -> str:
            args: dict[str, Any] = {"command": None, **kwargs, "version": c.api.api_version}
            # The SDK's own translation of containers.create() arguments (host config etc.).
            low = docker.models.containers._create_container_args(args)  # type: ignore[attr-defined]
            resp: Mapping[str, Any] = c.api.create_container(**low)
            return str(resp["Id"])

        return await self._run(f"create {kwargs.get('name', '')}", call, cls=CREATE)

    async def inspect(self, ref: str) -> dict[str, Any] | None:
        """`docker inspect` of a container by id or name, or None when it does not exist."""

        def call(c: docker.DockerClient) -> dict[str, Any] | None:
            try:
                out: dict[str, Any] = c.api.inspect_container(ref)
                return out
            except docker.errors.NotFound:
                return None

        return await self._run(f"inspect {ref}", call, cls=URGENT)

    async def list_by_labels(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every container (running or not) carrying all of `labels`, as the list API gives."""
        filters = {"label": [f"{k}={v}" for k, v in sorted(labels.items())]}

        def call(c: docker.DockerClient) -> list[dict[str, Any]]:
            return list(c.api.containers(all=True, filters=filters))

        return await self._run("list containers", call)

    async def start(self, ref: str) -> None:
        """Start a container (a running one is left alone by the engine)."""
        await self._run(f"start {ref}", lambda c: c.api.start(ref), cls=URGENT)

    async def stop(self, ref: str, grace: int) -> None:
        """Stop signal, then SIGKILL after `grace` seconds; a no-op when not running."""
        await self._run(
            f"stop {ref}",
            lambda c: c.api.stop(ref, timeout=grace),
            deadline=grace + self.call_timeout + 5.0,
            cls=URGENT,
            stop_pool=True,
        )

    async def kill(self, ref: str) -> None:
        """SIGKILL the container's process."""
        await self._run(f"kill {ref}", lambda c: c.api.kill(ref), cls=URGENT)

    async def remove(self, ref: str) -> None:
        """Force-remove the container with its anonymous volumes; a no-op when it is gone."""

        def call(c: docker.DockerClient) -> None:
            try:
                c.api.remove_container(ref, v=True, force=True)
            except docker.errors.NotFound:
                pass

        await self._run(f"remove {ref}", call)

    async def close(self) -> None:
        """Stop accepting calls, drop queued ones, close the client's connections.

        Calls already running in a thread finish (or fail) on their own HTTP timeout.
        """
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown()
        self._stop_pool.shutdown()
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_PULL_TIMEOUT",
    "DEFAULT_WORKERS",
    "STOP_WORKERS",
    "DockerAdapter",
    "EngineConflict",
    "EngineError",
    "PullError",
]
