"""Random object identifiers: 25 characters of base36, as SwarmKit's node, service and task ids."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25


def new_id() -> str:
    """Return a fresh random id (about 129 bits of entropy)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(ID_LENGTH))


def is_id(value: str) -> bool:
    """True when `value` has the shape of an id made by new_id."""
    return len(value) == ID_LENGTH and all(c in _ALPHABET for c in value)


__all__ = ["ID_LENGTH", "is_id", "new_id"]
