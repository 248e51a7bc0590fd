"""The one error hierarchy of swarmd; every layer raises these, rpc/status.py maps them to codes.

    SwarmError
    ├── NotFound                 object of a kind with an id/name does not exist
    ├── AlreadyExists
    │   └── NameConflict         another object of the kind has the name (case-insensitive)
    ├── InvalidArgument          bad input: the message names the field and the rule
    ├── FailedPrecondition       the request is valid but the state forbids it
    │   └── SequenceConflict     optimistic update against a stale meta.version
    ├── NotLeader                this manager cannot serve it; leader_addr says who
    ├── Unavailable              retry later (no leader, shutting down, peer unreachable)
    ├── PermissionDenied         authenticated, but the role may not do this
    ├── Unauthenticated          no or bad identity (token, certificate)
    └── DeadlineExceeded         an operation did not finish in time

Messages are lowercase, without a trailing period, and name the object. Secrets never appear.
"""

from __future__ import annotations


class SwarmError(Exception):
    """Base of every error swarmd raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SwarmError):
    """An object does not exist."""

    def __init__(self, kind: str, ref: str, message: str | None = None) -> None:
        super().__init__(message or f"{kind} {ref} not found")
        self.kind = kind
        self.ref = ref


class AlreadyExists(SwarmError):
    """An object with the same identity already exists."""


class NameConflict(AlreadyExists):
    """Another object of the same kind already has this name."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} name {name!r} is already in use")
        self.kind = kind
        self.name = name


class InvalidArgument(SwarmError):
    """The request is malformed; the message names the field and what is wrong."""


class FailedPrecondition(SwarmError):
    """The request is valid, but the current state does not allow it."""


class SequenceConflict(FailedPrecondition):
    """An update was based on a stale version of the object."""

    def __init__(self, kind: str, ref: str, expected: int, actual: int) -> None:
        super().__init__(
            f"update out of sequence: {kind} {ref} is at version {actual}, "
            f"the update was based on version {expected}; read it again and retry"
        )
        self.kind = kind
        self.ref = ref
        self.expected = expected
        self.actual = actual


class NotLeader(SwarmError):
    """This manager is not the leader; leader_addr is where to go, if known."""

    def __init__(self, leader_addr: str = "") -> None:
        where = f" (leader is {leader_addr})" if leader_addr else ""
        super().__init__(f"this manager is not the leader{where}")
        self.leader_addr = leader_addr


class Unavailable(SwarmError):
    """The service cannot answer right now; the caller may retry."""


class PermissionDenied(SwarmError):
    """The caller is known but its role may not make this call."""


class Unauthenticated(SwarmError):
    """The caller has no valid identity (bad join token, no certificate)."""


class DeadlineExceeded(SwarmError):
    """An operation did not complete within its deadline."""


__all__ = [
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NameConflict",
    "NotFound",
    "NotLeader",
    "PermissionDenied",
    "SequenceConflict",
    "SwarmError",
    "Unauthenticated",
    "Unavailable",
]
