"""A finished benchmark run: the fields every report carries, its JSON files, the closing print.

Used by bench/workload.py, bench/rolling.py and bench/control_plane.py (bench/raft.py keeps
its own report shape). Each run writes `<out>/<benchmark>-<timestamp>.json` and overwrites
`<out>/<benchmark>-latest.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import REPO, host_info


def run_report(
    benchmark: str, args: argparse.Namespace, started: float, **fields: Any
) -> dict[str, Any]:
    """The common head of a report (name, start time, duration, host, parameters) + `fields`."""
    return {
        "benchmark": benchmark,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "host": host_info(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **fields,
    }


def save(report: dict[str, Any], out: Path) -> Path:
    """Write the report's timestamped JSON file and the -latest copy; the timestamped path."""
    name = report["benchmark"]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    text = json.dumps(report, indent=2) + "\n"
    path.write_text(text)
    (out / f"{name}-latest.json").write_text(text)
    return path


def show(rendered: str, notes: Sequence[str], path: Path) -> None:
    """Print the rendered tables, the run's notes and where its results are."""
    print()
    print(rendered)
    for note in notes:
        print(f"note: {note}")
    print(f"\nresults: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
