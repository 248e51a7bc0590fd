"""adapter.py: SDK and transport errors become swarmd errors; deadlines become TemporaryError."""

from __future__ import annotations

import asyncio
import threading
import time

import docker.errors
import pytest
import requests

from swarmd.agent.exec import TemporaryError, is_temporary
from swarmd.dockerexec.adapter import DockerAdapter, EngineConflict, EngineError
from swarmd.errors import NotFound


def api_error(code, text):
    response = requests.Response()
    response.status_code = code
    cls = docker.errors.NotFound if code == 404 else docker.errors.APIError
    return cls(f"{code} error", response=response, explanation=text)


@pytest.fixture
async def adapter():
    a = DockerAdapter("unix:///nonexistent/docker.sock", workers=2, call_timeout=2)
    yield a
    await a.close()


class NoClient:
    """Stands in for the SDK client: the scripted calls never use it."""

    def close(self):
        pass


def raising(err):
    def fn(client):
        raise err

    return fn


@pytest.mark.parametrize(
    ("err", "cls", "message"),
    [
        (
            api_error(404, "No such container: c1"),
            NotFound,
            "docker kill c1: No such container: c1",
        ),
        (api_error(409, "Conflict. name in use"), EngineConflict, "docker kill c1: Conflict."),
        (api_error(500, "OCI runtime create failed"), EngineError, "docker kill c1: OCI runtime"),
        (requests.exceptions.ConnectionError("refused"), TemporaryError, "engine unreachable"),
        (requests.exceptions.ReadTimeout("slow"), TemporaryError, "engine unreachable: slow"),
        (docker.errors.DockerException("no version"), TemporaryError, "engine unreachable"),
    ],
)
async def test_engine_errors_are_translated(adapter, err, cls, message):
    adapter._client = NoClient()  # the fn ignores it; no engine is contacted
    with pytest.raises(cls) as info:
        await adapter._run("kill c1", raising(err))
    assert message in str(info.value)
    assert info.value.__cause__ is err
    assert is_temporary(info.value) == (cls is TemporaryError)


async def test_a_call_past_its_deadline_is_temporary(adapter):
    release = threading.Event()

    def hang(client):
        release.wait(10)

    adapter._client = NoClient()
    try:
        with pytest.raises(TemporaryError, match=r"the engine did not answer within 0\.2s"):
            await adapter._run("inspect c1", hang, deadline=0.2)
    finally:
        release.set()


async def test_an_unreachable_engine_is_temporary(adapter):
    with pytest.raises(TemporaryError, match="docker info: engine unreachable"):
        await adapter.info()


async def test_a_closed_adapter_refuses_calls(adapter):
    await adapter.close()
    with pytest.raises(TemporaryError, match="docker executor is closed"):
        await adapter.inspect("c1")


async def test_stops_in_their_grace_never_hold_up_other_engine_calls() -> None:
    """8 stops waiting out their grace must not stall other calls (start-first updates)."""
    release = threading.Event()

    class Api:
        api_version = "1.41"

        def stop(self, ref, timeout):
            release.wait(10)  # the engine waiting out the stop grace

        def inspect_container(self, ref):
            return {"Id": ref}

    class Client:
        api = Api()

        def close(self):
            pass

    a = DockerAdapter("unix:///nonexistent/docker.sock", workers=2, call_timeout=5)
    a._client = Client()
    try:
        stops = [asyncio.ensure_future(a.stop(f"old{i}", grace=10)) for i in range(8)]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        assert (await a.inspect("new")) == {"Id": "new"}
        assert time.monotonic() - started < 1.0
        release.set()
        await asyncio.gather(*stops)
    finally:
        release.set()
        await a.close()
