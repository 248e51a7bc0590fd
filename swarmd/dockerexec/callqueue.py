"""CallQueue: which queued engine call runs next, by class, with a cap on calls in flight.

The pure policy behind CallPool (callpool.py), which owns the threads; tested without them.
Each call belongs to a class: URGENT (start, stop, kill, inspect: calls that move a task that
is already created forward), NORMAL (lists, image inspects, pulls, removes) or CREATE. A free
thread takes the oldest call of the most urgent class that is under its cap.

Why creates have a cap of their own (benchmarks.md, "Workload path"): dockerd here starts only
about 5-10 containers a second, and a create inside dockerd competes with the starts. With 50
tasks at once and 8 threads, eight creates in flight at a time kept the engine busy creating
while created containers waited to be started, and the first container ran late. Letting two
creates run at a time, on threads the starts may take as soon as they are queued, keeps a
created container ready and leaves most of the engine to the starts. On the raw floor
(bench/callpattern.py, "ahead-K") one or two creates at a time finished 50 containers as fast
as or faster than create and start back to back on 8 threads; one at a time made swarmd's own
creates the pace (about 9 a second under load), two did not. The admission window
(admission.py) keeps the creates from running far ahead of the starts.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Generic, TypeVar

T = TypeVar("T")

#: Call classes: lower runs first.
URGENT = 0
NORMAL = 1
CREATE = 2
CLASSES = (URGENT, NORMAL, CREATE)

#: Creates in flight at once (see the module docstring).
DEFAULT_CREATE_LIMIT = 2


class CallQueue(Generic[T]):
    """Queued items per class, and how many of each class are in flight. Not thread-safe.

    `limits` caps the items in flight per class (a class not named has no cap of its own; the
    number of threads is the caller's cap).
    """

    def __init__(self, limits: Mapping[int, int] | None = None) -> None:
        self._limits = dict(limits or {})
        for cls, cap in self._limits.items():
            if cls not in CLASSES:
                raise ValueError(f"unknown call class {cls}")
            if cap < 1:
                raise ValueError(f"call class {cls} needs a limit of at least 1, not {cap}")
        self._queued: dict[int, collections.deque[T]] = {c: collections.deque() for c in CLASSES}
        self._running: dict[int, int] = dict.fromkeys(CLASSES, 0)

    def push(self, cls: int, item: T) -> None:
        """Queue `item` in class `cls` behind the others of its class."""
        if cls not in self._queued:
            raise ValueError(f"unknown call class {cls}")
        self._queued[cls].append(item)

    def pop(self) -> tuple[int, T] | None:
        """The next item to run and its class, now counted in flight; None when none may run."""
        for cls in CLASSES:
            queued = self._queued[cls]
            if not queued:
                continue
            cap = self._limits.get(cls)
            if cap is not None and self._running[cls] >= cap:
                continue
            self._running[cls] += 1
            return cls, queued.popleft()
        return None

    def done(self, cls: int) -> None:
        """An item of class `cls` that pop() handed out has finished."""
        if self._running[cls] <= 0:
            raise ValueError(f"no call of class {cls} is in flight")
        self._running[cls] -= 1

    def drain(self) -> list[T]:
        """Remove and return every queued item (in flight ones are not affected)."""
        out: list[T] = []
        for cls in CLASSES:
            out.extend(self._queued[cls])
            self._queued[cls].clear()
        return out

    def queued(self, cls: int) -> int:
        """How many items of class `cls` wait."""
        return len(self._queued[cls])

    def running(self, cls: int) -> int:
        """How many items of class `cls` are in flight."""
        return self._running[cls]


__all__ = ["CLASSES", "CREATE", "DEFAULT_CREATE_LIMIT", "NORMAL", "URGENT", "CallQueue"]
