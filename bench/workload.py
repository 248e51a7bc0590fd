"""Workload benchmark (issue 3): swarmd against Docker Swarm and the raw Docker floor, one run.

Scenarios, each repeated and reported as min / median / max seconds:
  * create a service of 1 / 10 / 50 replicas until every replica runs;
  * scale 10 -> 50 until 50 run; scale 50 -> 10 (stop grace 0) until 10 containers remain;
  * self-heal: `docker kill` of a task's container (restart delay 0) until a replacement runs;
  * node failure (swarmd only, bench/nodefailure.py): manager + 2 workers, 6 replicas, SIGKILL
    of a worker's swarmd until all 6 run on the survivors (and when the node is seen DOWN); the
    same with SIGSTOP (a hung host); then with both cores busy, after a 60 s loaded watch that
    no node is marked DOWN.

swarmd runs as real processes (bench/swarmd_cluster.py), Docker Swarm in the local dockerd
(`swarm init` if needed, left at the end), the raw floor creates and starts the same containers
straight on dockerd from as many threads as swarmd's engine pool has (bench/systems.py). Polls
every 50 ms; the systems take turns within each repetition (rotating the order) so the machine's
drift hits all of them alike, and each sample starts on a quiet machine (harness.until_quiet:
what the previous sample's clean-up left running would otherwise be charged to the next system;
the wait is `settle_s`). Besides the totals each sample records where the time went: when every
task was assigned (scheduling), when dockerd created the first/last container and started the
last one (its own timestamps), and the CPU seconds the swarmd manager and dockerd used.

    .venv/bin/python -m bench.workload [--reps 5] [--reps-large 5] [--only create,heal,...]

Prints tables and writes .bench/workload-<timestamp>.json (and workload-latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
# `python bench/workload.py` works as well as `python -m bench.workload`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import callpattern, nodefailure
from bench.harness import (
    REPO,
    Machine,
    local_image_id,
    pid_of,
    process_cpu_s,
    until_quiet,
)
from bench.report import render
from bench.results import run_report, save, show
from bench.samples import Sample, Scenario, Timeline, poll
from bench.swarmd_cluster import SwarmdCluster
from bench.systems import (
    BENCH_LABEL,
    RAW_LABEL,
    DockerSwarmSystem,
    Engine,
    SwarmdSystem,
    System,
)

SCENARIOS = ["create", "scale", "heal", "node-failure"]
# Not in the default run: raw-floor variants replaying swarmd's engine call pattern.
DIAGNOSE = "diagnose"
Runner = Callable[[], Awaitable[list[Sample]]]


class Bench:
    """The single-node systems, the engine and the scenarios measured so far."""

    def __init__(self, args: argparse.Namespace, engine: Engine, swarmd: SwarmdSystem) -> None:
        self.args = args
        self.engine = engine
        self.swarmd = swarmd
        self.swarm = DockerSwarmSystem(engine)
        self.dockerd_pid = pid_of("dockerd")
        self.scenarios: list[Scenario] = []
        self._seq = 0

    def name(self, kind: str) -> str:
        self._seq += 1
        return f"bench-{kind}-{self._seq}"

    def cpu(self) -> tuple[float, float]:
        mgr = self.swarmd.cluster.manager
        return (
            process_cpu_s(mgr.pid if mgr else None) or 0.0,
            process_cpu_s(self.dockerd_pid) or 0.0,
        )

    def cpu_detail(self, before: tuple[float, float]) -> dict[str, float]:
        after = self.cpu()
        return {
            "swarmd_cpu_s": round(after[0] - before[0], 3),
            "dockerd_cpu_s": round(after[1] - before[1], 3),
        }

    async def repeat(self, name: str, reps: int, runners: dict[str, Runner]) -> None:
        """Run each system's runner `reps` times, rotating the order; one scenario per label."""
        print(f"[bench] {name}: {reps} x {', '.join(runners)}", flush=True)
        machine = Machine.start()
        by_label: dict[str, Scenario] = {}
        systems = list(runners)
        for rep in range(reps):
            order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
            for system in order:
                settle_s = await until_quiet()
                for sample in await runners[system]():
                    sample.detail["settle_s"] = settle_s
                    label = sample.detail.pop("scenario", name)
                    by_label.setdefault(label, Scenario(label)).samples.append(sample)
                    print(
                        f"  {label:<14} {system:<13} {sample.seconds:7.3f} s  {sample.detail}",
                        flush=True,
                    )
        stats = machine.stop()
        for sc in by_label.values():
            sc.machine = stats
        self.scenarios.extend(by_label.values())

    # ---- orchestrated systems

    async def _settle(self, system: System, service_id: str) -> None:
        """Remove a service and all its containers, and wait until its tasks are gone."""
        await system.remove(service_id)
        label = system.service_label(service_id)
        await self.engine.remove_labelled(label)

        async def gone() -> bool:
            try:
                return not await system.tasks(service_id)
            except Exception:
                return True

        with contextlib.suppress(TimeoutError):
            await poll(gone, 30, "tasks of a removed service gone", interval=0.2)
        await self.engine.remove_labelled(label)

    async def _wait_running(
        self, system: System, sid: str, n: int, tl: Timeline, old: frozenset[str] = frozenset()
    ) -> None:
        """Until n tasks run; marks when all were assigned and when the first new one ran."""

        async def check() -> bool:
            tasks = await system.tasks(sid)
            if sum(t.assigned for t in tasks) >= n:
                tl.mark("all_assigned")
            if any(t.running and t.id not in old for t in tasks):
                tl.mark("first_running")
            return sum(t.running for t in tasks) >= n

        await poll(check, self.args.timeout, f"{n} running tasks of {system.name}")

    async def create_service(self, system: System, n: int) -> Sample:
        before = self.cpu()
        tl = Timeline(time.time(), time.perf_counter())
        sid = await system.create(self.name(f"c{n}"), n)
        tl.mark("api")
        try:
            await self._wait_running(system, sid, n, tl)
            seconds = tl.now()
            detail = self.cpu_detail(before)
            tl.containers(await self.engine.times(system.service_label(sid)))
        finally:
            await self._settle(system, sid)
        return Sample(system.name, round(seconds, 3), tl.marks | detail)

    async def scale_service(self, system: System, low: int, high: int) -> list[Sample]:
        sid = await system.create(self.name(f"s{low}"), low)
        label = system.service_label(sid)
        samples: list[Sample] = []
        try:
            await self._wait_running(system, sid, low, Timeline(time.time(), time.perf_counter()))
            await asyncio.sleep(self.args.pause)
            old = frozenset(t.id for t in await system.tasks(sid) if t.running)
            before = self.cpu()
            tl = Timeline(time.time(), time.perf_counter())
            await system.scale(sid, high)
            tl.mark("api")
            await self._wait_running(system, sid, high, tl, old)
            seconds = tl.now()
            detail = self.cpu_detail(before) | {"scenario": f"scale {low}->{high}"}
            tl.containers(await self.engine.times(label))
            samples.append(Sample(system.name, round(seconds, 3), tl.marks | detail))

            await asyncio.sleep(self.args.pause)
            before = self.cpu()
            tl = Timeline(time.time(), time.perf_counter())
            await system.scale(sid, low)
            tl.mark("api")

            async def shrunk() -> bool:
                if sum(t.desired_running for t in await system.tasks(sid)) <= low:
                    tl.mark("tasks_stopping")
                return len(await self.engine.running(label)) <= low

            await poll(shrunk, self.args.timeout, f"{low} containers of {system.name}")
            detail = self.cpu_detail(before) | {"scenario": f"scale {high}->{low}"}
            samples.append(Sample(system.name, round(tl.now(), 3), tl.marks | detail))
        finally:
            await self._settle(system, sid)
        return samples

    async def self_heal(self, system: System) -> Sample:
        sid = await system.create(self.name("heal"), 1)
        label = system.service_label(sid)
        try:
            await self._wait_running(system, sid, 1, Timeline(time.time(), time.perf_counter()))
            first = next(t.id for t in await system.tasks(sid) if t.running)
            ids: list[str] = []

            async def container() -> bool:
                ids[:] = await self.engine.running(label)
                return len(ids) == 1

            await poll(container, 30, "the task's container")
            await asyncio.sleep(self.args.pause)
            before = self.cpu()
            tl = Timeline(time.time(), time.perf_counter())
            await self.engine.kill(ids[0])
            tl.mark("killed")

            async def replaced() -> bool:
                tasks = await system.tasks(sid)
                if not any(t.id == first and t.running for t in tasks):
                    tl.mark("failure_seen")
                return any(t.running and t.id != first for t in tasks)

            await poll(replaced, self.args.timeout, f"a replacement task of {system.name}")
            seconds = tl.now()
            detail = self.cpu_detail(before)
            tl.containers(await self.engine.times(label))
        finally:
            await self._settle(system, sid)
        return Sample(system.name, round(seconds, 3), tl.marks | detail)

    # ---- the raw floor: the same containers, straight on dockerd

    async def raw_create(self, n: int) -> Sample:
        run_id = self.name(f"raw{n}")
        before = self.cpu()
        tl = Timeline(time.time(), time.perf_counter())
        try:
            await self.engine.run_containers(n, run_id)
            seconds = tl.now()
            detail = self.cpu_detail(before)
            tl.containers(await self.engine.times(f"{RAW_LABEL}={run_id}"))
        finally:
            await self.engine.remove_labelled(f"{RAW_LABEL}={run_id}")
        return Sample("raw", round(seconds, 3), tl.marks | detail)

    async def raw_scale(self, low: int, high: int) -> list[Sample]:
        run_id = self.name(f"raws{low}")
        label = f"{RAW_LABEL}={run_id}"
        try:
            ids = await self.engine.run_containers(low, run_id)
            await asyncio.sleep(self.args.pause)
            before = self.cpu()
            tl = Timeline(time.time(), time.perf_counter())
            ids += await self.engine.run_containers(high - low, run_id)
            up = Sample("raw", round(tl.now(), 3), self.cpu_detail(before))
            await asyncio.sleep(self.args.pause)
            before = self.cpu()
            tl = Timeline(time.time(), time.perf_counter())
            await self.engine.stop_containers(ids[low:])
            await poll(lambda: self._at_most(label, low), self.args.timeout, "raw scale-down")
            down = Sample("raw", round(tl.now(), 3), self.cpu_detail(before))
        finally:
            await self.engine.remove_labelled(label)
        up.detail["scenario"] = f"scale {low}->{high}"
        down.detail["scenario"] = f"scale {high}->{low}"
        return [up, down]

    async def _at_most(self, label: str, n: int) -> bool:
        return len(await self.engine.running(label)) <= n

    async def raw_heal(self) -> Sample:
        """The floor of a replacement: kill, then create and start one container."""
        run_id = self.name("rawheal")
        try:
            (cid,) = await self.engine.run_containers(1, run_id)
            await asyncio.sleep(self.args.pause)
            before = self.cpu()
            tl = Timeline(time.time(), time.perf_counter())
            await self.engine.kill(cid)
            tl.mark("killed")
            await self.engine.run_containers(1, run_id)
            seconds = tl.now()
        finally:
            await self.engine.remove_labelled(f"{RAW_LABEL}={run_id}")
        return Sample("raw", round(seconds, 3), tl.marks | self.cpu_detail(before))


