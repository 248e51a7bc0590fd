"""Which store events a Watch request asks for: its entries turned into one predicate. Pure.

Manager layer, used by `WatchServicer`. A request holds entries; an event matches when any entry
matches it: the entry's kind (empty = every kind), its action mask (CREATE=1, UPDATE=2, REMOVE=4;
0 = all) and every one of its filters (id, id prefix, name, name prefix, service, node, slot,
desired state, label `key` or `key=value`). Filters that cannot apply to a kind (a slot on a
node) do not match it. Requests are validated up front so a typo is an InvalidArgument naming
the entry, not a silent stream of nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swarmd import errors
from swarmd.api import objects_pb2, watch_pb2
from swarmd.manager.store import Event, EventKind
from swarmd.manager.store.kinds import BY_NAME, StoreObject, kind_of

ACTION_BITS = {EventKind.CREATE: 1, EventKind.UPDATE: 2, EventKind.REMOVE: 4}
ALL_ACTIONS = 7

_TASK_ONLY = ("slot", "desired_state")


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: str
    actions: int
    filters: tuple[watch_pb2.SelectBy, ...]


def _labels(obj: StoreObject) -> dict[str, str]:
    if isinstance(obj, objects_pb2.Task):
        merged = dict(obj.service_annotations.labels)
        merged.update(obj.annotations.labels)
        return merged
    spec = getattr(obj, "spec", None)
    annotations = getattr(spec, "annotations", None)
    return dict(annotations.labels) if annotations is not None else {}


def _matches(flt: watch_pb2.SelectBy, obj: StoreObject) -> bool:
    which = flt.WhichOneof("by")
    name = kind_of(obj).name_of(obj).lower()  # type: ignore[arg-type]
    if which == "id":
        return obj.id == flt.id
    if which == "id_prefix":
        return obj.id.startswith(flt.id_prefix)
    if which == "name":
        return name == flt.name.lower()
    if which == "name_prefix":
        return name.startswith(flt.name_prefix.lower())
    if which == "service_id":
        if isinstance(obj, objects_pb2.Service):
            return obj.id == flt.service_id
        return isinstance(obj, objects_pb2.Task) and obj.service_id == flt.service_id
    if which == "node_id":
        if isinstance(obj, objects_pb2.Node):
            return obj.id == flt.node_id
        return isinstance(obj, objects_pb2.Task) and obj.node_id == flt.node_id
    if which == "slot":
        return isinstance(obj, objects_pb2.Task) and obj.slot == flt.slot
    if which == "desired_state":
        return isinstance(obj, objects_pb2.Task) and obj.desired_state == flt.desired_state
    if which == "label":
        key, sep, value = flt.label.partition("=")
        labels = _labels(obj)
        return key in labels and (not sep or labels[key] == value)
    return False


def _validate(i: int, entry: watch_pb2.WatchEntry) -> _Entry:
    if entry.kind and entry.kind not in BY_NAME:
        raise errors.InvalidArgument(
            f"invalid watch entry {i}: unknown kind {entry.kind!r} "
            f"(one of {', '.join(sorted(BY_NAME))})"
        )
    if entry.action & ~ALL_ACTIONS:
        raise errors.InvalidArgument(
            f"invalid watch entry {i}: action mask {entry.action} (CREATE=1, UPDATE=2, REMOVE=4)"
        )
    for flt in entry.filters:
        which = flt.WhichOneof("by")
        if which is None:
            raise errors.InvalidArgument(f"invalid watch entry {i}: empty filter")
        if which == "label" and not flt.label.partition("=")[0]:
            raise errors.InvalidArgument(f"invalid watch entry {i}: label filter needs a key")
        if entry.kind and which in _TASK_ONLY and entry.kind != "task":
            raise errors.InvalidArgument(
                f"invalid watch entry {i}: filter {which} applies to tasks, not {entry.kind}s"
            )
    return _Entry(entry.kind, entry.action or ALL_ACTIONS, tuple(entry.filters))


def compile_selector(entries: Sequence[watch_pb2.WatchEntry]) -> Callable[[Event], bool]:
    """The predicate of a Watch request; no entries means every event."""
    compiled = [_validate(i, e) for i, e in enumerate(entries)]

    def predicate(ev: Event) -> bool:
        if not compiled:
            return True
        bit = ACTION_BITS[ev.action]
        for entry in compiled:
            if entry.kind and entry.kind != ev.kind:
                continue
            if not entry.actions & bit:
                continue
            if all(_matches(f, ev.obj) for f in entry.filters):
                return True
        return False

    return predicate


__all__ = ["ACTION_BITS", "ALL_ACTIONS", "compile_selector"]
