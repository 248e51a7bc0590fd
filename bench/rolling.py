"""Rolling-update benchmark (issue 5): swarmd against Docker Swarm on the same dockerd, one run.

A service of 10 replicas of the local busybox image (`sleep 100000`; Docker Swarm gets the image
by id so it never asks a registry) gets a rolling update that changes one env var, parallelism 2,
delay 0, in four variants: stop-first and start-first, each with the default 10 s stop grace and
with grace 0. `sleep` as PID 1 ignores SIGTERM, so a stop with the default grace takes the full
10 s. Two figures per sample, both in seconds from the update call (a read-modify-write of the
service spec, for both systems):

  * `new`: all 10 running tasks run the new spec (tasks RUNNING with desired state RUNNING and
    the new env in their spec; polled every 50 ms with ListTasks / the tasks API);
  * `completed`: the service says the update completed (swarmd: update_status.state COMPLETED;
    Docker Swarm: UpdateStatus.State "completed"); both wait out a 5 s monitor period.

The table has one row per variant for `new` and one ("... done") for `completed`. Each sample
also marks when 2, 4, 6, 8 tasks ran the new spec (one mark per batch) and the CPU seconds the
swarmd manager and dockerd used.

Each sample creates its own service, waits until its 10 replicas run, updates it, then removes
it and force-removes its containers. The systems take turns within each repetition (rotating
the order). One swarmd node (bench/swarmd_cluster.py) and one-node Docker Swarm of the local
dockerd (`swarm init` if inactive, left again at the end then).

    .venv/bin/python -m bench.rolling [--reps 3] [--reps-slow 1] [--only stop-first-0,...]

Prints a table and writes .bench/rolling-<timestamp>.json (and rolling-latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
# `python bench/rolling.py` works as well as `python -m bench.rolling`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google.protobuf import duration_pb2

from bench.harness import REPO, Machine, local_image_id, pid_of, process_cpu_s
from bench.report import totals_table
from bench.results import run_report, save, show
from bench.samples import Sample, Scenario, Timeline, poll
from bench.swarmd_cluster import SwarmdCluster
from bench.systems import COMMAND, DockerSwarmSystem, Engine, SwarmdSystem
from swarmd.api import control_pb2, types_pb2

REPLICAS = 10
PARALLELISM = 2
ENV = "BENCH_ROLL=2"
# Its own label, not BENCH_LABEL: another benchmark's clean-up removes BENCH_LABEL services.
ROLL_LABEL = "swarmd.bench.rolling"
RUNNING = types_pb2.TASK_STATE_RUNNING
COMPLETED = types_pb2.UpdateStatus.UPDATE_STATE_COMPLETED
SWARMD_STATE = types_pb2.UpdateStatus.UpdateState


@dataclass(frozen=True, slots=True)
class Variant:
    key: str
    start_first: bool
    grace_zero: bool

    @property
    def title(self) -> str:
        order = "start-first" if self.start_first else "stop-first"
        return f"{order} grace {'0' if self.grace_zero else '10s'}"


VARIANTS = [
    Variant("stop-first-10", start_first=False, grace_zero=False),
    Variant("stop-first-0", start_first=False, grace_zero=True),
    Variant("start-first-10", start_first=True, grace_zero=False),
    Variant("start-first-0", start_first=True, grace_zero=True),
]
SLOW = {"stop-first-10"}


class Rollout:
    """Both systems, the engine, and the timed steps of one sample each."""

    def __init__(self, args: argparse.Namespace, engine: Engine, cluster: SwarmdCluster) -> None:
        self.args = args
        self.engine = engine
        self.cluster = cluster
        self.swarmd = SwarmdSystem(cluster, engine.image_id)
        self.swarm = DockerSwarmSystem(engine)
        self.dockerd_pid = pid_of("dockerd")
        self._seq = 0

    def name(self, v: Variant) -> str:
        self._seq += 1
        return f"bench-roll-{v.key}-{self._seq}"

    def cpu(self) -> tuple[float, float]:
        mgr = self.cluster.manager
        return (
            process_cpu_s(mgr.pid if mgr else None) or 0.0,
            process_cpu_s(self.dockerd_pid) or 0.0,
        )

    # ---- swarmd

    async def swarmd_create(self, v: Variant) -> str:
        spec = self.swarmd.spec(self.name(v), REPLICAS)
        spec.annotations.labels[ROLL_LABEL] = "1"
        spec.update.parallelism = PARALLELISM
        spec.update.delay.CopyFrom(duration_pb2.Duration())
        spec.update.order = (
            types_pb2.UpdateConfig.UPDATE_ORDER_START_FIRST
            if v.start_first
            else types_pb2.UpdateConfig.UPDATE_ORDER_STOP_FIRST
        )
        if not v.grace_zero:  # unset: the default grace (10 s)
            spec.task.container.ClearField("stop_grace_period")
        resp = await self.cluster.stub.CreateService(
            control_pb2.CreateServiceRequest(spec=spec), timeout=30
        )
        return str(resp.service.id)

    async def swarmd_update(self, sid: str) -> None:
        stub = self.cluster.stub
        svc = (
            await stub.GetService(control_pb2.GetServiceRequest(service_id=sid), timeout=30)
        ).service
        spec = type(svc.spec)()
        spec.CopyFrom(svc.spec)
        spec.task.container.env.append(ENV)
        await stub.UpdateService(
            control_pb2.UpdateServiceRequest(
                service_id=sid, service_version=svc.meta.version, spec=spec
            ),
            timeout=30,
        )

    async def swarmd_counts(self, sid: str) -> tuple[int, int]:
        """(running tasks, of which run the new spec)."""
        resp = await self.cluster.stub.ListTasks(
            control_pb2.ListTasksRequest(service_ids=[sid]), timeout=30
        )
        run = [t for t in resp.tasks if t.desired_state == RUNNING and t.status.state == RUNNING]
        return len(run), sum(ENV in t.spec.container.env for t in run)

    async def swarmd_state(self, sid: str) -> str:
        svc = (
            await self.cluster.stub.GetService(
                control_pb2.GetServiceRequest(service_id=sid), timeout=30
            )
        ).service
        state = SWARMD_STATE.Name(svc.update_status.state).removeprefix("UPDATE_STATE_").lower()
        return state

    # ---- Docker Swarm

    async def swarm_create(self, v: Variant) -> str:
        from docker.types import (
            ContainerSpec,
            RestartPolicy,
            ServiceMode,
            TaskTemplate,
            UpdateConfig,
        )

        template = TaskTemplate(
            container_spec=ContainerSpec(
                image=self.engine.image_id,
                command=COMMAND,
                stop_grace_period=0 if v.grace_zero else None,
            ),
            restart_policy=RestartPolicy(condition="any", delay=0),
        )
        update = UpdateConfig(
            parallelism=PARALLELISM,
            delay=0,
            order="start-first" if v.start_first else "stop-first",
        )
        resp = await asyncio.to_thread(
            self.engine.api.create_service,
            template,
            name=self.name(v),
            labels={ROLL_LABEL: "1"},
            mode=ServiceMode("replicated", replicas=REPLICAS),
            update_config=update,
        )
        return str(resp["ID"])

    async def swarm_update(self, sid: str) -> None:
        def update() -> None:
            svc = self.engine.api.inspect_service(sid)
            self.engine.api.update_service(
                sid,
                svc["Version"]["Index"],
                task_template={"ContainerSpec": {"Env": [ENV]}},
                fetch_current_spec=True,
            )

        await asyncio.to_thread(update)

    async def swarm_counts(self, sid: str) -> tuple[int, int]:
        raw = await asyncio.to_thread(self.engine.api.tasks, filters={"service": sid})
        run = [
            t
            for t in raw
            if t.get("DesiredState") == "running" and t["Status"]["State"] == "running"
        ]
        new = sum(ENV in (t["Spec"]["ContainerSpec"].get("Env") or []) for t in run)
        return len(run), new

    async def swarm_state(self, sid: str) -> str:
        svc = await asyncio.to_thread(self.engine.api.inspect_service, sid)
        return str((svc.get("UpdateStatus") or {}).get("State", "unknown"))

    # ---- one sample

    async def sample(self, system: str, v: Variant) -> Sample:
        swarmd = system == "swarmd"
        create = self.swarmd_create if swarmd else self.swarm_create
        update = self.swarmd_update if swarmd else self.swarm_update
        counts = self.swarmd_counts if swarmd else self.swarm_counts
        state = self.swarmd_state if swarmd else self.swarm_state
        sid = await create(v)
        try:

            async def all_up() -> bool:
                return (await counts(sid))[0] >= REPLICAS

            await poll(all_up, self.args.timeout, f"{REPLICAS} running tasks of {system}")
            await asyncio.sleep(self.args.pause)
            before = self.cpu()
            tl = Timeline(time.time(), time.perf_counter())
            await update(sid)
            tl.mark("api")
            states: list[str] = []

            async def all_new() -> bool:
                running, new = await counts(sid)
                if new:
                    tl.mark("first_new_running")
                for n in range(PARALLELISM, new + 1, PARALLELISM):  # one mark per batch
                    tl.mark(f"new_{n}")
                return new >= REPLICAS and running >= REPLICAS

            await poll(all_new, self.args.timeout, f"{REPLICAS} new tasks of {system}")
            seconds = tl.now()

            async def completed() -> bool:
                s = await state(sid)
                if not states or states[-1] != s:
                    states.append(s)
                return s == "completed"

            done: float | None = None
            try:
                await poll(completed, self.args.complete_timeout, f"{system} update completed")
                done = round(tl.now(), 3)
            except TimeoutError:
                pass
            after = self.cpu()
            detail: dict[str, Any] = tl.marks | {
                "completed": done,
                "update_states": states,
                "swarmd_cpu_s": round(after[0] - before[0], 3),
                "dockerd_cpu_s": round(after[1] - before[1], 3),
            }
        finally:
            await self.settle(system, sid)
        return Sample(system, round(seconds, 3), detail)

    async def settle(self, system: str, sid: str) -> None:
        """Remove a service and its containers, and wait until its tasks are gone."""
        sys_ = self.swarmd if system == "swarmd" else self.swarm
        with contextlib.suppress(Exception):
            await sys_.remove(sid)
        label = sys_.service_label(sid)
        await self.engine.remove_labelled(label)

        async def gone() -> bool:
            try:
                return not await sys_.tasks(sid)
            except Exception:
                return True

        with contextlib.suppress(TimeoutError):
            await poll(gone, 30, "tasks of a removed service gone", interval=0.2)
        await self.engine.remove_labelled(label)


class SwarmMode:
    """dockerd in swarm mode for each Docker Swarm sample; left at the end if this run joined it.

    Other benchmarks share the dockerd and may `swarm init` or `swarm leave` while this one runs,
    so every Docker Swarm sample first makes sure the swarm is active (and is retried once when
    the swarm went away under it). Only this benchmark's services (ROLL_LABEL) are removed at
    the end, and the swarm is left only if this run initialised it and nobody else's services
    are in it.
    """

    def __init__(self, engine: Engine, notes: list[str]) -> None:
        self.engine = engine
        self.notes = notes
        self.initialised = 0

    def ensure(self) -> None:
        client = self.engine.client
        state = client.info()["Swarm"]["LocalNodeState"]
        if state == "inactive":
            client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
            self.initialised += 1
        elif state != "active":
            raise RuntimeError(f"dockerd swarm state is {state!r}; expected inactive or active")

    def close(self) -> None:
        api = self.engine.api
        with contextlib.suppress(Exception):
            for svc in api.services(filters={"label": ROLL_LABEL}):
                api.remove_service(svc["ID"])
        if not self.initialised:
            return
        self.notes.append(f"ran `docker swarm init` {self.initialised} time(s) during the run")
        with contextlib.suppress(Exception):
            if not api.services():
                self.engine.client.swarm.leave(force=True)
                self.notes.append("left the swarm afterwards")


async def sample(
    bench: Rollout, swarm: SwarmMode, system: str, v: Variant, notes: list[str]
) -> Sample:
    """One sample; a Docker Swarm one again once if the swarm was left under it."""
    if system == "swarmd":
        return await bench.sample(system, v)
    from docker.errors import APIError

    for attempt in (1, 2):
        await asyncio.to_thread(swarm.ensure)
        try:
            return await bench.sample(system, v)
        except APIError as e:
            if attempt == 2 or "not a swarm manager" not in str(e):
                raise
            notes.append(
                f"{v.title}: a docker-swarm sample was redone: the swarm was left under it"
            )
    raise AssertionError("unreachable")


def breakdown(report: dict[str, Any]) -> str:
    """Per variant and system: the medians of the marks, 'completed' and CPU."""
    lines = ["medians, s after the update call (CPU s over the sample)"]
    for sc in report["scenarios"]:
        by: dict[str, list[dict[str, Any]]] = {}
        for s in sc["samples"]:
            by.setdefault(s["system"], []).append(s)
        for system, samples in by.items():
            parts = []
            batches = [f"new_{n}" for n in range(PARALLELISM, REPLICAS, PARALLELISM)]
            keys = ["api", "first_new_running", *batches, "completed"]
            for key in [*keys, "swarmd_cpu_s", "dockerd_cpu_s"]:
                vals = [s["detail"][key] for s in samples if s["detail"].get(key) is not None]
                if vals and not (system != "swarmd" and key == "swarmd_cpu_s"):
                    parts.append(f"{key}={statistics.median(vals):.2f}")
            missing = sum(s["detail"].get("completed") is None for s in samples)
            if missing:
                parts.append(f"never_completed={missing}")
            parts.append(f"new={statistics.median(s['seconds'] for s in samples):.2f}")
            lines.append(f"  {sc['name']:<26} {system:<13} " + " ".join(parts))
        m = sc.get("machine") or {}
        if m:
            lines.append(
                f"  {'':<26} machine: load {m['loadavg_before']} -> {m['loadavg_after']}, "
                f"busy {m['busy_pct']} %, steal {m['steal_pct']} %"
            )
    return "\n".join(lines)


def completed_scenarios(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """The same samples with 'completed' as the figure (for the shared totals table)."""
    out = []
    for sc in scenarios:
        samples = [
            asdict(Sample(s.system, s.detail["completed"]))
            for s in sc.samples
            if s.detail.get("completed") is not None
        ]
        out.append({"name": f"{sc.name} done", "samples": samples})
    return out


async def amain(args: argparse.Namespace) -> int:
    image_id = local_image_id(args.image)
    engine = Engine(image_id)
    notes: list[str] = []
    scenarios: list[Scenario] = []
    started = time.time()
    machine = Machine.start()
    cluster = SwarmdCluster(log_level=args.log_level)
    try:
        await cluster.start_manager()
        bench = Rollout(args, engine, cluster)
        swarm = SwarmMode(engine, notes)
        try:
            for i, v in enumerate(v for v in VARIANTS if v.key in args.only):
                reps = args.reps_slow if v.key in SLOW else args.reps
                print(f"[bench] {v.title}: {reps} x swarmd, docker-swarm", flush=True)
                sc = Scenario(v.title)
                m = Machine.start()
                systems = ["docker-swarm", "swarmd"]
                for rep in range(reps):
                    k = (rep + i) % 2
                    for system in systems[k:] + systems[:k]:
                        s = await sample(bench, swarm, system, v, notes)
                        sc.samples.append(s)
                        print(f"  {system:<13} {s.seconds:7.3f} s  {s.detail}", flush=True)
                sc.machine = m.stop()
                scenarios.append(sc)
        finally:
            swarm.close()
    finally:
        if args.keep:
            notes.append(f"swarmd state and log kept in {cluster.root}")
        await cluster.close(keep=args.keep)
        engine.close()
    report = run_report(
        "rolling",
        args,
        started,
        machine=machine.stop(),
        image_id=image_id,
        scenarios=[asdict(s) for s in scenarios],
        notes=notes,
    )
    show(render(report, scenarios), notes, save(report, args.out))
    return 0


def render(report: dict[str, Any], scenarios: list[Scenario]) -> str:
    table = totals_table({"scenarios": report["scenarios"] + completed_scenarios(scenarios)})
    return table + "\n\n" + breakdown(report)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    keys = [v.key for v in VARIANTS]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="repetitions per system (3)")
    p.add_argument("--reps-slow", type=int, default=1, help="of stop-first with 10 s grace (1)")
    p.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=keys,
        help=f"comma-separated subset of {','.join(keys)} (all)",
    )
    p.add_argument("--pause", type=float, default=0.5, help="settle before the update (0.5 s)")
    p.add_argument("--timeout", type=float, default=180.0, help="per wait (180 s)")
    p.add_argument(
        "--complete-timeout", type=float, default=60.0, help="for 'completed' after all new (60 s)"
    )
    p.add_argument("--image", default="swarmd-busybox:latest", help="local image (never pulled)")
    p.add_argument("--log-level", default="warning", help="swarmd log level (warning)")
    p.add_argument("--out", type=Path, default=REPO / ".bench", help="directory for JSON results")
    p.add_argument("--keep", action="store_true", help="keep swarmd's temp state dir and log")
    args = p.parse_args(argv)
    unknown = set(args.only) - set(keys)
    if unknown:
        p.error(f"unknown variant(s) {','.join(sorted(unknown))}; choose from {','.join(keys)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks still clean up and leave the swarm.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
