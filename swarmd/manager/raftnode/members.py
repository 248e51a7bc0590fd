"""AddressBook: who is in the raft cluster and where to reach them (raft id -> RaftMember).

Manager layer, raft node. `RaftNode` owns one: it fills it from the founding members, from the
RaftMember carried in the context of every applied conf change, and from the membership saved in
store snapshots; it tells the transport about every change. The Raft servicer answers
`ResolveAddress` from it. Removed ids are remembered forever (swarmkit keeps them in the snapshot
too) so a removed manager that comes back cannot take part again.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmd.api import store_pb2, types_pb2
from swarmd.raft import RaftID


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


__all__ = ["AddressBook"]
