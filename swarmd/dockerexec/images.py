"""PresentImages: which images this executor recently saw in the local engine.

One per DockerExecutor, shared by its DockerControllers (controller.py): when 50 tasks of one
service are prepared, the image is inspected once, not 50 times. An entry is only trusted for
a short time (`ttl`), since an image can be removed behind our back; a create that fails
because the image is gone after all forgets it (the next prepare looks again). Pure: time
comes from a Clock.
"""

from __future__ import annotations

from swarmd.clock import Clock, SystemClock

DEFAULT_TTL = 10.0


class PresentImages:
    """Image references seen present, each until `ttl` seconds after it was last seen."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Clock | None = None) -> None:
        self._ttl = ttl
        self._clock = clock or SystemClock()
        self._until: dict[str, float] = {}

    def seen(self, ref: str) -> None:
        """`ref` is present in the engine now."""
        self._until[ref] = self._clock.monotonic() + self._ttl

    def forget(self, ref: str) -> None:
        """`ref` turned out to be missing."""
        self._until.pop(ref, None)

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str):
            return False
        until = self._until.get(ref)
        if until is None:
            return False
        if self._clock.monotonic() >= until:
            del self._until[ref]
            return False
        return True


__all__ = ["DEFAULT_TTL", "PresentImages"]