# ----------------------------------------------------------------------------------------------
# The run


@contextlib.contextmanager
def docker_swarm_mode(engine: Engine, notes: list[str]) -> Iterator[None]:
    """dockerd in swarm mode for the run; left again afterwards if this run initialised it."""
    client = engine.client
    state = client.info()["Swarm"]["LocalNodeState"]
    had_gwbridge = bool(client.networks.list(names=["docker_gwbridge"]))
    initialised = False
    if state == "inactive":
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        initialised = True
        notes.append("ran `docker swarm init` for the run and left the swarm afterwards")
    elif state != "active":
        raise RuntimeError(f"dockerd swarm state is {state!r}; expected inactive or active")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            for svc in engine.api.services(filters={"label": BENCH_LABEL}):
                engine.api.remove_service(svc["ID"])
        if initialised:
            client.swarm.leave(force=True)
            if not had_gwbridge:
                _remove_gwbridge(engine)


def _remove_gwbridge(engine: Engine) -> None:
    """`swarm init` creates docker_gwbridge and `swarm leave` keeps it: remove it again."""
    for _ in range(20):
        nets = engine.client.networks.list(names=["docker_gwbridge"])
        if not nets:
            return
        try:
            nets[0].remove()
            return
        except Exception:  # the ingress sandbox holds it for a moment after leaving
            time.sleep(0.5)


