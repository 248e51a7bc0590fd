"""AddressBook: who is in the raft cluster and where to reach them (raft id -> RaftMember).

Manager layer, raft node. The `Configuration` of a `RaftNode` (configuration.py) owns one and
joins it with the core's voters and learners: it fills it from the founding members, from the
RaftMember carried in the context of every applied conf change, and from the membership saved in
store snapshots; it tells the transport about every change. The Raft servicer answers
`ResolveAddress` from it (`RaftNode.address_book`). Removed ids are remembered forever (swarmkit
keeps them in the snapshot too) so a removed manager that comes back cannot take part again.

`load_identity` keeps this member's own RaftMember in the raft state dir (swarmkit keeps it in
its WAL metadata): a restarted manager recovers its raft id from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from google.protobuf.message import DecodeError

from swarmd import errors
from swarmd.api import store_pb2, types_pb2
from swarmd.manager.raftnode.storage import _write_atomically
from swarmd.raft import RaftID

MEMBER_FILE = "raft-member.pb"


class AddressBook:
    """Known raft members by id, plus the ids removed from the cluster. Loop-confined."""

    def __init__(self, members: Iterable[types_pb2.RaftMember] = ()) -> None:
        self._members: dict[RaftID, types_pb2.RaftMember] = {}
        self._removed: set[RaftID] = set()
        for member in members:
            self.put(member)

    def put(self, member: types_pb2.RaftMember) -> None:
        """Add or update a member (a removed id stays removed)."""
        raft_id = RaftID(member.raft_id)
        if raft_id in self._removed:
            return
        kept = types_pb2.RaftMember()
        kept.CopyFrom(member)
        self._members[raft_id] = kept

    def remove(self, raft_id: RaftID) -> None:
        """Forget a member and remember that it was removed."""
        self._members.pop(raft_id, None)
        self._removed.add(raft_id)

    def get(self, raft_id: RaftID) -> types_pb2.RaftMember | None:
        """A copy of the member's record, None if unknown."""
        member = self._members.get(raft_id)
        if member is None:
            return None
        out = types_pb2.RaftMember()
        out.CopyFrom(member)
        return out

    def addr(self, raft_id: RaftID) -> str:
        """The member's address, "" if unknown."""
        member = self._members.get(raft_id)
        return member.addr if member is not None else ""

    def is_removed(self, raft_id: RaftID) -> bool:
        """Was this id removed from the cluster?"""
        return raft_id in self._removed

    def ids(self) -> list[RaftID]:
        """Known member ids, sorted."""
        return sorted(self._members)

    def members(self) -> list[types_pb2.RaftMember]:
        """Copies of all known member records, by id."""
        return [m for m in (self.get(i) for i in self.ids()) if m is not None]

    def to_snapshot(self) -> store_pb2.ClusterSnapshot:
        """The membership part of a store snapshot."""
        return store_pb2.ClusterSnapshot(members=self.members(), removed=sorted(self._removed))

    def restore(self, snap: store_pb2.ClusterSnapshot) -> None:
        """Replace everything with what a snapshot holds."""
        self._members.clear()
        self._removed = {RaftID(r) for r in snap.removed}
        for member in snap.members:
            self.put(member)


async def load_identity(
    state_dir: Path, given: types_pb2.RaftMember | None
) -> types_pb2.RaftMember:
    """This member's identity: saved in state_dir on first use, read back afterwards.

    A later `given` may change the address (a manager may move), never the raft id.

    Raises:
        errors.FailedPrecondition: nothing is saved and `given` is None, `given` names another
            raft id than the saved one, or the saved file is damaged.
    """
    path = state_dir / MEMBER_FILE
    saved = await asyncio.to_thread(_read_member, path)
    identity = _choose_identity(saved, given, state_dir)
    if saved != identity:
        await asyncio.to_thread(state_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        await asyncio.to_thread(_write_atomically, path, identity.SerializeToString())
    return identity


def _read_member(path: Path) -> types_pb2.RaftMember | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return types_pb2.RaftMember.FromString(data)
    except DecodeError as err:
        raise errors.FailedPrecondition(f"raft identity {path} is damaged: {err}") from err


def _choose_identity(
    saved: types_pb2.RaftMember | None, given: types_pb2.RaftMember | None, path: Path
) -> types_pb2.RaftMember:
    if saved is None:
        if given is None:
            raise errors.FailedPrecondition(f"no raft identity in {path}; give the raft member")
        return given
    if given is None:
        return saved
    if given.raft_id != saved.raft_id:
        raise errors.FailedPrecondition(
            f"{path} belongs to raft member {saved.raft_id:x}, not {given.raft_id:x}"
        )
    merged = types_pb2.RaftMember()
    merged.CopyFrom(saved)
    if given.addr:
        merged.addr = given.addr
    return merged


__all__ = ["MEMBER_FILE", "AddressBook", "load_identity"]
