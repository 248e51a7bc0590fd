"""The Watch RPC: committed store changes as a live, filtered, resumable stream.

Manager layer; served on the local control socket and, for manager certificates, on the cluster
port (`swarmd.manager.manager.Manager`). Each committed transaction with matching changes becomes
one `WatchMessage` carrying its events and the store version it produced. A client that saw
version V and reconnects with `resume_from = V` gets every matching change after V, then the live
stream, with no gap and no duplicate; when the changes after V are no longer held (the store
keeps a bounded history) the call fails with FAILED_PRECONDITION saying so, and the client must
re-read the state instead of silently missing events. A client too slow to keep up is ended
with UNAVAILABLE ("watch queue overflow") rather than slowing the store down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from grpc import aio

from swarmd.api import store_pb2, watch_pb2, watch_pb2_grpc
from swarmd.manager.store import Commit, Event, EventKind, MemoryStore
from swarmd.manager.store.kinds import StoreObject
from swarmd.manager.watchapi.selector import compile_selector

_log = structlog.get_logger(component="watchapi")

_ACTIONS = {
    EventKind.CREATE: store_pb2.STORE_ACTION_KIND_CREATE,
    EventKind.UPDATE: store_pb2.STORE_ACTION_KIND_UPDATE,
    EventKind.REMOVE: store_pb2.STORE_ACTION_KIND_REMOVE,
}
# Per subscriber; a client this far behind is cut off (it can resume from its last version).
WATCH_QUEUE = 10_000


def _wrap(kind: str, obj: StoreObject) -> watch_pb2.WatchObject:
    out = watch_pb2.WatchObject()
    getattr(out, kind).CopyFrom(obj)
    if kind == "secret":
        # Secret values never leave the managers' store through an API (as GetSecret).
        out.secret.spec.ClearField("data")
    elif kind == "cluster":
        # Nor does the root CA's private key.
        out.cluster.root_ca.ClearField("ca_key")
    return out


def _event(ev: Event, include_old: bool) -> watch_pb2.WatchEvent:
    msg = watch_pb2.WatchEvent(action=_ACTIONS[ev.action], object=_wrap(ev.kind, ev.obj))
    if include_old and ev.old is not None:
        msg.old_object.CopyFrom(_wrap(ev.kind, ev.old))
    return msg


class WatchServicer(watch_pb2_grpc.WatchServicer):
    """Streams store changes to Watch callers."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def Watch(  # noqa: N802 - gRPC method name
        self,
        request: watch_pb2.WatchRequest,
        context: aio.ServicerContext[watch_pb2.WatchRequest, watch_pb2.WatchMessage],
    ) -> AsyncIterator[watch_pb2.WatchMessage]:
        predicate = compile_selector(request.entries)
        since = request.resume_from.index
        if since:
            sub = self._store.watch_from(since, predicate=predicate, maxsize=WATCH_QUEUE)
        else:
            sub = self._store.watch(predicate=predicate, maxsize=WATCH_QUEUE)
        _log.debug("watch started", resume_from=since, entries=len(request.entries))
        async with sub:
            pending = watch_pb2.WatchMessage()
            async for item in sub:
                if isinstance(item, Commit):
                    pending.version.index = item.version
                    yield pending
                    pending = watch_pb2.WatchMessage()
                    continue
                pending.events.append(_event(item, request.include_old_object))


__all__ = ["WatchServicer"]
