"""Configuration: the raft configuration of one member (who votes, who learns, where they are).

Manager layer, raft node. `RaftNode` holds one and delegates its membership API to it. The
configuration is the Raft paper's (§6): the core's `ConfState` as of the applied index, with
the `AddressBook` (members.py: raft id -> RaftMember, removed ids) that says where each member
is, and the transport's peers kept in step with the book. It proposes the changes (add a
learner, promote it, remove a member, hand leadership over) through the driver loop, which it
reaches through the narrow `Driver` protocol that `RaftNode` implements, and it applies the
committed CONF_CHANGE entries. It holds no policy: `Membership` (membership.py), one layer up,
decides who joins and when a learner is promoted, serialises the changes and checks the
managers' quorum before a demotion; the check in `remove_member` is the last line of defence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import structlog
from google.protobuf.message import DecodeError

from swarmd import errors
from swarmd.api import store_pb2, types_pb2
from swarmd.manager.raftnode.leadership import Leadership
from swarmd.manager.raftnode.members import AddressBook
from swarmd.manager.raftnode.transport import Transport
from swarmd.manager.raftnode.waits import ProposalWait, Waits
from swarmd.raft import (
    NONE,
    ConfChange,
    ConfChangeRejected,
    ConfChangeType,
    ConfState,
    Entry,
    ProposalDropped,
    RaftID,
    RawNode,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QuorumCheck:
    """What removing one voter would leave: reachable voters, voters left, and the quorum."""

    reachable: int
    remaining: int
    needed: int

    @property
    def keeps_quorum(self) -> bool:
        """Would the voters left still reach a quorum among themselves?"""
        return self.remaining == 0 or self.reachable >= self.needed


def quorum_after_removal(
    voters: frozenset[RaftID], removing: RaftID, reachable: frozenset[RaftID]
) -> QuorumCheck:
    """The quorum arithmetic of removing `removing` (a learner or non-member removes nothing).

    Args:
        voters: the current voters.
        removing: the member to remove.
        reachable: the voters that answer now (the leader itself included).
    """
    left = voters - {removing}
    if removing not in voters:
        left = voters
    return QuorumCheck(len(left & reachable), len(left), len(left) // 2 + 1)


class Driver(Protocol):
    """What a change of the configuration needs of the driver loop (`RaftNode` implements it)."""

    @property
    def propose_timeout(self) -> float:
        """Seconds a change may take to apply (the current settings)."""

    def check_leader(self) -> None:
        """Raise errors.NotLeader or errors.Unavailable unless this member may write now."""

    def dropped_error(self) -> errors.SwarmError:
        """The error for a request the core dropped."""

    async def in_loop(self, fn: Callable[[RawNode], T]) -> T:
        """Run fn on the core between two Readys and return its result (or raise its error)."""


class Configuration:
    """This member's view of the raft configuration, and the changes it proposes and applies.

    Loop-confined. The transport talks to every member of the address book but this one.

    Args:
        member: this member's identity (it stays in the book whatever a snapshot holds).
        transport: carries messages to the peers; told about every change of the book.
        driver: runs the changes on the core.
        waits: the driver's proposal bookkeeping, where a change waits until it applies.
        leadership: this member's view of the leader, watched until a transfer completes.
        logger: the driver's logger (bound to this raft id).
    """

    def __init__(
        self,
        member: types_pb2.RaftMember,
        transport: Transport,
        driver: Driver,
        waits: Waits,
        leadership: Leadership,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._id = RaftID(member.raft_id)
        self.address_book = AddressBook([member])
        self._member = member
        self._transport = transport
        self._driver = driver
        self._waits = waits
        self._leadership = leadership
        self._log = logger
        self._conf = ConfState()
        self._removed = False
        self._linked: set[RaftID] = set()  # peers the transport was told about

    @property
    def state(self) -> ConfState:
        """The voters and learners as of the applied index."""
        return self._conf

    @property
    def removed(self) -> bool:
        """This member was removed from the cluster."""
        return self._removed

    # Recovery and applying

    def learn(self, members: Iterable[types_pb2.RaftMember]) -> None:
        """Record where other members are (a joining member learns the rest from the log)."""
        for member in members:
            if member.raft_id != self._id:
                self.address_book.put(member)
        self._sync_peers()

    def restore_members(self, membership: store_pb2.ClusterSnapshot) -> None:
        """Replace the address book with a store snapshot's (this member stays in it)."""
        self.address_book.restore(membership)
        self.address_book.put(self._member)

    def restore_conf(self, conf: ConfState) -> None:
        """Take the voters and learners of the stored state or of an installed snapshot."""
        self._conf = conf
        self._sync_peers()

    def apply(self, raw: RawNode, entry: Entry) -> None:
        """Apply a committed CONF_CHANGE entry: to the core, the book, the transport.

        The member added travels in the change's context (its RaftMember). A change this
        member proposed is resolved here; the caller advances the store past the entry.
        """
        change = ConfChange.unmarshal(entry.data)
        self._conf = raw.apply_conf_change(change)
        peer = change.node_id
        if change.type is ConfChangeType.REMOVE_NODE:
            self.address_book.remove(peer)
            if peer == self._id:
                self._removed = True
                self._log.warning("this raft member was removed from the cluster")
        elif change.context:
            try:
                self.address_book.put(types_pb2.RaftMember.FromString(change.context))
            except DecodeError as err:
                self._log.error("undecodable raft member", index=entry.index, error=str(err))
        self._sync_peers()
        wait = self._waits.take_proposal(entry.index)
        if wait is not None and not wait.future.done():
            if wait.data == entry.data:
                wait.future.set_result(entry.index)
            else:
                wait.future.set_exception(
                    errors.Unavailable(f"membership change at index {entry.index} was overwritten")
                )

    def _sync_peers(self) -> None:
        """Make the transport's peers those of the address book (all but ourselves)."""
        wanted = {
            peer: self.address_book.addr(peer)
            for peer in self.address_book.ids()
            if peer != self._id and self.address_book.addr(peer)
        }
        for peer in self._linked - wanted.keys():
            self._transport.remove_peer(peer)
        for peer, addr in wanted.items():
            self._transport.set_peer(peer, addr)  # a no-op when the address did not change
        self._linked = set(wanted)

    # Queries (the RaftMembership servicer, the promoter, the role manager)

    def member_of_node(self, node_id: str) -> types_pb2.RaftMember | None:
        """The current raft member (voter or learner) of the manager `node_id`, None if none."""
        current = self._conf.voters | self._conf.learners
        for member in self.address_book.members():
            if member.node_id == node_id and RaftID(member.raft_id) in current:
                return member
        return None

    def is_reachable(self, raft_id: RaftID) -> bool:
        """Is the member this one, or a peer the transport currently reaches?"""
        return raft_id == self._id or self._transport.is_active(raft_id)

    # Changes (leader only)

    async def add_learner(self, member: types_pb2.RaftMember) -> int:
        """Add a non-voting member that receives the log (first step of adding a manager).

        Returns the index of the applied change.
        """
        change = ConfChange(
            ConfChangeType.ADD_LEARNER, RaftID(member.raft_id), member.SerializeToString()
        )
        return await self._change(change)

    async def promote(self, raft_id: RaftID) -> int:
        """Make a learner (or a new member) a voter.

        Raises:
            errors.NotFound: the member is unknown.
        """
        member = self.address_book.get(raft_id)
        if member is None:
            raise errors.NotFound("raft member", f"{raft_id:x}")
        change = ConfChange(ConfChangeType.ADD_NODE, raft_id, member.SerializeToString())
        return await self._change(change)

    async def remove_member(self, raft_id: RaftID) -> int:
        """Remove a member; refused when the reachable voters left would not form a quorum.

        Raises:
            errors.FailedPrecondition: the removal would lose quorum.
        """
        voters = self._conf.voters
        reachable = frozenset(v for v in voters if self.is_reachable(v))
        check = quorum_after_removal(voters, raft_id, reachable)
        if raft_id in voters and not check.keeps_quorum:
            raise errors.FailedPrecondition(
                f"removing raft member {raft_id:x} would leave {check.reachable} of "
                f"{check.remaining} voters reachable: no quorum"
            )
        return await self._change(ConfChange(ConfChangeType.REMOVE_NODE, raft_id))

    async def _change(self, change: ConfChange) -> int:
        self._driver.check_leader()
        data = change.marshal()
        wait = ProposalWait(data, asyncio.get_running_loop().create_future())

        def start(raw: RawNode) -> int:
            index = raw.propose_conf_change(change)
            self._waits.add_proposal(index, wait)
            return index

        try:
            async with asyncio.timeout(self._driver.propose_timeout):
                await self._driver.in_loop(start)
                index = await wait.future
        except ConfChangeRejected as err:
            raise errors.FailedPrecondition(f"membership change refused: {err}") from err
        except ProposalDropped as err:
            raise self._driver.dropped_error() from err
        except TimeoutError as err:
            raise errors.Unavailable("membership change not applied in time") from err
        finally:
            wait.settled.set()
        self._log.info(
            "raft membership changed", change=change.type.name.lower(), member=f"{change.node_id:x}"
        )
        return index

    async def transfer_leadership(self, to: RaftID = NONE) -> RaftID:
        """Hand leadership to `to` (default: a connected voter) and wait until it leads.

        Raises:
            errors.NotLeader: this member does not lead.
            errors.FailedPrecondition: no other voter is reachable, or `to` is not a voter.
            errors.Unavailable: the transfer did not complete within the propose timeout.
        """
        self._driver.check_leader()
        target = to
        if target == NONE:
            others = sorted(v for v in self._conf.voters if v != self._id)
            active = [v for v in others if self._transport.is_active(v)]
            if not active:
                raise errors.FailedPrecondition("no reachable voter to transfer leadership to")
            target = active[0]
        if target == self._id:
            return target
        if target not in self._conf.voters:
            raise errors.FailedPrecondition(f"raft member {target:x} is not a voter")
        try:
            async with asyncio.timeout(self._driver.propose_timeout):
                await self._driver.in_loop(lambda raw: raw.transfer_leader(target))
                state = self._leadership.state
                while state.leader_id != target:
                    state = await self._leadership.changed(state)
        except ProposalDropped as err:
            raise errors.NotLeader(self._leadership.state.leader_addr) from err
        except TimeoutError as err:
            raise errors.Unavailable(
                f"leadership not transferred to raft member {target:x} in time"
            ) from err
        return target


__all__ = ["Configuration", "Driver", "QuorumCheck", "quorum_after_removal"]
