"""RaftNode: the async driver around the pure raft core; the store's replicated Proposer.

Manager layer, raft node. The manager's wiring builds and runs one per manager:

    node = await RaftNode.open(raft_dir, transport, settings, member=RaftMember(...))
    if not node.has_membership() and founding: await node.bootstrap([member, ...])
    store = MemoryStore(proposer=node)
    await node.recover(store)                  # store snapshot, then the log replays in run()
    tg.create_task(node.run())                 # until cancelled
    servicer = RaftServicer(node, node.address_book.get)    # on the cluster port

`run` ticks the `RawNode` on a timer and feeds it the messages the transport received and the
requests of local callers (proposals, membership changes, reads), all between two Readys: the
core is only touched from the loop body. Each Ready is handled in order (swarmd design 4.1,
the `RawNode` contract): persist it (`DurableStorage`, off the loop) -> send its messages ->
apply (leadership, snapshot, committed entries, reads) -> `advance`. Committed entries carry
`InternalRaftRequest`s of store actions: entries this member proposed are applied by the store
itself once `propose` returns their index, every other entry through
`MemoryStore.apply_committed`, so every manager's store goes through the same versions.
Membership lives in the node's `Configuration` (configuration.py): the voters and learners,
the address book and the transport's peers; it proposes membership changes through this loop
(the `Driver` protocol) and applies the committed conf-change entries. Store snapshots are
its `Snapshotter`'s (snapshots.py): when to take one, saving it, installing the leader's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import structlog
from google.protobuf.message import DecodeError

from swarmd import errors, log
from swarmd.api import store_pb2, types_pb2
from swarmd.clock import Clock, SystemClock
from swarmd.manager.raftnode import founding
from swarmd.manager.raftnode.configuration import Configuration
from swarmd.manager.raftnode.durable import DurableStorage
from swarmd.manager.raftnode.leadership import Leadership, LeadershipSink, LeaderState
from swarmd.manager.raftnode.members import AddressBook, load_identity
from swarmd.manager.raftnode.settings import RaftSettings
from swarmd.manager.raftnode.snapshots import Snapshotter
from swarmd.manager.raftnode.transport import Transport
from swarmd.manager.raftnode.waits import ProposalWait, Waits
from swarmd.manager.store import MemoryStore
from swarmd.raft import (
    NONE,
    Config,
    ConfState,
    Entry,
    EntryType,
    InvalidMessage,
    Message,
    ProposalDropped,
    RaftID,
    RawNode,
    Ready,
    SoftState,
    StateType,
    Status,
)

_log = structlog.get_logger(component="raftnode")

T = TypeVar("T")

MAX_PROPOSAL_BYTES = 3 * 1024 * 1024 // 2  # swarmkit rejects transactions above 1.5 MiB
MAX_INBOX = 10000  # messages queued for the core; beyond, drop (raft retries)
_SETTLE_TIMEOUT = 5.0


class RaftNode:
    """One manager's raft member: driver loop, Proposer, leadership and membership changes.

    Loop-confined. Build it with `open`, then `bootstrap` (founders only), `recover`, `run`.
    The membership part of its API (`address_book` ... `is_reachable`) delegates to its
    `Configuration`, which it drives through the `Driver` methods; its `Snapshotter` takes and
    installs the store snapshots.

    Args:
        member: this member's identity (raft id, node id, advertised address).
        storage: the durable raft log (owned: closed by `close`).
        transport: carries messages to the peers.
        settings: timing and snapshot knobs.
        rng: randomness for election timeouts (seed it in tests).
        clock: drives the ticks.
        publish_to: also publish leadership there, by node id (the manager's LeadershipCell).
    """

    def __init__(
        self,
        member: types_pb2.RaftMember,
        storage: DurableStorage,
        transport: Transport,
        settings: RaftSettings | None = None,
        *,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        publish_to: LeadershipSink | None = None,
    ) -> None:
        if member.raft_id == NONE:
            raise errors.InvalidArgument("raft member id must not be 0")
        self._member = member
        self.id = RaftID(member.raft_id)
        self._storage = storage
        self._transport = transport
        self._settings = settings or RaftSettings()
        self._rng = rng or random.Random()
        self._clock: Clock = clock or SystemClock()
        self.leadership = Leadership()
        self._sink = publish_to
        self._log = _log.bind(**{log.RAFT_ID: f"{self.id:x}"})
        self._raw: RawNode | None = None
        self._store: MemoryStore | None = None
        self._waits = Waits()
        self._configuration = Configuration(
            member, transport, self, self._waits, self.leadership, self._log
        )
        self._inbox: deque[Message] = deque()
        self._calls: deque[Callable[[], None]] = deque()
        # Proposals waiting for the next loop turn, stepped together as one (fewer messages).
        self._proposals: list[ProposalWait] = []
        self._ticks = 0
        self._wake = asyncio.Event()
        self._snapshots = Snapshotter(storage, self._configuration, self._wake, self._log)
        self._running = False
        self._applied = 0
        self._term = 0
        self._lead = NONE
        self._is_raft_leader = False
        self._leader_barrier = 0
        self._request_ids = itertools.count(self._rng.getrandbits(48) << 16)
        self._read_ids = itertools.count(1)

    # Construction

    @classmethod
    async def open(
        cls,
        state_dir: Path | str,
        transport: Transport,
        settings: RaftSettings | None = None,
        *,
        member: types_pb2.RaftMember | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        publish_to: LeadershipSink | None = None,
    ) -> RaftNode:
        """Open the raft state in state_dir, recovering this member's identity from it.

        The identity (raft id, node id, address) is saved on first open; later opens read it
        back, taking a new address from `member` if given (a manager may move).

        Raises:
            errors.FailedPrecondition: no identity is saved and `member` is None, or `member`
                names another raft id than the saved one.
            StorageError: the raft state is unreadable.
        """
        path = Path(state_dir)
        identity = await load_identity(path, member)
        storage = await DurableStorage.open(path)
        return cls(
            identity, storage, transport, settings, rng=rng, clock=clock, publish_to=publish_to
        )

    def is_new(self) -> bool:
        """True when nothing is stored yet (a founder to bootstrap, or a member to be added)."""
        return self._storage.is_empty()

    def has_membership(self) -> bool:
        """Does the stored state name any raft member (snapshot or conf-change entry)?

        False for an empty state and for a log written by `LocalProposer` (entries, no
        membership): both need `bootstrap` unless this manager joins an existing cluster.
        """
        return founding.has_membership(self._storage)

    async def bootstrap(self, founders: Sequence[types_pb2.RaftMember]) -> None:
        """Found a new cluster (or adopt a single-voter log): see `founding.bootstrap`.

        Raises:
            errors.FailedPrecondition: the log already has a membership, or recover() ran.
            errors.InvalidArgument: this member is not among the founders, or a log without
                membership is adopted by more than one founder.
        """
        if self._raw is not None:
            raise errors.FailedPrecondition(f"raft member {self.id:x} already has a membership")
        await founding.bootstrap(self._storage, self.id, founders, self._log)

    async def force_new_cluster(self) -> None:
        """Make this member the only voter of its log, to recover a cluster that lost quorum.

        See `founding.force_new_cluster`. Call it after `open` and before `recover`; `run`
        then makes this member a lone voter that leads at once.

        Raises:
            errors.FailedPrecondition: recover() ran already, the log has no membership, or
                this member is not in it.
        """
        if self._raw is not None:
            raise errors.FailedPrecondition(
                f"raft member {self.id:x} is recovered: force a new cluster before recovering"
            )
        await founding.force_new_cluster(self._storage, self._member, self._log)

    def learn_members(self, members: Iterable[types_pb2.RaftMember]) -> None:
        """Record where other members are (a joining manager: the members its Join returned).

        A new member can only answer the leader once it knows the leader's address; it learns
        the rest from the log.
        """
        self._configuration.learn(members)

    async def recover(self, store: MemoryStore) -> None:
        """Restore the store from the latest snapshot and start the core from storage.

        The entries after the snapshot are applied again by `run` (the store is in memory).

        Raises:
            errors.FailedPrecondition: already recovered, or the snapshot payload cannot be
                decoded.
        """
        if self._raw is not None:
            raise errors.FailedPrecondition(f"raft member {self.id:x} is already recovered")
        self._applied = self._snapshots.recover(store)
        hard, conf = self._storage.initial_state()
        self._term = hard.term
        config = Config(
            id=self.id,
            election_tick=self._settings.election_tick,
            heartbeat_tick=self._settings.heartbeat_tick,
            applied=self._applied,
        )
        self._raw = RawNode(config, self._storage, rng=self._rng, logger=_CoreLogger(self._log))
        self._store = store
        self._configuration.restore_conf(conf)

    # The driver loop

    async def run(self) -> None:
        """Drive the member until cancelled (the transport and the ticker run alongside)."""
        raw = self._core()
        store = self._bound_store()
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._transport.run(self), name="raft-transport")
                tg.create_task(self._tick_forever(), name="raft-ticker")
                await self._handle_readies(raw)
                self._campaign_if_alone(raw)
                while True:
                    await self._handle_readies(raw)
                    self._publish_leadership()
                    await self._snapshots.maybe_snapshot(store, self._applied, self._settings)
                    await self._wake.wait()
                    self._wake.clear()
                    self._take_inputs(raw)
        finally:
            self._stop()

    async def _handle_readies(self, raw: RawNode) -> None:
        while raw.has_ready():
            rd = raw.ready()
            # A leader's appends go out while it writes them itself (RawNode contract, 2b).
            early, late = rd.split_messages()
            self._send(early)
            await self._persist(rd)
            self._send(late)
            await self._apply(raw, rd)
            raw.advance(rd)

    async def _persist(self, rd: Ready) -> None:
        """Make the Ready durable before its promises (votes, acknowledgements) leave."""
        if rd.snapshot is not None:
            await self._storage.apply_snapshot(rd.snapshot)
        if rd.entries or rd.hard_state is not None:
            # A Ready that only moves the commit index is not fsynced (etcd does the same):
            # a commit index lost in a power cut is learnt again from the leader.
            await self._storage.append(rd.entries, rd.hard_state, sync=rd.must_sync)
        if rd.hard_state is not None:
            self._term = rd.hard_state.term

    def _send(self, messages: Iterable[Message]) -> None:
        for msg in messages:
            self._transport.send(msg)

    async def _apply(self, raw: RawNode, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._on_soft_state(raw, rd.soft_state)
        if rd.snapshot is not None:
            self._applied = await self._snapshots.install(self._bound_store(), rd.snapshot)
        for entry in rd.committed_entries:
            if entry.index <= self._applied:
                continue  # covered by an installed snapshot
            if entry.type is EntryType.CONF_CHANGE:
                self._configuration.apply(raw, entry)
                self._bound_store().apply_committed((), entry.index)
            else:
                await self._apply_normal(entry)
            self._applied = entry.index
        for read in rd.read_states:
            self._waits.confirm_read(read.request_ctx, read.index)
        self._waits.applied(self._applied)

    def _take_inputs(self, raw: RawNode) -> None:
        """Feed the core what arrived since the last Ready: ticks, messages, local requests."""
        ticks, self._ticks = self._ticks, 0
        # After a stall (a slow disk) do not fire a burst of elections at once.
        for _ in range(min(ticks, self._settings.election_tick)):
            raw.tick()
        while self._inbox:
            msg = self._inbox.popleft()
            try:
                raw.step(msg)
            except InvalidMessage as err:
                self._log.warning("raft message rejected", source=f"{msg.from_:x}", error=str(err))
        while self._calls:
            self._calls.popleft()()
        if self._proposals:
            self._step_proposals(raw)

    def _step_proposals(self, raw: RawNode) -> None:
        """Append the queued proposals as one batch: one append message per follower."""
        batch, self._proposals = self._proposals, []
        live = [w for w in batch if not w.future.done()]  # callers that gave up are skipped
        if not live:
            return
        try:
            last = raw.propose_batch([w.data for w in live])
        except ProposalDropped as err:
            for wait in live:
                wait.future.set_exception(err)
            return
        first = last - len(live) + 1
        for offset, wait in enumerate(live):
            self._waits.add_proposal(first + offset, wait)

    async def _tick_forever(self) -> None:
        while True:
            await self._clock.sleep(self._settings.tick_interval)
            self._ticks += 1
            self._wake.set()

    def _campaign_if_alone(self, raw: RawNode) -> None:
        # A lone voter need not wait an election timeout to lead (swarmkit does the same).
        if self._configuration.state.voters == {self.id} and not self._is_raft_leader:
            raw.campaign()

    def _stop(self) -> None:
        self._running = False
        self._snapshots.stop()
        self._is_raft_leader = False
        self._waits.fail_all(errors.Unavailable(f"raft member {self.id:x} stopped"))
        for call in self._calls:
            call()  # each fails its caller: the core is not stepped any more
        self._calls.clear()
        for wait in self._proposals:
            if not wait.future.done():
                wait.future.set_exception(errors.Unavailable(f"raft member {self.id:x} stopped"))
        self._proposals.clear()
        self._publish(LeaderState(term=self._term))

    # Applying

    def _on_soft_state(self, raw: RawNode, soft: SoftState) -> None:
        was_leader = self._is_raft_leader
        self._lead = soft.lead
        self._is_raft_leader = soft.state is StateType.LEADER
        if self._is_raft_leader and not was_leader:
            # The empty entry of the new term is the last one now; once it is applied, every
            # entry of earlier terms is too.
            self._leader_barrier = raw.status().last_index
            self._log.info("raft leadership won", term=self._term)
        elif was_leader and not self._is_raft_leader:
            self._log.info("raft leadership lost", term=self._term, leader=f"{soft.lead:x}")
            self._waits.fail_proposals(
                errors.Unavailable("raft leadership lost before the proposal committed")
            )

    async def _apply_normal(self, entry: Entry) -> None:
        store = self._bound_store()
        wait = self._waits.take_proposal(entry.index)
        if wait is not None and wait.data == entry.data and not wait.future.done():
            wait.future.set_result(entry.index)
            # The proposer's caller (MemoryStore.update) applies the entry as soon as propose
            # returns; later entries must wait for that.
            try:
                async with asyncio.timeout(_SETTLE_TIMEOUT):
                    await wait.settled.wait()
            except TimeoutError:
                self._log.warning("raft proposal caller did not settle", index=entry.index)
            if store.version >= entry.index:
                return
        elif wait is not None and not wait.future.done():
            wait.future.set_exception(
                errors.Unavailable(f"raft proposal at index {entry.index} was overwritten")
            )
        actions: Sequence[store_pb2.StoreAction] = ()
        if entry.data:
            try:
                actions = store_pb2.InternalRaftRequest.FromString(entry.data).action
            except DecodeError as err:
                self._log.error("undecodable raft entry", index=entry.index, error=str(err))
        store.apply_committed(actions, entry.index)

    def _publish_leadership(self) -> None:
        lead = self._lead
        is_leader = self._is_raft_leader and self._applied >= self._leader_barrier
        self._publish(LeaderState(is_leader, lead, self._addr_of(lead), self._term))

    def _publish(self, state: LeaderState) -> None:
        self.leadership.publish(state)
        if self._sink is not None:
            member = self.address_book.get(state.leader_id) if state.leader_id else None
            self._sink.publish(
                is_leader=state.is_leader,
                leader_id=(member.node_id or None) if member is not None else None,
                leader_addr=state.leader_addr or None,
                term=state.term,
            )

    def _addr_of(self, raft_id: RaftID) -> str:
        return self._member.addr if raft_id == self.id else self.address_book.addr(raft_id)

    # Inputs from the transport (RaftHandler)

    def receive(self, msg: Message) -> None:
        """Queue a peer's message for the core (dropped if not for us or from a removed id)."""
        if msg.to != self.id or self.address_book.is_removed(msg.from_):
            self._log.debug("raft message dropped", to=f"{msg.to:x}", source=f"{msg.from_:x}")
            return
        if len(self._inbox) >= MAX_INBOX:
            return
        self._inbox.append(msg)
        self._wake.set()

    def report_unreachable(self, peer: RaftID) -> None:
        """A message to `peer` was dropped."""
        self._post(lambda raw: raw.report_unreachable(peer))

    def report_snapshot(self, peer: RaftID, *, failed: bool) -> None:
        """A snapshot to `peer` was sent (or not)."""
        self._post(lambda raw: raw.report_snapshot(peer, failed=failed))

    def _post(self, fn: Callable[[RawNode], None]) -> None:
        raw = self._raw
        if raw is None or not self._running:
            return
        self._calls.append(lambda: fn(raw) if self._running else None)
        self._wake.set()

    # The Proposer protocol and reads

    async def propose(self, actions: Sequence[store_pb2.StoreAction]) -> int:
        """Replicate one transaction's actions; return the log index it committed at.

        Raises:
            errors.NotLeader: this member does not lead (leader_addr names the leader).
            errors.InvalidArgument: the transaction is too large for one entry.
            errors.Unavailable: it did not commit within the propose timeout or leadership was
                lost meanwhile (it may still commit), or the node stopped.
        """
        self.check_leader()
        request = store_pb2.InternalRaftRequest(id=next(self._request_ids), action=actions)
        data = request.SerializeToString()
        if len(data) > MAX_PROPOSAL_BYTES:
            raise errors.InvalidArgument(
                f"transaction of {len(data)} bytes exceeds the raft entry limit "
                f"of {MAX_PROPOSAL_BYTES} bytes"
            )
        wait = ProposalWait(data, asyncio.get_running_loop().create_future())
        self._proposals.append(wait)
        self._wake.set()
        try:
            async with asyncio.timeout(self._settings.propose_timeout):
                return await wait.future
        except ProposalDropped as err:
            raise self.dropped_error() from err
        except TimeoutError as err:
            raise errors.Unavailable(
                f"raft proposal not committed within {self._settings.propose_timeout:g}s "
                "(it may still commit)"
            ) from err
        finally:
            wait.settled.set()

    async def read_barrier(self) -> int:
        """Wait until this member's store reflects every write committed before the call.

        A linearizable read (Raft §6.4, read index): the leader confirms its leadership with a
        quorum and names its commit index; this returns once that index is applied here.

        Raises:
            errors.Unavailable: no leader is known, or no answer within the propose timeout.
        """
        ctx = next(self._read_ids).to_bytes(8, "big")
        fut = self._waits.add_read(ctx)
        limit = self._settings.propose_timeout
        try:
            async with asyncio.timeout(limit):
                await self.in_loop(lambda raw: raw.read_index(ctx))
                index = await fut
                if self._applied < index:
                    await self._waits.until_applied(index)
        except ProposalDropped as err:
            raise errors.Unavailable("no raft leader to confirm the read") from err
        except TimeoutError as err:
            raise errors.Unavailable(f"raft read not confirmed within {limit:g}s") from err
        finally:
            self._waits.drop_read(ctx)
        return index

    # The Driver protocol: what the configuration's membership changes need of the loop

    @property
    def propose_timeout(self) -> float:
        """Seconds a proposal or a membership change may take to apply."""
        return self._settings.propose_timeout

    def dropped_error(self) -> errors.SwarmError:
        """The error for a proposal the core dropped."""
        if self._is_raft_leader:
            # Still leading, but handing leadership over: retry shortly, at the new leader.
            return errors.Unavailable("raft leadership is being transferred")
        return errors.NotLeader(self.leadership.state.leader_addr)

    def check_leader(self) -> None:
        """Raise errors.NotLeader or errors.Unavailable unless this member may write now."""
        state = self.leadership.state
        if not self._running:
            raise errors.Unavailable(f"raft member {self.id:x} is not running")
        if not state.is_leader:
            if self._is_raft_leader:
                raise errors.Unavailable("the raft leader is still catching up")
            raise errors.NotLeader(state.leader_addr)

    async def in_loop(self, fn: Callable[[RawNode], T]) -> T:
        """Run fn on the core between two Readys and return its result (or raise its error)."""
        raw = self._raw
        if raw is None or not self._running:
            raise errors.Unavailable(f"raft member {self.id:x} is not running")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def call() -> None:
            if fut.done():
                return
            if not self._running:
                fut.set_exception(errors.Unavailable(f"raft member {self.id:x} stopped"))
                return
            try:
                fut.set_result(fn(raw))
            except ProposalDropped as err:
                fut.set_exception(err)

        self._calls.append(call)
        self._wake.set()
        return await fut

    # Membership, the configuration's (the RaftMembership servicer, the promoter, the role manager)

    @property
    def address_book(self) -> AddressBook:
        """Where each known member is, and the ids removed from the cluster."""
        return self._configuration.address_book

    @property
    def conf_state(self) -> ConfState:
        """The membership as of the applied index."""
        return self._configuration.state

    @property
    def removed(self) -> bool:
        """This member was removed from the cluster."""
        return self._configuration.removed

    async def add_learner(self, member: types_pb2.RaftMember) -> int:
        """Add a non-voting member: see `Configuration.add_learner`."""
        return await self._configuration.add_learner(member)

    async def promote(self, raft_id: RaftID) -> int:
        """Make a learner a voter: see `Configuration.promote`."""
        return await self._configuration.promote(raft_id)

    async def remove_member(self, raft_id: RaftID) -> int:
        """Remove a member unless that loses quorum: see `Configuration.remove_member`."""
        return await self._configuration.remove_member(raft_id)

    async def transfer_leadership(self, to: RaftID = NONE) -> RaftID:
        """Hand leadership over: see `Configuration.transfer_leadership`."""
        return await self._configuration.transfer_leadership(to)

    def member_of_node(self, node_id: str) -> types_pb2.RaftMember | None:
        """The current raft member of the manager `node_id`, None if none."""
        return self._configuration.member_of_node(node_id)

    def is_reachable(self, raft_id: RaftID) -> bool:
        """Is the member this one, or a peer the transport currently reaches?"""
        return self._configuration.is_reachable(raft_id)

    # Replication progress (the promoter), read from the core

    def last_index(self) -> int:
        """The index of the last entry in this member's log (persisted or not)."""
        return self._core().status().last_index

    def match_indexes(self) -> dict[RaftID, int]:
        """Leader only: how far each member's log is known to match ours (empty otherwise).

        Read from the core's progress tracker between two loop turns (the driver is
        loop-confined, so the values are a consistent reading of the last Ready).
        """
        raw = self._core()
        if not self._is_raft_leader:
            return {}
        return {member: pr.match for member, pr in raw.raft.tracker.progress.items()}

    # Introspection

    @property
    def applied(self) -> int:
        """Index of the last entry applied to the store."""
        return self._applied

    def adjust(self, settings: RaftSettings) -> None:
        """Take new settings from the cluster spec while running.

        The snapshot cadence, the entries kept for slow followers, the tick interval and the
        proposal timeout apply at once; the election and heartbeat ticks are the core's
        configuration and apply from this member's next start.
        """
        keep = self._settings
        self._settings = dataclasses.replace(
            settings, election_tick=keep.election_tick, heartbeat_tick=keep.heartbeat_tick
        )
        if self._settings != keep:
            self._log.info(
                "raft settings changed",
                snapshot_interval=self._settings.snapshot_interval,
                keep_entries=self._settings.keep_entries,
                tick_interval=self._settings.tick_interval,
            )

    def status(self) -> Status:
        """The core's status (term, commit, applied, progress when leader)."""
        return self._core().status()

    async def wait_applied(self, index: int) -> None:
        """Wait until the entry at `index` is applied here."""
        if self._applied < index:
            await self._waits.until_applied(index)

    async def close(self) -> None:
        """Close the storage (after `run` ended)."""
        await self._storage.close()

    def _core(self) -> RawNode:
        if self._raw is None:
            raise errors.FailedPrecondition(f"recover raft member {self.id:x} before running it")
        return self._raw

    def _bound_store(self) -> MemoryStore:
        if self._store is None:
            raise errors.FailedPrecondition(f"recover raft member {self.id:x} before running it")
        return self._store


class _CoreLogger:
    """The core's RaftLogger on a bound structlog logger."""

    def __init__(self, logger: structlog.typing.FilteringBoundLogger) -> None:
        self._log = logger

    def debug(self, event: str, **fields: object) -> None:
        self._log.debug(event, **fields)

    def info(self, event: str, **fields: object) -> None:
        self._log.info(event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        self._log.warning(event, **fields)


__all__ = ["MAX_PROPOSAL_BYTES", "RaftNode"]
