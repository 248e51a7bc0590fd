"""Text tables of a workload benchmark report (the dict bench/workload.py writes as JSON).

Called by bench/workload.py after a run, and usable on a saved file:

    .venv/bin/python -m bench.report .bench/workload-latest.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

SYSTEMS = ["docker-swarm", "swarmd", "raw"]
# Docker Swarm's node-failure figure as the issue gives it (median; node seen down at 11.0 s).
SWARM_NODE_FAILURE_S = 16.7
NODE_FAILURE_GOAL_S = 5.0
RAW_GOAL_RATIO = 1.1
RAW_GOAL_SCENARIOS = {"create 10", "create 50"}
# The timeline marks in the order they happen, as the breakdown table shows them.
MARKS = [
    "api",
    "killed",
    "failure_seen",
    "not_ready",
    "down",
    "tasks_stopping",
    "all_assigned",
    "first_created",
    "first_running",
    "last_created",
    "last_started",
]


def _by_system(scenario: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in scenario["samples"]:
        out.setdefault(s["system"], []).append(s)
    return out


def _median(samples: list[dict[str, Any]]) -> float:
    return float(statistics.median(s["seconds"] for s in samples))


def _mmm(samples: list[dict[str, Any]] | None) -> str:
    if not samples:
        return "-"
    secs = [s["seconds"] for s in samples]
    return f"{min(secs):.2f} / {statistics.median(secs):.2f} / {max(secs):.2f}"


def _goals(name: str, med: dict[str, float]) -> list[str]:
    """The issue's goals that apply to one scenario, each with met / MISSED."""
    swarmd = med.get("swarmd")
    if swarmd is None:
        return []
    out = []
    if name == "node failure, hung":
        # The 5 s goal is for kill -9, whose closed connections are seen at once; a hung
        # node is seen only when its heartbeats stop for the grace (3 periods: 6 s by default),
        # which is how Docker Swarm sees a killed node too, so its figure is the yardstick here.
        ok = swarmd <= SWARM_NODE_FAILURE_S
        out.append(f"<= swarm's {SWARM_NODE_FAILURE_S:g} s: {'met' if ok else 'MISSED'}")
        return out
    if name.startswith("node failure"):
        ok = swarmd <= NODE_FAILURE_GOAL_S
        out.append(f"<= {NODE_FAILURE_GOAL_S:g} s: {'met' if ok else 'MISSED'}")
        return out
    if "docker-swarm" in med:
        ok = swarmd <= med["docker-swarm"]
        out.append(f"<= swarm: {'met' if ok else 'MISSED'}")
    if name in RAW_GOAL_SCENARIOS and med.get("raw"):
        ok = swarmd <= RAW_GOAL_RATIO * med["raw"]
        out.append(f"<= {RAW_GOAL_RATIO:g}x raw: {'met' if ok else 'MISSED'}")
    return out


def totals_table(report: dict[str, Any]) -> str:
    head = (
        f"{'scenario (s: min/med/max)':<28}"
        + "".join(f"{s:>22}" for s in SYSTEMS)
        + f"{'swarmd/swarm':>14}{'swarmd/raw':>12}  goals"
    )
    lines = [head]
    others = []
    for sc in report["scenarios"]:
        by = _by_system(sc)
        if not set(by) <= set(SYSTEMS):  # variants of a diagnosis, not the three systems
            cells_other = [f"{k} {_mmm(v)}" for k, v in by.items()]
            others.append(f"{sc['name']:<28}" + ";  ".join(cells_other))
            continue
        med = {k: _median(v) for k, v in by.items()}
        cells = {k: _mmm(by.get(k)) for k in SYSTEMS}
        if sc["name"].startswith("node failure") and "docker-swarm" not in by:
            med["docker-swarm"] = SWARM_NODE_FAILURE_S
            cells["docker-swarm"] = f"{SWARM_NODE_FAILURE_S:g} (issue)"
        ratio_swarm = f"{med['swarmd'] / med['docker-swarm']:.2f}x" if "swarmd" in med else "-"
        ratio_raw = (
            f"{med['swarmd'] / med['raw']:.2f}x" if "swarmd" in med and med.get("raw") else "-"
        )
        lines.append(
            f"{sc['name']:<28}"
            + "".join(f"{cells[k]:>22}" for k in SYSTEMS)
            + f"{ratio_swarm:>14}{ratio_raw:>12}  "
            + ", ".join(_goals(sc["name"], med))
        )
    lines += others
    watch = report.get("loaded_watch")
    if watch:
        down = watch["nodes_marked_down"]
        lines.append(
            f"loaded watch {watch['seconds']:.0f} s without a kill: "
            f"{watch['polls']} polls, nodes seen not READY: {watch['nodes_not_ready'] or 'none'}, "
            f"marked DOWN: {down or 'none'} "
            f"(goal: no busy node DOWN: {'met' if not down else 'MISSED'})"
        )
    return "\n".join(lines)


def breakdown_table(report: dict[str, Any]) -> str:
    """Median time (s after the timed step began) at which each mark was first seen."""
    lines = [
        "where the time goes (medians; s after the timed step began; CPU s in the step;"
        " settle_s: the wait for a quiet machine before it)"
    ]
    for sc in report["scenarios"]:
        for system, samples in _by_system(sc).items():
            parts = []
            for mark in [*MARKS, "swarmd_cpu_s", "dockerd_cpu_s", "settle_s"]:
                vals = [s["detail"][mark] for s in samples if mark in s["detail"]]
                if vals and not (system != "swarmd" and mark == "swarmd_cpu_s"):
                    parts.append(f"{mark}={statistics.median(vals):.2f}")
            parts.append(f"done={_median(samples):.2f}")
            lines.append(f"  {sc['name']:<22} {system:<13} " + " ".join(parts))
    m = report.get("machine", {})
    if m:
        lines.append(
            f"machine over the run: load avg {m['loadavg_before']} -> {m['loadavg_after']}, "
            f"busy {m['busy_pct']} %, steal {m['steal_pct']} %"
        )
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    return totals_table(report) + "\n\n" + breakdown_table(report)


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text())))
