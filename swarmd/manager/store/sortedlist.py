"""LazySorted: a sorted list whose inserts and removals are merged in when it is next read.

Manager layer, internal to `swarmd.manager.store`: a `Table` (table.py) keeps its ids and its
(name, id) pairs in two of these. An insert into a plain sorted list moves every later element
(bisect.insort): at 100,000 tasks that is about half a megabyte per write, and it made the
store's writes slower the larger the store grew. Here a write is O(1) (a set operation); the
first read after writes merges them in one pass (timsort merges the sorted list and the sorted
additions in linear time), and reads between writes cost nothing extra.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

T = TypeVar("T", bound="SupportsRichComparison")


class LazySorted(Generic[T]):
    """Distinct items, read in sorted order. Loop-confined (no locking)."""

    __slots__ = ("_added", "_gone", "_items")

    def __init__(self, items: Iterable[T] | None = None) -> None:
        # Most are made empty (a transaction's overlay table): no sort for those.
        self._items: list[T] = [] if items is None else sorted(items)
        self._added: set[T] = set()  # not in _items yet
        self._gone: set[T] = set()  # still in _items, to be dropped

    def add(self, item: T) -> None:
        """Insert an item that is not in the list."""
        if item in self._gone:
            self._gone.discard(item)
        else:
            self._added.add(item)

    def discard(self, item: T) -> None:
        """Remove an item that is in the list."""
        if item in self._added:
            self._added.discard(item)
        else:
            self._gone.add(item)

    def clear(self) -> None:
        """Remove every item."""
        self._items, self._added, self._gone = [], set(), set()

    def items(self) -> list[T]:
        """The items, sorted. The list belongs to this object: do not mutate or keep it."""
        if self._added or self._gone:
            items = self._items
            if self._gone:
                gone = self._gone
                items = [i for i in items if i not in gone]
            items.extend(self._added)
            items.sort()  # two sorted runs (the old list, the new items sorted): linear
            self._items, self._added, self._gone = items, set(), set()
        return self._items

    def range_from(self, low: T) -> tuple[list[T], int]:
        """The sorted items and the position of the first one >= low."""
        items = self.items()
        return items, bisect.bisect_left(items, low)


__all__ = ["LazySorted"]
