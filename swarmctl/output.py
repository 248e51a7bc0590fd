"""What swarmctl prints: aligned tables, JSON documents, id lists and relative times.

swarmctl layer, pure (returns strings; the commands write them). Tables look like the docker
CLI's: upper-case headers, columns padded to the widest cell plus three spaces, no trailing
blanks. A list command builds `Row`s once and prints them as a table, as JSON (a list of objects
keyed by the column's field name) or as ids only (`-q`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

_PADDING = 3


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: its header and the key of its value in a JSON row."""

    header: str
    key: str


def render_table(columns: Sequence[Column], rows: Sequence[Mapping[str, str]]) -> str:
    """Left-aligned columns under upper-case headers; ends with a newline."""
    cells = [[c.header.upper() for c in columns]]
    cells += [[str(row.get(c.key, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        padded = [cell.ljust(widths[i] + _PADDING) for i, cell in enumerate(line[:-1])]
        lines.append(("".join(padded) + line[-1]).rstrip())
    return "\n".join(lines) + "\n"


def render_json(value: Any) -> str:
    """Indented JSON, ending with a newline."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def render_list(
    columns: Sequence[Column], rows: Sequence[Mapping[str, str]], fmt: str, quiet: bool
) -> str:
    """A list command's output: ids only (`quiet`), JSON rows, or a table."""
    if quiet:
        return "".join(f"{row['ID']}\n" for row in rows)
    if fmt == "json":
        return render_json([{c.key: row.get(c.key, "") for c in columns} for row in rows])
    return render_table(columns, rows)


def human_duration(seconds: float) -> str:
    """docker's HumanDuration: `Less than a second`, `5 seconds`, `About a minute`, `3 hours`."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    days = s // 86400
    if days < 14:
        return f"{days} days"
    if days < 60:
        return f"{days // 7} weeks"
    if days < 730:
        return f"{days // 30} months"
    return f"{days // 365} years"


def ago(ts: timestamp_pb2.Timestamp, now: datetime) -> str:
    """`5 seconds ago` for a set timestamp, empty for an unset one."""
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    then = ts.ToDatetime(tzinfo=UTC)
    return f"{human_duration(max(0.0, (now - then).total_seconds()))} ago"


__all__ = ["Column", "ago", "human_duration", "render_json", "render_list", "render_table"]
