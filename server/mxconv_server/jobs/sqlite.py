"""The embedded job store: one SQLite file (WAL mode) under MXCONV_DATA_DIR.

Only the store's primitives live here (the rules are in rules.py). Every process opens its
own connections (one per thread); SQLite's file locks make the API processes and the job
workers agree. Each write runs in a ``BEGIN IMMEDIATE`` transaction, which takes the write
lock first, so a create under the queue limit or a fenced compare-and-set is atomic.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .records import FIELDS, JSON_FIELDS, Change, Fence, Heartbeat, Inserted, JobRecord, StoreUnavailable
from .store import JobStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    epochs INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    cancel_requested_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_expires REAL,
    epoch INTEGER NOT NULL DEFAULT 0,
    loss REAL,
    elapsed REAL,
    snapshot TEXT,
    result TEXT,
    error TEXT,
    message TEXT,
    idempotency_key TEXT UNIQUE,
    digest TEXT,
    checkpoint TEXT,
    checkpoint_epoch INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS job_arrays (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE TABLE IF NOT EXISTS job_losses (
    job_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    loss REAL NOT NULL,
    PRIMARY KEY (job_id, epoch)
);
CREATE TABLE IF NOT EXISTS job_metrics (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (job_id, name, epoch)
);
CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""
#: Readiness fails below this much free space where the store lives: a submit would fail (a
#: WAL that reuses its space lets the probe's one-row write succeed on a full disk).
MIN_FREE_BYTES = 1024 * 1024

#: (name, type) of the jobs columns added after the first release of the schema, oldest first.
ADDED_COLUMNS = (
    ("snapshot", "TEXT"),
    ("checkpoint", "TEXT"),
    ("checkpoint_epoch", "INTEGER NOT NULL DEFAULT 0"),
)

#: SQLite's primary result codes that mean "cannot use the store now": BUSY, LOCKED, NOMEM,
#: READONLY, IOERR, FULL, CANTOPEN, PROTOCOL. Others (a malformed statement) are bugs.
OUTAGE_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
CHECK = "that MXCONV_DATA_DIR is writable and its disk has space"

_COLUMNS = ", ".join(FIELDS)
_SELECT = f"SELECT {_COLUMNS} FROM jobs"  # noqa: S608 - column names are ours


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/file`` or ``sqlite:////absolute/file`` (SQLAlchemy's convention)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"MXCONV_JOBS_URL={url!r}: expected sqlite:///<path to a file>")
    return Path(url[len(prefix) :])


def _outage(error: Exception) -> StoreUnavailable | None:
    if not isinstance(error, sqlite3.OperationalError):
        return None
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+; before, every one counts
    return StoreUnavailable(error, CHECK) if code is None or code & 0xFF in OUTAGE_CODES else None


def _column(name: str, value: Any) -> Any:
    return json.dumps(value) if name in JSON_FIELDS and value is not None else value


def _record(row: sqlite3.Row) -> JobRecord:
    values = {name: row[name] for name in FIELDS}
    for name in JSON_FIELDS:
        if values[name] is not None:
            values[name] = json.loads(values[name])
    return JobRecord(**values)


def _fence_sql(fence: Fence) -> tuple[str, list[Any]]:
    where = "status = ? AND worker IS ? AND attempts = ?"
    args: list[Any] = [fence.status, fence.worker, fence.attempt]
    if fence.cancel_requested is not None:
        where += " AND (cancel_requested_at IS NOT NULL) = ?"
        args.append(fence.cancel_requested)
    if fence.expired_by is not None:
        where += " AND lease_expires < ?"
        args.append(fence.expired_by)
    return where, args


class SqliteJobStore(JobStore):
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._pid = os.getpid()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self._conn()
            db.executescript(SCHEMA)  # idempotent: IF NOT EXISTS throughout
            # Columns added since a store file was first made (CREATE TABLE IF NOT EXISTS
            # keeps an existing table as it was).
            columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, kind in ADDED_COLUMNS:
                if name not in columns:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        except sqlite3.Error as e:  # at open, any of them means the store cannot be used
            raise StoreUnavailable(e, CHECK) from e

    @classmethod
    def from_url(cls, url: str) -> SqliteJobStore:
        return cls(path_from_url(url))

    def _outage(self, error: Exception) -> StoreUnavailable | None:
        return _outage(error)

    # -- connections -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked: never share a parent's connection
            self._local = threading.local()
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its start."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _get_in(self, db: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    # -- reads -------------------------------------------------------------------------

    def _get(self, job_id: str) -> JobRecord | None:
        return self._get_in(self._conn(), job_id)

    def _list(self, status: str | None, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        db = self._conn()
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        total = db.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]  # noqa: S608
        rows = db.execute(f"{_SELECT} {where} ORDER BY seq DESC LIMIT ? OFFSET ?", [*args, limit, offset])
        return [_record(r) for r in rows.fetchall()], int(total)

    def _count(self, status: str) -> int:
        return int(
            self._conn().execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]
        )

    def _losses(self, job_id: str) -> list[float]:
        rows = self._conn().execute("SELECT loss FROM job_losses WHERE job_id = ? ORDER BY epoch", (job_id,))
        return [float(r[0]) for r in rows.fetchall()]

    def _history(self, job_id: str) -> dict[str, list[float]]:
        rows = self._conn().execute(
            "SELECT name, value FROM job_metrics WHERE job_id = ? ORDER BY name, epoch", (job_id,)
        )
        out: dict[str, list[float]] = {}
        for r in rows.fetchall():
            out.setdefault(r["name"], []).append(float(r["value"]))
        return out

    def _blobs(self, job_id: str, names: set[str] | None) -> dict[str, bytes]:
        if names is None:
            rows = self._conn().execute("SELECT name, data FROM job_arrays WHERE job_id = ?", (job_id,))
        else:  # only the blobs asked for are read: a model's weights without its training data
            marks = ", ".join("?" * len(names))
            rows = self._conn().execute(
                f"SELECT name, data FROM job_arrays WHERE job_id = ? AND name IN ({marks})",  # noqa: S608
                [job_id, *sorted(names)],
            )
        return {r["name"]: r["data"] for r in rows.fetchall()}

    def _expired(self, now: float) -> list[JobRecord]:
        rows = self._conn().execute(f"{_SELECT} WHERE status = 'running' AND lease_expires < ?", (now,))
        return [_record(r) for r in rows.fetchall()]

    # -- writes ------------------------------------------------------------------------

    def _insert(self, record: JobRecord, blobs: Mapping[str, bytes], max_queued: int | None) -> Inserted:
        values = {name: _column(name, getattr(record, name)) for name in FIELDS}
        with self._tx() as db:
            if record.idempotency_key is not None:
                row = db.execute(f"{_SELECT} WHERE idempotency_key = ?", (record.idempotency_key,)).fetchone()
                if row is not None:
                    return Inserted("exists", existing=_record(row))
            if max_queued is not None:
                queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    return Inserted("full", queued=int(queued))
            marks = ", ".join("?" * len(values))
            db.execute(f"INSERT INTO jobs ({_COLUMNS}) VALUES ({marks})", list(values.values()))  # noqa: S608
            db.executemany(
                "INSERT INTO job_arrays (job_id, name, data) VALUES (?, ?, ?)",
                [(record.id, name, data) for name, data in blobs.items()],
            )
        return Inserted("created")

    def _claim_oldest(self, worker: str, now: float, change: Change) -> JobRecord | None:
        db = self._conn()
        # A cheap read first, so idle workers polling the queue never take the write lock.
        if db.execute("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1").fetchone() is None:
            return None
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            self._write(db, row["id"], "", [], change, None)
            return self._get_in(db, row["id"])

    def _cas(
        self, job_id: str, fence: Fence, change: Change, blobs: Mapping[str, bytes] | None = None
    ) -> Heartbeat:
        where, args = _fence_sql(fence)
        with self._tx() as db:
            if not self._write(db, job_id, f" AND {where}", args, change, blobs):
                return "lost"
            row = db.execute("SELECT cancel_requested_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return "ok" if row["cancel_requested_at"] is None else "cancel"

    @staticmethod
    def _write(
        db: sqlite3.Connection,
        job_id: str,
        where: str,
        args: list[Any],
        change: Change,
        blobs: Mapping[str, bytes] | None,
    ) -> bool:
        """``change`` to the job if it meets ``where``, inside the caller's transaction."""
        sets = [f"{name} = ?" for name in change.fields] + [f"{name} = {name} + ?" for name in change.add]
        values = [_column(name, value) for name, value in change.fields.items()] + list(change.add.values())
        sql = f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?{where}"  # noqa: S608 - names checked by Change
        if db.execute(sql, [*values, job_id, *args]).rowcount == 0:
            return False
        if change.trim_history:
            kept = "(SELECT checkpoint_epoch FROM jobs WHERE id = ?)"
            for table in ("job_losses", "job_metrics"):
                db.execute(f"DELETE FROM {table} WHERE job_id = ? AND epoch > {kept}", (job_id, job_id))  # noqa: S608
        if change.losses:
            db.executemany(
                "INSERT OR REPLACE INTO job_losses (job_id, epoch, loss) VALUES (?, ?, ?)",
                [(job_id, epoch, loss) for epoch, loss in change.losses.items()],
            )
        if change.metrics:
            db.executemany(
                "INSERT OR REPLACE INTO job_metrics (job_id, name, epoch, value) VALUES (?, ?, ?, ?)",
                [(job_id, name, e, v) for name, series in change.metrics.items() for e, v in series.items()],
            )
        if blobs:
            db.executemany(
                "INSERT OR REPLACE INTO job_arrays (job_id, name, data) VALUES (?, ?, ?)",
                [(job_id, name, data) for name, data in blobs.items()],
            )
        return True

    def _remove(self, job_id: str, fence: Fence) -> bool:
        where, args = _fence_sql(fence)
        with self._tx() as db:
            if db.execute(f"DELETE FROM jobs WHERE id = ? AND {where}", [job_id, *args]).rowcount == 0:  # noqa: S608
                return False
            for table in ("job_losses", "job_metrics", "job_arrays"):
                db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))  # noqa: S608
        return True

    def _ping(self) -> None:
        fs = os.statvfs(self.path.parent)
        free = fs.f_bavail * fs.f_frsize
        if free < MIN_FREE_BYTES:
            raise StoreUnavailable(
                f"database or disk is full ({free} bytes free in {self.path.parent})", CHECK
            )
        with self._tx() as db:  # a real write: a read-only file or disk fails here
            db.execute("INSERT OR REPLACE INTO store_probe (id, at) VALUES (1, ?)", (self.clock(),))
