"""Durable Raft storage: log entries, hard state and snapshots in SQLite plus snapshot files.

Manager layer, raft node. `LocalProposer` (local.py) persists its single-voter log here; the Raft
driver will persist each Ready here before sending its messages (decisions.md, "Consensus and
storage"). Layout of a state dir:

    raft.db                     SQLite, WAL mode, synchronous=FULL: tables entries, hard_state,
                                snapshots (metadata of the latest snapshot)
    snapshots/snap-<index>.bin  the latest snapshot payload, written atomically

Every disk operation runs in a worker thread (`asyncio.to_thread`, or the executor given to `open`,
such as the Raft driver's own single disk thread), one at a time (an asyncio.Lock serialises use of
the single connection), so the event loop never blocks on fsync. SQLite errors
and damaged files surface as `StorageError` (a FailedPrecondition) naming the file, never as a
raw sqlite3 traceback. Files are created 0600, directories 0700.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import hashlib
import itertools
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog

from swarmd import errors

_log = structlog.get_logger(component="raftstorage")

R = TypeVar("R")

DB_NAME = "raft.db"
SNAPSHOT_DIR = "snapshots"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx  INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    type INTEGER NOT NULL,
    data BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS hard_state (
    id         INTEGER PRIMARY KEY CHECK (id = 0),
    term       INTEGER NOT NULL,
    vote       INTEGER NOT NULL,
    commit_idx INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    idx    INTEGER PRIMARY KEY,
    term   INTEGER NOT NULL,
    conf   BLOB    NOT NULL,
    file   TEXT    NOT NULL,
    size   INTEGER NOT NULL,
    sha256 TEXT    NOT NULL
);
"""


class StorageError(errors.FailedPrecondition):
    """The raft state on disk cannot be read or written; `path` names the file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"raft storage {path}: {message}")
        self.path = path


class EntryType(enum.IntEnum):
    """What a log entry carries (etcd raftpb.EntryType)."""

    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One raft log entry as stored; data is opaque here (an InternalRaftRequest for NORMAL)."""

    index: int
    term: int
    type: EntryType
    data: bytes


