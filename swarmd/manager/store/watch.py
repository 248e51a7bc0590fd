"""Store change events and their delivery: bounded per-subscriber queues plus a replay history.

Manager layer. `MemoryStore` publishes each committed transaction here (`Hub.publish`); the
scheduler, orchestrators, dispatcher and watch RPCs consume them through `Subscription`s returned
by `MemoryStore.watch()` / `watch_from()`. Loop-confined, no locks.

Writers never wait for readers: a subscriber whose queue would exceed its `maxsize` is closed and
its iterator raises `errors.Unavailable("watch queue overflow")`; it must re-read the store and
watch again (swarmkit's watch queue does the same with its "slow consumer" close).
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeAlias

import structlog

from swarmd import errors
from swarmd.clock import Clock
from swarmd.manager.store.kinds import StoreObject

_log = structlog.get_logger(component="store")


class EventKind(enum.Enum):
    """What a change did to an object."""

    CREATE = "create"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Event:
    """One object change of a committed transaction.

    Attributes:
        kind: the kind name ("service", "task", ...).
        action: CREATE, UPDATE or REMOVE.
        obj: the object after the change; for REMOVE, the object as it was when removed.
        old: for UPDATE, the object before the change; otherwise None.
        version: the version of the transaction that made the change.

    The messages are copies, never the store's instances, but one Event is shared by every
    subscriber and the replay history: treat `obj` and `old` as read-only (copy to modify).
    """

    kind: str
    action: EventKind
    obj: StoreObject
    old: StoreObject | None
    version: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Marks the end of one committed transaction's events."""

    version: int


WatchItem: TypeAlias = Event | Commit
Predicate: TypeAlias = Callable[[Event], bool]


class Subscription:
    """One subscriber's bounded queue of events; an async iterator and async context manager.

    Items: the `Event`s of each committed transaction that match the kinds and predicate, each
    transaction's followed by a `Commit(version)`. Transactions without a matching event produce
    nothing unless `all_commits` was requested. Iteration ends after `close()`; after an overflow
    (or a store restore) it raises `errors.Unavailable` instead.
    """

    def __init__(
        self,
        hub: Hub,
        kinds: frozenset[str] | None,
        predicate: Predicate | None,
        maxsize: int,
        all_commits: bool,
    ) -> None:
        if maxsize < 1:
            raise ValueError("watch maxsize must be at least 1")
        self._hub = hub
        self._kinds = kinds
        self._predicate = predicate
        self._maxsize = maxsize
        self._all_commits = all_commits
        self._queue: deque[WatchItem] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: errors.SwarmError | None = None

    @property
    def closed(self) -> bool:
        """Whether the subscription was closed (by close(), overflow or restore)."""
        return self._closed

    def pending(self) -> int:
        """Number of items queued and not yet consumed."""
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving; a pending or later `__anext__` ends the iteration."""
        self._finish(None)

    def offer(self, version: int, events: Sequence[Event]) -> None:
        """Queue the matching events of one committed transaction (called by the Hub)."""
        if self._closed:
            return
        matched = 0
        for ev in events:
            if self._kinds is not None and ev.kind not in self._kinds:
                continue
            if self._predicate is not None and not self._predicate(ev):
                continue
            self._queue.append(ev)
            matched += 1
        if matched or self._all_commits:
            self._queue.append(Commit(version))
        if len(self._queue) > self._maxsize:
            _log.warning("watch queue overflow", maxsize=self._maxsize, version=version)
            self._finish(errors.Unavailable("watch queue overflow"))
            return
        if self._queue:
            self._wake()

    def fail(self, error: errors.SwarmError) -> None:
        """Close the subscription so its iterator raises error (overflow, restore)."""
        self._finish(error)

    def _finish(self, error: errors.SwarmError | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        if error is not None:
            self._queue.clear()  # the consumer must resynchronise; free the memory now
        self._hub.discard(self)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> WatchItem:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def next_within(self, clock: Clock, wait: float | None) -> WatchItem | None:
        """The next item, or None once `wait` seconds of `clock` pass first (None: no limit).

        Raises like `__anext__` (StopAsyncIteration after close, the error after an overflow).
        A cancellation of the caller always propagates: waiting for the timer to unwind must
        not swallow it, or a cancelled orchestrator would go on running.
        """
        if wait is None or self._queue or self._closed:
            return await self.__anext__()
        if wait <= 0:
            return None
        sleep = asyncio.ensure_future(clock.sleep(wait))
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait({waiter, sleep}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiter = None
            if not sleep.done():
                sleep.cancel()
                # wait() neither raises the timer's CancelledError nor swallows ours.
                await asyncio.wait({sleep})
        if self._queue or self._closed:
            return await self.__anext__()
        return None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Hub:
    """The live subscribers and the bounded history of recent commits, for replay."""

    def __init__(self, history: int, version: int = 0) -> None:
        if history < 0:
            raise ValueError("watch history must not be negative")
        self._subs: set[Subscription] = set()
        self._history: deque[tuple[int, tuple[Event, ...]]] = deque(maxlen=history or None)
        self._history_enabled = history > 0
        # Replay from version v is possible iff every commit after v is still in the history.
        self._floor = version

    def subscribe(
        self,
        kinds: Collection[str] | None,
        predicate: Predicate | None,
        maxsize: int,
        all_commits: bool,
        since: int | None = None,
    ) -> Subscription:
        """A new subscription, first fed the history after `since` when given."""
        frozen = None if kinds is None else frozenset(kinds)
        sub = Subscription(self, frozen, predicate, maxsize, all_commits)
        if since is not None:
            if since < self._floor:
                raise errors.FailedPrecondition(
                    f"cannot watch from version {since}: the change history starts after "
                    f"version {self._floor}"
                )
            for version, events in self._history:
                if version > since:
                    sub.offer(version, events)
            if sub.closed:
                raise errors.FailedPrecondition(
                    f"cannot watch from version {since}: the replay exceeds the queue size "
                    f"{maxsize}"
                )
        self._subs.add(sub)
        return sub

    def discard(self, sub: Subscription) -> None:
        """Forget a closed subscription."""
        self._subs.discard(sub)

    def publish(self, version: int, events: Sequence[Event]) -> None:
        """Deliver one committed transaction to every subscriber and remember it for replay."""
        frozen = tuple(events)
        if self._history_enabled:
            if len(self._history) == self._history.maxlen:
                self._floor = self._history[0][0]
            self._history.append((version, frozen))
        else:
            self._floor = version
        for sub in list(self._subs):
            sub.offer(version, frozen)

    def reset(self, version: int, reason: str) -> None:
        """Drop the history and fail every subscriber (the store's contents were replaced)."""
        self._history.clear()
        self._floor = version
        for sub in list(self._subs):
            sub.fail(errors.Unavailable(reason))

    @property
    def subscribers(self) -> int:
        """Number of live subscriptions."""
        return len(self._subs)


__all__ = ["Commit", "Event", "EventKind", "Hub", "Predicate", "Subscription", "WatchItem"]
