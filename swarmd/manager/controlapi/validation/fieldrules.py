"""Field rules every spec check uses: the error shape, durations, enums, names.

Manager layer, pure. Every failure is an `errors.InvalidArgument` shaped
`invalid <field> <value>: <rule>`, where <field> is the path inside the spec (or the kind of
name) and <value> is the offending value, quoted and shortened so that garbage input cannot make
a huge message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from google.protobuf import duration_pb2

from swarmd import errors

_MAX_SHOWN = 64
# google.protobuf.Duration's documented range: about +-10000 years.
_MAX_DURATION_SECONDS = 315_576_000_000
_NANOS = 1_000_000_000

# swarmkit controlapi/common.go isValidDNSName, written without nested quantifiers so that a
# backtracking engine stays linear: letters, digits, '-' and '_', alphanumeric at both ends.
_DNS_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_-]*[a-zA-Z0-9])?")
MAX_DNS_NAME = 63
DNS_NAME_RULE = (
    f"must be 1-{MAX_DNS_NAME} characters of letters, digits, '-' and '_', "
    "starting and ending with a letter or digit"
)

# swarmkit validateConfigOrSecretAnnotations.
_OBJECT_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?")
MAX_OBJECT_NAME = 64
OBJECT_NAME_RULE = (
    f"must be 1-{MAX_OBJECT_NAME} characters of letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit"
)


class EnumType(Protocol):
    """A generated protobuf enum class (its metaclass answers keys() and values())."""

    def keys(self) -> Sequence[str]: ...

    def values(self) -> Sequence[int]: ...


def show(value: object) -> str:
    """Render a value for an error message: strings double-quoted, long ones cut short."""
    if isinstance(value, str):
        text = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, duration_pb2.Duration):
        return format_duration(value)
    return str(value)


def invalid(field: str, value: object, rule: str) -> errors.InvalidArgument:
    """The one error shape of spec validation."""
    return errors.InvalidArgument(f"invalid {field} {show(value)}: {rule}")


def format_duration(d: duration_pb2.Duration) -> str:
    """Go-like rendering ("1.5s", "-2s") used in messages."""
    if d.nanos == 0:
        return f"{d.seconds}s"
    return f"{d.seconds + d.nanos / _NANOS:g}s"


def duration_nanos(field: str, d: duration_pb2.Duration) -> int:
    """Nanoseconds of a Duration, after checking it is well formed (range, sign of nanos)."""
    if abs(d.seconds) > _MAX_DURATION_SECONDS:
        raise invalid(field, d, "out of range for a duration")
    if not -_NANOS < d.nanos < _NANOS or (d.seconds > 0 > d.nanos) or (d.seconds < 0 < d.nanos):
        raise errors.InvalidArgument(
            f"invalid {field} (seconds={d.seconds}, nanos={d.nanos}): malformed duration"
        )
    return d.seconds * _NANOS + d.nanos


def check_non_negative_duration(field: str, d: duration_pb2.Duration) -> int:
    """Nanoseconds of `d`, which must be >= 0."""
    nanos = duration_nanos(field, d)
    if nanos < 0:
        raise invalid(field, d, "must not be negative")
    return nanos


def check_enum(field: str, value: int, enum: EnumType) -> None:
    """Proto3 enums are open: a peer can send any int, so check it is a declared value."""
    if value not in enum.values():
        allowed = ", ".join(str(name) for name in enum.keys())  # noqa: SIM118 - not a dict
        raise invalid(field, value, f"must be one of {allowed}")


def check_dns_name(kind: str, name: str) -> None:
    """Names of services and networks: usable as a DNS label (case is kept, compared folded)."""
    if len(name) > MAX_DNS_NAME or not _DNS_NAME.fullmatch(name):
        raise invalid(f"{kind} name", name, DNS_NAME_RULE)


def check_object_name(kind: str, name: str) -> None:
    """Names of secrets and configs: also usable as a file name."""
    if len(name) > MAX_OBJECT_NAME or not _OBJECT_NAME.fullmatch(name):
        raise invalid(f"{kind} name", name, OBJECT_NAME_RULE)


def check_unique(field: str, values: Iterable[str], what: str) -> None:
    """Reject the first value that appears twice."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise invalid(field, value, f"duplicate {what}")
        seen.add(value)


__all__ = [
    "DNS_NAME_RULE",
    "OBJECT_NAME_RULE",
    "check_dns_name",
    "check_enum",
    "check_non_negative_duration",
    "check_object_name",
    "check_unique",
    "duration_nanos",
    "format_duration",
    "invalid",
    "show",
]