async def _one(sample: Awaitable[Sample]) -> list[Sample]:
    return [await sample]


def _each(fn: Callable[..., Awaitable[Sample]], *args: Any) -> Runner:
    """A runner that makes one sample per call of fn(*args)."""
    return lambda: _one(fn(*args))


async def single_node(args: argparse.Namespace, engine: Engine, notes: list[str]) -> list[Scenario]:
    """Everything but node failure: one swarmd node against one-node Docker Swarm and raw."""
    cluster = SwarmdCluster(log_level=args.log_level)
    try:
        await cluster.start_manager()
        b = Bench(args, engine, SwarmdSystem(cluster, engine.image_id))
        with docker_swarm_mode(engine, notes):
            if "create" in args.only:
                for n in args.replicas:
                    await b.repeat(
                        f"create {n}",
                        args.reps_large if n >= 50 else args.reps,
                        {
                            "raw": _each(b.raw_create, n),
                            "docker-swarm": _each(b.create_service, b.swarm, n),
                            "swarmd": _each(b.create_service, b.swarmd, n),
                        },
                    )
            if "scale" in args.only:
                await b.repeat(
                    "scale",
                    args.reps_large,
                    {
                        "raw": lambda: b.raw_scale(10, 50),
                        "docker-swarm": lambda: b.scale_service(b.swarm, 10, 50),
                        "swarmd": lambda: b.scale_service(b.swarmd, 10, 50),
                    },
                )
            if "heal" in args.only:
                await b.repeat(
                    "self-heal",
                    args.reps,
                    {
                        "raw": _each(b.raw_heal),
                        "docker-swarm": _each(b.self_heal, b.swarm),
                        "swarmd": _each(b.self_heal, b.swarmd),
                    },
                )
            if DIAGNOSE in args.only:
                n = max(args.replicas)
                await b.repeat(
                    f"call pattern {n}", args.reps_large, callpattern.runners(engine, n, b.name)
                )
        return b.scenarios
    finally:
        if args.keep:
            notes.append(f"single-node swarmd state and log kept in {cluster.root}")
        await cluster.close(keep=args.keep)


