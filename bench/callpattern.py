"""Raw-floor variants that replay swarmd's agent call pattern: where its extra time goes.

Called by bench/workload.py for `--only diagnose` (not in the default run). Each variant starts
the same n containers on dockerd from FIFO pools of 8 threads, as swarmd's Docker executor did
before its call classes and admission window (swarmd/dockerexec/callqueue.py, admission.py),
and differs only in order and number of engine calls:

  raw           create then start, back to back per container (the floor of the main tables);
  create-first  every create queued first, each start queued when its create returned: the order
                the agent's FIFO pool produces when 50 tasks arrive at once;
  agent-calls   create-first plus the other calls the agent makes per task (a list by labels and
                an image inspect before the create, a container inspect after it, before the
                start, after it for the task status, and when the wait begins);
  ahead-K       creates K at a time on K threads of their own, each start queued on the 8
                start threads as soon as its create returned: creates run ahead of the starts
                without crowding them out of dockerd (K = 1, 2, 4);
  swarm-like    all 50 creates first, then all starts (Docker Swarm's order, from outside).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from bench.samples import Sample
from bench.systems import COMMAND, RAW_LABEL, Engine

VARIANTS = ["raw", "create-first", "agent-calls", "ahead-1", "ahead-2", "ahead-4", "swarm-like"]


def _ahead(engine: Engine, n: int, creators: int, run_id: str) -> None:
    """Blocking: `creators` threads create, 8 others start each container once created."""
    api = engine.api
    labels = {RAW_LABEL: run_id}
    with (
        ThreadPoolExecutor(creators, thread_name_prefix="bench-create") as cpool,
        ThreadPoolExecutor(8, thread_name_prefix="bench-start") as spool,
    ):
        starts: list[Future[None]] = []
        lock = threading.Lock()

        def create(_: int) -> None:
            cid = api.create_container(engine.image_id, COMMAND, labels=labels)["Id"]
            with lock:
                starts.append(spool.submit(api.start, cid))

        creates = [cpool.submit(create, i) for i in range(n)]
        wait(creates)
        for f in creates:
            f.result()
        wait(starts)
        for f in starts:
            f.result()


def _swarm_like(engine: Engine, n: int, run_id: str) -> None:
    api = engine.api
    labels = {RAW_LABEL: run_id}
    with ThreadPoolExecutor(8, thread_name_prefix="bench-pattern") as pool:
        ids = list(
            pool.map(
                lambda _: api.create_container(engine.image_id, COMMAND, labels=labels)["Id"],
                range(n),
            )
        )
        list(pool.map(api.start, ids))


def _start_all(engine: Engine, n: int, variant: str, run_id: str) -> None:
    """Blocking: start n containers in the variant's order; return when all were started."""
    if variant.startswith("ahead-"):
        _ahead(engine, n, int(variant.removeprefix("ahead-")), run_id)
        return
    if variant == "swarm-like":
        _swarm_like(engine, n, run_id)
        return
    api = engine.api
    labels = {RAW_LABEL: run_id}
    starts: list[Future[None]] = []
    lock = threading.Lock()
    extra = variant == "agent-calls"

    def start(cid: str) -> None:
        if extra:
            api.inspect_container(cid)
        api.start(cid)
        if extra:
            api.inspect_container(cid)
            api.inspect_container(cid)

    with ThreadPoolExecutor(8, thread_name_prefix="bench-pattern") as pool:

        def create(i: int) -> None:
            if extra:
                api.containers(all=True, filters={"label": [f"{RAW_LABEL}={run_id}", f"i={i}"]})
                api.inspect_image(engine.image_id)
            cid = api.create_container(engine.image_id, COMMAND, labels=labels)["Id"]
            if extra:
                api.inspect_container(cid)
            if variant == "raw":
                api.start(cid)
            else:
                with lock:
                    starts.append(pool.submit(start, cid))

        creates = [pool.submit(create, i) for i in range(n)]
        wait(creates)
        for f in creates:
            f.result()
        wait(starts)
        for f in starts:
            f.result()


async def measure(engine: Engine, n: int, variant: str, run_id: str) -> Sample:
    t0 = time.perf_counter()
    try:
        await asyncio.to_thread(_start_all, engine, n, variant, run_id)
        seconds = time.perf_counter() - t0
    finally:
        await engine.remove_labelled(f"{RAW_LABEL}={run_id}")
    return Sample(variant, round(seconds, 3))


Runner = Callable[[], Awaitable[list[Sample]]]


def runners(engine: Engine, n: int, name: Callable[[str], str]) -> dict[str, Runner]:
    """One runner per variant for Bench.repeat."""

    def make(variant: str) -> Runner:
        async def run() -> list[Sample]:
            return [await measure(engine, n, variant, name(variant))]

        return run

    return {v: make(v) for v in VARIANTS}
