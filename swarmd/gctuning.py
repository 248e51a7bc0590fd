"""Garbage-collector settings of a swarmd process: rarer collections that skip the loaded state.

Called by `swarmd.__main__.main` at start (`configure`) and by the manager once its store is
loaded from disk or from a leader's snapshot (`freeze`). CPython's cyclic collector runs a
young collection every 700 allocations and now and then a full one that walks every tracked
object. A manager keeps hundreds of thousands of long-lived dicts, sets and tuples (the
store's tables and indexes): with 64 writers the collections took 18 % of a leader's time and
paused it for up to 0.3 s, and a full collection grows with the store until it rivals an
election timeout. The store makes no reference cycles (its objects are freed by reference
counting, frozen or not), so there is little for the collector to find: collect young objects
less often, and keep the state present after a load out of later collections.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython: 700)
OLDER_THRESHOLDS = (50, 100)  # collections of the younger generation before an older one


def configure() -> None:
    """Set the thresholds for a long-running process with a large heap."""
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def freeze() -> None:
    """Keep every object alive now out of later collections (no collection first: that would
    walk the whole heap on the event loop)."""
    gc.freeze()


__all__ = ["configure", "freeze"]
