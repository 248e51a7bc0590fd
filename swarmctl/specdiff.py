"""What changed between two service specs, as short human lines. Pure.

swarmctl layer, used by `swarmctl service history`. Fields are named by their docker-style path
(`Task.Container.Image`), scalars print as `old -> new`, repeated scalar fields (env, args,
constraints) as the items added (`+A=1`) and removed (`-A=0`), maps as keys set or removed, and a
message that appears or disappears as a whole as `set` / `unset`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import descriptor
from google.protobuf.message import Message

from swarmctl.protojson import pascal_case, to_dict

_FD = descriptor.FieldDescriptor
_AnyField = Any  # upb and pure-python descriptors differ in type, not in use


def _show(value: Any) -> str:
    if isinstance(value, Message):
        return str(to_dict(value))
    if isinstance(value, str):
        return value if value else '""'
    return str(value)


def _is_map(field: _AnyField) -> bool:
    msg = field.message_type
    return msg is not None and msg.GetOptions().map_entry


def _enum(field: _AnyField, number: int) -> str:
    value = field.enum_type.values_by_number.get(number)
    return value.name.lower() if value is not None else str(number)


def diff(old: Message, new: Message, prefix: str = "") -> list[str]:
    """Lines describing how `new` differs from `old` (same message type); [] when equal."""
    out: list[str] = []
    for field in old.DESCRIPTOR.fields:
        path = f"{prefix}{pascal_case(field.name)}"
        a, b = getattr(old, field.name), getattr(new, field.name)
        if _is_map(field):
            out += _diff_map(path, dict(a), dict(b))
        elif field.is_repeated:
            out += _diff_list(path, list(a), list(b), field)
        elif field.type == _FD.TYPE_MESSAGE:
            has_a, has_b = old.HasField(field.name), new.HasField(field.name)
            if has_a and has_b:
                out += diff(a, b, f"{path}.")
            elif has_a != has_b:
                out.append(f"{path}: {'set' if has_b else 'unset'}")
        elif a != b:
            if field.type == _FD.TYPE_ENUM:
                out.append(f"{path}: {_enum(field, a)} -> {_enum(field, b)}")
            else:
                out.append(f"{path}: {_show(a)} -> {_show(b)}")
    return out


def _diff_map(path: str, a: dict[Any, Any], b: dict[Any, Any]) -> list[str]:
    out = [f"{path}: -{k}" for k in sorted(a) if k not in b]
    out += [f"{path}: +{k}={_show(b[k])}" for k in sorted(b) if a.get(k) != b[k]]
    return out


def _diff_list(path: str, a: list[Any], b: list[Any], field: _AnyField) -> list[str]:
    if a == b:
        return []
    if field.type == _FD.TYPE_MESSAGE:
        return [f"{path}: {len(a)} -> {len(b)} entries" if len(a) != len(b) else f"{path}: changed"]
    gone = [x for x in a if x not in b]
    added = [x for x in b if x not in a]
    if not gone and not added:
        return [f"{path}: reordered"]
    return [
        f"{path}: " + " ".join([*(f"-{_show(x)}" for x in gone), *(f"+{_show(x)}" for x in added)])
    ]


def summarize(lines: Iterable[str], width: int = 60) -> str:
    """One cell for a table: the changes joined, cut at `width` with an ellipsis."""
    text = "; ".join(lines) or "-"
    return text if len(text) <= width else text[: width - 3] + "..."


__all__ = ["diff", "summarize"]