async def amain(args: argparse.Namespace) -> int:
    image_id = local_image_id(args.image)
    engine = Engine(image_id)
    notes: list[str] = []
    scenarios: list[Scenario] = []
    extra: dict[str, Any] = {}
    started = time.time()
    machine = Machine.start()
    try:
        if set(args.only) & {"create", "scale", "heal", DIAGNOSE}:
            scenarios += await single_node(args, engine, notes)
        if "node-failure" in args.only:
            nf = await nodefailure.run(args, engine)
            scenarios += nf.scenarios
            extra["loaded_watch"] = nf.watch
            notes += nf.notes
    finally:
        engine.close()
    report = run_report(
        "workload",
        args,
        started,
        machine=machine.stop(),
        image_id=image_id,
        scenarios=[asdict(s) for s in scenarios],
        notes=notes,
        **extra,
    )
    show(render(report), notes, save(report, args.out))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="repetitions of small scenarios (5)")
    p.add_argument("--reps-large", type=int, default=5, help="of 50-replica scenarios (5)")
    p.add_argument("--reps-failover", type=int, default=5, help="of node failure (5)")
    p.add_argument("--reps-hang", type=int, default=3, help="of a hung (SIGSTOPped) node (3)")
    p.add_argument("--reps-loaded", type=int, default=3, help="of node failure under load (3)")
    p.add_argument(
        "--replicas",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 10, 50],
        help="service sizes of the create scenario (1,10,50)",
    )
    p.add_argument("--watch", type=float, default=60.0, help="loaded watch without a kill (60 s)")
    p.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=SCENARIOS,
        help=f"comma-separated subset of {','.join(SCENARIOS)} (all), or {DIAGNOSE}",
    )
    p.add_argument("--pause", type=float, default=0.5, help="settle before a timed step (0.5 s)")
    p.add_argument("--timeout", type=float, default=180.0, help="per wait (180 s)")
    p.add_argument("--image", default="swarmd-busybox:latest", help="local image (never pulled)")
    p.add_argument("--log-level", default="warning", help="swarmd log level (warning)")
    p.add_argument("--out", type=Path, default=REPO / ".bench", help="directory for JSON results")
    p.add_argument("--keep", action="store_true", help="keep swarmd's temp state dirs and logs")
    args = p.parse_args(argv)
    unknown = set(args.only) - {*SCENARIOS, DIAGNOSE}
    if unknown:
        known = ",".join([*SCENARIOS, DIAGNOSE])
        p.error(f"unknown scenario(s) {','.join(sorted(unknown))}; choose from {known}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks still clean up and leave the swarm.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
