"""The embedded job store: one SQLite file (WAL mode) under MXCONV_DATA_DIR.

Every process opens its own connections (one per thread); SQLite's file locks make the
API processes and the job workers agree. Writes that must be atomic (claim, create under a
queue limit, reap) run in ``BEGIN IMMEDIATE`` transactions, which take the write lock first.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy.typing as npt

from .store import (
    FINISHED,
    Heartbeat,
    JobConflict,
    JobNotFound,
    JobRecord,
    JobStore,
    Lease,
    QueueFull,
    Status,
    from_npy,
    to_npy,
)

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
    digest TEXT
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
CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""
#: Readiness fails below this much free space where the store lives: a submit would fail (a
#: WAL that reuses its space lets the probe's one-row write succeed on a full disk).
MIN_FREE_BYTES = 1024 * 1024

#: (name, type) of the jobs columns added after the first release of the schema, oldest first.
ADDED_COLUMNS = (("snapshot", "TEXT"),)

_COLUMNS = (
    "id, status, spec, epochs, created_at, updated_at, started_at, finished_at, cancel_requested_at, "
    "attempts, worker, lease_expires, epoch, loss, elapsed, snapshot, result, error, message, "
    "idempotency_key, digest"
)


# A worker's write applies only while its lease holds: the attempt number fences out stale holders.
_SQL_HEARTBEAT = (
    "UPDATE jobs SET lease_expires = ?, updated_at = ?, epoch = COALESCE(?, epoch), "
    "loss = COALESCE(?, loss), elapsed = COALESCE(?, elapsed), snapshot = COALESCE(?, snapshot) WHERE "
    "id = ? AND status = 'running' AND worker = ? AND attempts = ?"
)
_SQL_FINISH = (
    "UPDATE jobs SET status = ?, finished_at = ?, updated_at = ?, lease_expires = NULL, "
    "result = ?, error = ? WHERE "
    "id = ? AND status = 'running' AND worker = ? AND attempts = ?"
)
_SQL_REQUEUE = (
    "UPDATE jobs SET status = 'queued', worker = NULL, lease_expires = NULL, updated_at = ?, "
    "attempts = attempts - 1, message = ? WHERE "
    "id = ? AND status = 'running' AND worker = ? AND attempts = ?"
)


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/file`` or ``sqlite:////absolute/file`` (SQLAlchemy's convention)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"MXCONV_JOBS_URL={url!r}: expected sqlite:///<path to a file>")
    return Path(url[len(prefix) :])


class SqliteJobStore(JobStore):
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._pid = os.getpid()
        db = self._conn()
        db.executescript(SCHEMA)  # idempotent: IF NOT EXISTS throughout
        # Columns added since a store file was first made (CREATE TABLE IF NOT EXISTS keeps
        # an existing table as it was).
        columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
        for name, kind in ADDED_COLUMNS:
            if name not in columns:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    @classmethod
    def from_url(cls, url: str) -> SqliteJobStore:
        return cls(path_from_url(url))

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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- rows --------------------------------------------------------------------------

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            id=row["id"],
            status=row["status"],
            spec=json.loads(row["spec"]),
            epochs=row["epochs"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            cancel_requested_at=row["cancel_requested_at"],
            attempts=row["attempts"],
            worker=row["worker"],
            lease_expires=row["lease_expires"],
            epoch=row["epoch"],
            loss=row["loss"],
            elapsed=row["elapsed"],
            snapshot=None if row["snapshot"] is None else json.loads(row["snapshot"]),
            result=None if row["result"] is None else json.loads(row["result"]),
            error=row["error"],
            message=row["message"],
            idempotency_key=row["idempotency_key"],
            digest=row["digest"],
        )

    def _get(self, db: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608
        return None if row is None else self._record(row)

    @staticmethod
    def _put_arrays(db: sqlite3.Connection, job_id: str, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO job_arrays (job_id, name, data) VALUES (?, ?, ?)",
            [(job_id, name, to_npy(arr)) for name, arr in arrays.items()],
        )

    # -- the API side ------------------------------------------------------------------

    def create(
        self,
        spec: Mapping[str, Any],
        arrays: Mapping[str, npt.NDArray[Any]],
        *,
        epochs: int,
        max_queued: int | None = None,
        idempotency_key: str | None = None,
        digest: str | None = None,
    ) -> tuple[JobRecord, bool]:
        blobs = {name: to_npy(arr) for name, arr in arrays.items()}  # outside the write lock
        job_id = uuid.uuid4().hex
        now = self.clock()
        with self._tx() as db:
            if idempotency_key is not None:
                row = db.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE idempotency_key = ?",  # noqa: S608
                    (idempotency_key,),
                ).fetchone()
                if row is not None:
                    existing = self._record(row)
                    if digest is not None and existing.digest not in (None, digest):
                        raise JobConflict(
                            f"Idempotency-Key {idempotency_key!r} was already used for a different "
                            f"job ({existing.id}); use a new key for a new job"
                        )
                    return existing, False
            if max_queued is not None:
                queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    raise QueueFull(queued, max_queued)
            db.execute(
                "INSERT INTO jobs (id, status, spec, epochs, created_at, updated_at, idempotency_key, "
                "digest) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)",
                (job_id, json.dumps(dict(spec)), epochs, now, now, idempotency_key, digest),
            )
            db.executemany(
                "INSERT INTO job_arrays (job_id, name, data) VALUES (?, ?, ?)",
                [(job_id, name, data) for name, data in blobs.items()],
            )
            record = self._get(db, job_id)
        assert record is not None
        return record, True

    def get(self, job_id: str) -> JobRecord | None:
        return self._get(self._conn(), job_id)

    def list(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        db = self._conn()
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        total = db.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]  # noqa: S608
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*args, limit, offset],
        ).fetchall()
        return [self._record(r) for r in rows], int(total)

    def count(self, status: str) -> int:
        return int(
            self._conn().execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]
        )

    def losses(self, job_id: str) -> list[float]:
        rows = (
            self._conn()
            .execute("SELECT loss FROM job_losses WHERE job_id = ? ORDER BY epoch", (job_id,))
            .fetchall()
        )
        return [float(r[0]) for r in rows]

    def arrays(self, job_id: str, names: Iterable[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        rows = (
            self._conn().execute("SELECT name, data FROM job_arrays WHERE job_id = ?", (job_id,)).fetchall()
        )
        wanted = None if names is None else set(names)
        return {r["name"]: from_npy(r["data"]) for r in rows if wanted is None or r["name"] in wanted}

    def cancel(self, job_id: str) -> JobRecord:
        now = self.clock()
        with self._tx() as db:
            job = self._get(db, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.status in FINISHED:
                raise JobConflict(f"job {job_id} has already {job.status}; there is nothing to cancel")
            if job.status == "queued":
                db.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested_at = ?, finished_at = ?, "
                    "updated_at = ?, message = 'cancelled before it started' WHERE id = ?",
                    (now, now, now, job_id),
                )
            elif job.cancel_requested_at is None:
                db.execute(
                    "UPDATE jobs SET cancel_requested_at = ?, updated_at = ?, "
                    "message = 'cancel requested; the worker stops at the end of this epoch' WHERE id = ?",
                    (now, now, job_id),
                )
            record = self._get(db, job_id)
        assert record is not None
        return record

    def delete(self, job_id: str) -> None:
        with self._tx() as db:
            job = self._get(db, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.status not in FINISHED:
                raise JobConflict(
                    f"job {job_id} is {job.status}; only finished jobs can be deleted (cancel it first)"
                )
            db.execute("DELETE FROM job_losses WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM job_arrays WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def ping(self) -> None:
        fs = os.statvfs(self.path.parent)
        free = fs.f_bavail * fs.f_frsize
        if free < MIN_FREE_BYTES:
            where = self.path.parent
            raise sqlite3.OperationalError(f"database or disk is full ({free} bytes free in {where})")
        with self._tx() as db:  # a real write: a read-only file or disk fails here
            db.execute("INSERT OR REPLACE INTO store_probe (id, at) VALUES (1, ?)", (self.clock(),))

    # -- the worker side ---------------------------------------------------------------

    def claim(self, worker: str, lease_seconds: float) -> tuple[JobRecord, Lease] | None:
        db = self._conn()
        # A cheap read first, so idle workers polling the queue never take the write lock.
        if db.execute("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1").fetchone() is None:
            return None
        now = self.clock()
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            job_id = row["id"]
            db.execute(
                "UPDATE jobs SET status = 'running', worker = ?, attempts = attempts + 1, lease_expires = ?, "
                "started_at = ?, updated_at = ?, epoch = 0, loss = NULL, elapsed = 0, snapshot = NULL "
                "WHERE id = ?",
                (worker, now + lease_seconds, now, now, job_id),
            )
            db.execute("DELETE FROM job_losses WHERE job_id = ?", (job_id,))
            record = self._get(db, job_id)
        assert record is not None
        return record, Lease(job_id, worker, record.attempts)

    def heartbeat(
        self,
        lease: Lease,
        lease_seconds: float,
        *,
        epoch: int | None = None,
        loss: float | None = None,
        elapsed: float | None = None,
        new_losses: Mapping[int, float] | None = None,
        snapshot: Mapping[str, Any] | None = None,
    ) -> Heartbeat:
        now = self.clock()
        hold = (lease.job_id, lease.worker, lease.attempt)
        snap = None if snapshot is None else json.dumps(snapshot)
        with self._tx() as db:
            cur = db.execute(
                _SQL_HEARTBEAT,
                (now + lease_seconds, now, epoch, loss, elapsed, snap, *hold),
            )
            if cur.rowcount == 0:
                return "lost"
            if new_losses:
                db.executemany(
                    "INSERT OR REPLACE INTO job_losses (job_id, epoch, loss) VALUES (?, ?, ?)",
                    [(lease.job_id, e, float(v)) for e, v in new_losses.items()],
                )
            row = db.execute("SELECT cancel_requested_at FROM jobs WHERE id = ?", (lease.job_id,)).fetchone()
        return "cancel" if row["cancel_requested_at"] is not None else "ok"

    def finish(
        self,
        lease: Lease,
        status: Status,
        *,
        result: Mapping[str, Any] | None = None,
        arrays: Mapping[str, npt.NDArray[Any]] | None = None,
        error: str | None = None,
    ) -> bool:
        if status not in FINISHED:
            raise ValueError(f"finish() takes a final status, not {status!r}")
        now = self.clock()
        with self._tx() as db:
            cur = db.execute(
                _SQL_FINISH,
                (
                    status,
                    now,
                    now,
                    None if result is None else json.dumps(dict(result)),
                    error,
                    lease.job_id,
                    lease.worker,
                    lease.attempt,
                ),
            )
            if cur.rowcount == 0:
                return False
            if arrays:
                self._put_arrays(db, lease.job_id, arrays)
        return True

    def requeue(self, lease: Lease, reason: str) -> bool:
        now = self.clock()
        with self._tx() as db:
            cur = db.execute(
                _SQL_REQUEUE,
                (now, reason, lease.job_id, lease.worker, lease.attempt),
            )
            return cur.rowcount > 0

    def reap(self, max_attempts: int) -> list[str]:
        db = self._conn()
        now = self.clock()
        expired = "status = 'running' AND lease_expires < ?"
        if db.execute(f"SELECT 1 FROM jobs WHERE {expired} LIMIT 1", (now,)).fetchone() is None:  # noqa: S608
            return []
        reaped = []
        with self._tx() as db:
            rows = db.execute(
                f"SELECT id, attempts, worker, cancel_requested_at FROM jobs WHERE {expired}",  # noqa: S608
                (now,),
            ).fetchall()
            for r in rows:
                lost = (
                    f"worker {r['worker']} stopped responding (its lease expired) "
                    f"during attempt {r['attempts']}"
                )
                if r["cancel_requested_at"] is not None:
                    db.execute(
                        "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?, "
                        "lease_expires = NULL, message = ? WHERE id = ?",
                        (now, now, f"cancelled; {lost}", r["id"]),
                    )
                elif r["attempts"] >= max_attempts:
                    db.execute(
                        "UPDATE jobs SET status = 'failed', finished_at = ?, updated_at = ?, "
                        "lease_expires = NULL, error = ? WHERE id = ?",
                        (
                            now,
                            now,
                            f"{lost}, the last of {max_attempts} allowed (MXCONV_JOB_MAX_ATTEMPTS). "
                            "The worker may have run out of memory: try a smaller sample or batch size, "
                            "then resubmit",
                            r["id"],
                        ),
                    )
                else:
                    db.execute(
                        "UPDATE jobs SET status = 'queued', worker = NULL, lease_expires = NULL, "
                        "updated_at = ?, message = ? WHERE id = ?",
                        (now, f"re-queued: {lost}", r["id"]),
                    )
                reaped.append(r["id"])
        return reaped
