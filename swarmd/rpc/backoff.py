"""Jittered exponential backoff for reconnecting streams and retried calls."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `maximum`, each drawn uniformly in [d/2, d].

    `reset()` after a success; `next()` gives the delay to sleep before the next attempt.
    """

    def __init__(
        self, initial: float = 0.1, maximum: float = 8.0, rng: random.Random | None = None
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._current = initial
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._current = self._initial

    def next(self) -> float:
        delay = self._rng.uniform(self._current / 2, self._current)
        self._current = min(self._current * 2, self._maximum)
        return delay


__all__ = ["Backoff"]