@dataclass(frozen=True, slots=True)
class HardState:
    """What a raft node must remember across restarts besides its log (Raft §5.1, Figure 2)."""

    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot sits in the log; conf is the serialized membership (opaque here)."""

    index: int
    term: int
    conf: bytes = b""


class RaftStorage:
    """The durable raft state of one manager. Open with `await RaftStorage.open(state_dir)`.

    Loop-confined; each method awaits its disk work in a worker thread. Index bounds
    (`first_index`, `last_index`, `snapshot_index`) are cached and read synchronously.
    """

    def __init__(
        self, state_dir: Path, conn: sqlite3.Connection, executor: Executor | None = None
    ) -> None:
        self.dir = state_dir
        self._executor = executor
        self.path = state_dir / DB_NAME
        self._conn: sqlite3.Connection | None = conn
        self._lock = asyncio.Lock()
        self._first = 1
        self._last = 0
        self._snapshot: SnapshotMeta | None = None

    @classmethod
    async def open(cls, state_dir: Path | str, *, executor: Executor | None = None) -> RaftStorage:
        """Open (creating if needed) the raft state in state_dir.

        `executor` runs the disk work (default: asyncio's default thread pool).

        Raises:
            StorageError: the database is unreadable, damaged or of another schema version.
        """
        path = Path(state_dir)
        conn = await _in_thread(executor, functools.partial(_connect, path))
        storage = cls(path, conn, executor)
        await storage._run("read the log bounds", storage._load_bounds)
        _log.info(
            "raft storage opened",
            path=str(storage.path),
            first_index=storage.first_index,
            last_index=storage.last_index,
            snapshot_index=storage.snapshot_index,
        )
        return storage

    @property
    def first_index(self) -> int:
        """Index of the first entry in the log (snapshot index + 1 when the log is empty)."""
        return self._first

    @property
    def last_index(self) -> int:
        """Index of the last entry (the snapshot index when the log is empty; 0 when new)."""
        return self._last

    @property
    def snapshot_index(self) -> int:
        """Index of the latest snapshot, 0 when there is none."""
        return 0 if self._snapshot is None else self._snapshot.index

    async def append(
        self, entries: Sequence[LogEntry], hard_state: HardState | None = None, *, sync: bool = True
    ) -> None:
        """Durably append entries (and set the hard state) in one transaction.

        sync=False commits without an fsync (SQLite synchronous=NORMAL for this transaction):
        the write survives the process dying, and becomes durable with the next synced one.

        Entries must be consecutive and start at most at last_index + 1; existing entries at
        or after the first one are replaced (a Raft follower overwriting a conflicting suffix).

        Raises:
            ValueError: entries are not consecutive or leave a gap.
            StorageError: the write failed.
        """
        if entries:
            first = entries[0].index
            if first > self._last + 1 or first <= self.snapshot_index:
                raise ValueError(
                    f"append at index {first} does not follow the log "
                    f"(snapshot {self.snapshot_index}, last {self._last})"
                )
            for prev, cur in itertools.pairwise(entries):
                if cur.index != prev.index + 1:
                    raise ValueError(f"entries not consecutive at index {cur.index}")
        await self._run("append entries", lambda: self._append(entries, hard_state, sync))
        if entries:
            if self._last < self._first:  # the log was empty
                self._first = entries[0].index
            self._last = entries[-1].index

    async def entries(self, lo: int, hi: int) -> list[LogEntry]:
        """Entries with lo <= index < hi that are still in the log, in index order."""
        rows = await self._run(
            "read entries",
            lambda: (
                self._db()
                .execute(
                    "SELECT idx, term, type, data FROM entries WHERE idx >= ? AND idx < ? "
                    "ORDER BY idx",
                    (lo, hi),
                )
                .fetchall()
            ),
        )
        return [LogEntry(i, t, EntryType(k), bytes(d)) for i, t, k, d in rows]

    async def hard_state(self) -> HardState:
        """The persisted hard state (all zero when never set)."""
        row = await self._run(
            "read the hard state",
            lambda: (
                self._db()
                .execute("SELECT term, vote, commit_idx FROM hard_state WHERE id = 0")
                .fetchone()
            ),
        )
        return HardState() if row is None else HardState(*row)

    async def set_hard_state(self, hard_state: HardState) -> None:
        """Durably replace the hard state."""
        await self._run("write the hard state", lambda: self._append((), hard_state))

    async def save_snapshot(
        self, meta: SnapshotMeta, data: bytes, *, replace_log: bool = False
    ) -> None:
        """Durably store a snapshot at meta.index as the latest one; older ones are deleted.

        The payload file is made durable (temp, fsync, rename, dir fsync) before the database
        points at it, so a crash leaves either the old or the new snapshot, never a torn one.
        With `replace_log` (a snapshot received from a Raft leader) every entry is dropped in
        the same transaction, even those after the snapshot: they may conflict with it.
        """
        if meta.index < self.snapshot_index:
            raise ValueError(f"snapshot {meta.index} is older than {self.snapshot_index}")
        stale = replace_log or meta.index > self._last
        await self._run("save a snapshot", lambda: self._save_snapshot(meta, data, stale))
        self._snapshot = meta
        if stale:
            self._first, self._last = meta.index + 1, meta.index

    async def load_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        """The latest snapshot and its payload, or None.

        Raises:
            StorageError: the payload file is missing or does not match its recorded checksum.
        """
        return await self._run("load the snapshot", self._load_snapshot)

    async def compact(self, upto: int) -> None:
        """Delete the entries with index <= upto (covered by the latest snapshot).

        Raises:
            ValueError: upto is beyond the latest snapshot.
        """
        if upto > self.snapshot_index:
            raise ValueError(f"cannot compact to {upto}: latest snapshot is {self.snapshot_index}")
        if upto < self._first:
            return
        await self._run(
            "compact the log", lambda: self._write("DELETE FROM entries WHERE idx <= ?", (upto,))
        )
        self._first = upto + 1

    async def close(self) -> None:
        """Close the database; further calls fail."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await _in_thread(self._executor, conn.close)

    async def _run(self, what: str, fn: Callable[[], R]) -> R:
        async with self._lock:
            return await _in_thread(self._executor, functools.partial(self._guarded, what, fn))

    def _guarded(self, what: str, fn: Callable[[], R]) -> R:
        try:
            return fn()
        except sqlite3.Error as err:
            raise StorageError(self.path, f"cannot {what}: {err}") from err
        except OSError as err:
            raise StorageError(self.path, f"cannot {what}: {err}") from err

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise errors.Unavailable(f"raft storage {self.path} is closed")
        return self._conn

    def _write(self, sql: str, params: tuple[int, ...]) -> None:
        with _transaction(self._db()) as db:
            db.execute(sql, params)

    def _append(
        self, entries: Sequence[LogEntry], hard_state: HardState | None, sync: bool = True
    ) -> None:
        db = self._db()
        if sync:
            self._write_entries(db, entries, hard_state)
            return
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._write_entries(db, entries, hard_state)
        finally:
            db.execute("PRAGMA synchronous=FULL")

    @staticmethod
    def _write_entries(
        conn: sqlite3.Connection, entries: Sequence[LogEntry], hard_state: HardState | None
    ) -> None:
        with _transaction(conn) as db:
            if entries:
                db.execute("DELETE FROM entries WHERE idx >= ?", (entries[0].index,))
                db.executemany(
                    "INSERT INTO entries (idx, term, type, data) VALUES (?, ?, ?, ?)",
                    [(e.index, e.term, int(e.type), e.data) for e in entries],
                )
            if hard_state is not None:
                db.execute(
                    "INSERT OR REPLACE INTO hard_state (id, term, vote, commit_idx) "
                    "VALUES (0, ?, ?, ?)",
                    (hard_state.term, hard_state.vote, hard_state.commit),
                )

    def _load_bounds(self) -> None:
        db = self._db()
        lo, hi = db.execute("SELECT MIN(idx), MAX(idx) FROM entries").fetchone()
        row = db.execute(
            "SELECT idx, term, conf FROM snapshots ORDER BY idx DESC LIMIT 1"
        ).fetchone()
        self._snapshot = None if row is None else SnapshotMeta(row[0], row[1], bytes(row[2]))
        snap = self.snapshot_index
        if lo is None:
            self._first, self._last = snap + 1, snap
            return
        if lo > snap + 1:
            raise StorageError(
                self.path, f"log starts at index {lo} but the latest snapshot is at {snap}"
            )
        self._first, self._last = lo, max(hi, snap)

    def _save_snapshot(self, meta: SnapshotMeta, data: bytes, stale: bool) -> None:
        snapdir = self.dir / SNAPSHOT_DIR
        snapdir.mkdir(mode=0o700, exist_ok=True)
        name = f"snap-{meta.index:020d}.bin"
        _write_atomically(snapdir / name, data)
        digest = hashlib.sha256(data).hexdigest()
        with _transaction(self._db()) as db:
            if stale:  # a snapshot beyond the log (sent by a leader) supersedes all of it
                db.execute("DELETE FROM entries")
            db.execute("DELETE FROM snapshots")
            db.execute(
                "INSERT INTO snapshots (idx, term, conf, file, size, sha256) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (meta.index, meta.term, meta.conf, name, len(data), digest),
            )
        for old in snapdir.iterdir():
            if old.name != name:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def _load_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        row = (
            self._db()
            .execute(
                "SELECT idx, term, conf, file, size, sha256 FROM snapshots "
                "ORDER BY idx DESC LIMIT 1"
            )
            .fetchone()
        )
        if row is None:
            return None
        idx, term, conf, name, size, digest = row
        path = self.dir / SNAPSHOT_DIR / name
        try:
            data = path.read_bytes()
        except OSError as err:
            raise StorageError(path, f"cannot read snapshot {idx}: {err.strerror}") from err
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise StorageError(path, f"snapshot {idx} is damaged (size or checksum mismatch)")
        return SnapshotMeta(idx, term, bytes(conf)), data


async def _in_thread(executor: Executor | None, fn: Callable[[], R]) -> R:
    if executor is None:
        return await asyncio.to_thread(fn)
    return await asyncio.get_running_loop().run_in_executor(executor, fn)


def _connect(state_dir: Path) -> sqlite3.Connection:
    """Open the database, creating the dir (0700), file (0600) and schema; check it is sane."""
    path = state_dir / DB_NAME
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file ourselves so it is 0600 from the start; SQLite gives its -wal and
        # -shm files the database file's permissions.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as err:
        raise StorageError(path, f"cannot create: {err.strerror}") from err
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(path, f"cannot use WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StorageError(path, f"database is damaged: {check}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StorageError(path, f"schema version {version}, this build reads {SCHEMA_VERSION}")
        with _transaction(conn) as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.Error as err:
        conn.close()
        raise StorageError(path, f"unreadable raft database: {err}") from err
    except StorageError:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (durable on return: synchronous=FULL), ROLLBACK on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write path so that a crash leaves the old content or the new, whole and durable."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


__all__ = [
    "DB_NAME",
    "SNAPSHOT_DIR",
    "EntryType",
    "HardState",
    "LogEntry",
    "RaftStorage",
    "SnapshotMeta",
    "StorageError",
]
