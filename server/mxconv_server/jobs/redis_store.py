"""The Redis job store (``MXCONV_JOBS_URL=redis://host:port/db``), for API replicas and job
workers on any number of hosts. Same contract as the embedded SQLite store.

Every change that must be atomic (create under the queue limit, claim, heartbeat, finish,
requeue, reap, cancel, delete) is one Lua script, which Redis runs with nothing in between.
Worker writes are fenced exactly as in SQLite: they apply only while the job is running under
the same worker and attempt, so a worker whose lease was reaped can no longer touch the job.

Keys, all under a prefix (``mxconv:`` by default; ``?prefix=other:`` in the URL lets several
deployments share one Redis):

* ``job:<id>`` hash: the record's fields (spec and result as JSON; absent field = None) and
  ``seq``, the creation order;
* ``job:<id>:arrays`` hash: array name -> ``.npy`` bytes (never pickle);
* ``job:<id>:losses`` hash: epoch -> loss of the current attempt;
* ``all`` and ``status:<status>`` sorted sets of ids by ``seq``: listing, counting, and the
  queue itself (``status:queued``, oldest first);
* ``leases`` sorted set of running ids by lease expiry: what :meth:`reap` scans;
* ``idem:<key>`` -> id, for idempotency keys; ``seq``, the counter;
* ``workers`` hash: worker id -> the time it last claimed or renewed (for /metrics).

Durability is Redis's: run it with ``appendonly yes`` (docker-compose.yml does), so records
survive a restart of Redis as well as of the API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy.typing as npt
import redis

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

DEFAULT_PREFIX = "mxconv:"
#: Workers not seen for this long are dropped from the heartbeat figures.
WORKER_FORGET_SECONDS = 24 * 3600.0

# Shared Lua: move a job between the status sets (the record keeps its creation seq).
_LUA_MOVE = """
local function move(P, id, k, new)
  local old = redis.call('HGET', k, 'status')
  local seq = redis.call('HGET', k, 'seq')
  redis.call('ZREM', P .. 'status:' .. old, id)
  redis.call('ZADD', P .. 'status:' .. new, seq, id)
  redis.call('HSET', k, 'status', new)
end
local function held(k, worker, attempt)
  local h = redis.call('HMGET', k, 'status', 'worker', 'attempts')
  return h[1] == 'running' and h[2] == worker and h[3] == attempt
end
"""

# ARGV: prefix, id, now, spec, epochs, max_queued|'', idem|'', digest|'', then name, blob pairs.
_LUA_CREATE = """
local P, id, now, spec, epochs, maxq, idem, digest = unpack(ARGV, 1, 8)
if idem ~= '' then
  local existing = redis.call('GET', P .. 'idem:' .. idem)
  if existing then
    local d = redis.call('HGET', P .. 'job:' .. existing, 'digest')
    if digest ~= '' and d and d ~= digest then return {'conflict', existing} end
    return {'existing', existing}
  end
end
if maxq ~= '' then
  local queued = redis.call('ZCARD', P .. 'status:queued')
  if queued >= tonumber(maxq) then return {'full', tostring(queued)} end
end
local seq = redis.call('INCR', P .. 'seq')
local k = P .. 'job:' .. id
redis.call('HSET', k, 'id', id, 'status', 'queued', 'spec', spec, 'epochs', epochs, 'created_at', now,
  'updated_at', now, 'attempts', 0, 'epoch', 0, 'seq', seq)
if idem ~= '' then
  redis.call('HSET', k, 'idempotency_key', idem)
  redis.call('SET', P .. 'idem:' .. idem, id)
end
if digest ~= '' then redis.call('HSET', k, 'digest', digest) end
redis.call('ZADD', P .. 'all', seq, id)
redis.call('ZADD', P .. 'status:queued', seq, id)
for i = 9, #ARGV, 2 do redis.call('HSET', k .. ':arrays', ARGV[i], ARGV[i + 1]) end
return {'created', id}
"""

# ARGV: prefix, worker, now, lease_expires. Returns the claimed record's fields, or nil.
_LUA_CLAIM = (
    _LUA_MOVE
    + """
local P, worker, now, expires = unpack(ARGV, 1, 4)
-- An idle worker polls often: note it as alive at most every 5 s, not at every poll.
local seen = redis.call('HGET', P .. 'workers', worker)
if not seen or tonumber(now) - tonumber(seen) >= 5 then redis.call('HSET', P .. 'workers', worker, now) end
local ids = redis.call('ZRANGE', P .. 'status:queued', 0, 0)
if #ids == 0 then return nil end
local id = ids[1]
local k = P .. 'job:' .. id
move(P, id, k, 'running')
redis.call('HINCRBY', k, 'attempts', 1)
redis.call('HSET', k, 'worker', worker, 'lease_expires', expires, 'started_at', now, 'updated_at', now,
  'epoch', 0, 'elapsed', 0)
redis.call('HDEL', k, 'loss', 'snapshot')
redis.call('DEL', k .. ':losses')
redis.call('ZADD', P .. 'leases', expires, id)
return redis.call('HGETALL', k)
"""
)

# ARGV: prefix, id, worker, attempt, now, lease_expires, epoch|'', loss|'', elapsed|'',
# snapshot|'', then epoch, loss pairs.
_LUA_HEARTBEAT = (
    _LUA_MOVE
    + """
local P, id, worker, attempt, now, expires, epoch, loss, elapsed, snapshot = unpack(ARGV, 1, 10)
local k = P .. 'job:' .. id
if not held(k, worker, attempt) then return 'lost' end
if snapshot ~= '' then redis.call('HSET', k, 'snapshot', snapshot) end
redis.call('HSET', k, 'lease_expires', expires, 'updated_at', now)
if epoch ~= '' then redis.call('HSET', k, 'epoch', epoch) end
if loss ~= '' then redis.call('HSET', k, 'loss', loss) end
if elapsed ~= '' then redis.call('HSET', k, 'elapsed', elapsed) end
for i = 11, #ARGV, 2 do redis.call('HSET', k .. ':losses', ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', P .. 'leases', expires, id)
redis.call('HSET', P .. 'workers', worker, now)
if redis.call('HEXISTS', k, 'cancel_requested_at') == 1 then return 'cancel' end
return 'ok'
"""
)

# ARGV: prefix, id, worker, attempt, status, now, result|'', error|'', then name, blob pairs.
_LUA_FINISH = (
    _LUA_MOVE
    + """
local P, id, worker, attempt, status, now, result, err = unpack(ARGV, 1, 8)
local k = P .. 'job:' .. id
if not held(k, worker, attempt) then return 0 end
move(P, id, k, status)
redis.call('HSET', k, 'finished_at', now, 'updated_at', now)
redis.call('HDEL', k, 'lease_expires')
if result ~= '' then redis.call('HSET', k, 'result', result) else redis.call('HDEL', k, 'result') end
if err ~= '' then redis.call('HSET', k, 'error', err) else redis.call('HDEL', k, 'error') end
for i = 9, #ARGV, 2 do redis.call('HSET', k .. ':arrays', ARGV[i], ARGV[i + 1]) end
redis.call('ZREM', P .. 'leases', id)
return 1
"""
)

# ARGV: prefix, id, worker, attempt, now, reason
_LUA_REQUEUE = (
    _LUA_MOVE
    + """
local P, id, worker, attempt, now, reason = unpack(ARGV, 1, 6)
local k = P .. 'job:' .. id
if not held(k, worker, attempt) then return 0 end
move(P, id, k, 'queued')
redis.call('HDEL', k, 'worker', 'lease_expires')
redis.call('HINCRBY', k, 'attempts', -1)
redis.call('HSET', k, 'updated_at', now, 'message', reason)
redis.call('ZREM', P .. 'leases', id)
return 1
"""
)

# ARGV: prefix, now, max_attempts. Returns the reaped ids.
_LUA_REAP = (
    _LUA_MOVE
    + """
local P, now, maxa = unpack(ARGV, 1, 3)
local reaped = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(' .. now)) do
  local k = P .. 'job:' .. id
  local h = redis.call('HMGET', k, 'status', 'attempts', 'worker', 'cancel_requested_at')
  redis.call('ZREM', P .. 'leases', id)
  if h[1] == 'running' then
    local lost = 'worker ' .. tostring(h[3]) .. ' stopped responding (its lease expired) during attempt '
      .. h[2]
    if h[4] then
      move(P, id, k, 'cancelled')
      redis.call('HSET', k, 'finished_at', now, 'updated_at', now, 'message', 'cancelled; ' .. lost)
      redis.call('HDEL', k, 'lease_expires')
    elseif tonumber(h[2]) >= tonumber(maxa) then
      move(P, id, k, 'failed')
      redis.call('HSET', k, 'finished_at', now, 'updated_at', now, 'error', lost .. ', the last of '
        .. maxa .. ' allowed (MXCONV_JOB_MAX_ATTEMPTS). The worker may have run out of memory: '
        .. 'try a smaller sample or batch size, then resubmit')
      redis.call('HDEL', k, 'lease_expires')
    else
      move(P, id, k, 'queued')
      redis.call('HSET', k, 'updated_at', now, 'message', 're-queued: ' .. lost)
      redis.call('HDEL', k, 'worker', 'lease_expires')
    end
    table.insert(reaped, id)
  end
end
return reaped
"""
)

# ARGV: prefix, id, now. Returns {'ok', fields} | {'notfound'} | {'conflict', status}.
_LUA_CANCEL = (
    _LUA_MOVE
    + """
local P, id, now = unpack(ARGV, 1, 3)
local k = P .. 'job:' .. id
local h = redis.call('HMGET', k, 'status', 'cancel_requested_at')
if not h[1] then return {'notfound'} end
local status = h[1]
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then return {'conflict', status} end
if status == 'queued' then
  move(P, id, k, 'cancelled')
  redis.call('HSET', k, 'cancel_requested_at', now, 'finished_at', now, 'updated_at', now,
    'message', 'cancelled before it started')
elseif not h[2] then
  redis.call('HSET', k, 'cancel_requested_at', now, 'updated_at', now,
    'message', 'cancel requested; the worker stops at the end of this epoch')
end
return {'ok', redis.call('HGETALL', k)}
"""
)

# ARGV: prefix, id. Returns {'ok'} | {'notfound'} | {'conflict', status}.
_LUA_DELETE = """
local P, id = unpack(ARGV, 1, 2)
local k = P .. 'job:' .. id
local h = redis.call('HMGET', k, 'status', 'idempotency_key')
if not h[1] then return {'notfound'} end
local status = h[1]
if status ~= 'succeeded' and status ~= 'failed' and status ~= 'cancelled' then return {'conflict', status} end
redis.call('DEL', k, k .. ':arrays', k .. ':losses')
redis.call('ZREM', P .. 'all', id)
redis.call('ZREM', P .. 'status:' .. status, id)
if h[2] then redis.call('DEL', P .. 'idem:' .. h[2]) end
return {'ok'}
"""


def _num(x: float | int | None) -> str:
    """Numbers travel to Lua as text; ``repr`` keeps a float exact both ways."""
    return "" if x is None else repr(float(x))


def _s(b: bytes | str) -> str:
    return b.decode() if isinstance(b, bytes) else b


def split_url(url: str) -> tuple[str, str]:
    """``redis://host:port/db?prefix=p:`` -> (the URL redis-py takes, the key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisJobStore(JobStore):
    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.r = client
        self.p = prefix
        self._create = client.register_script(_LUA_CREATE)
        self._claim = client.register_script(_LUA_CLAIM)
        self._heartbeat = client.register_script(_LUA_HEARTBEAT)
        self._finish = client.register_script(_LUA_FINISH)
        self._requeue = client.register_script(_LUA_REQUEUE)
        self._reap = client.register_script(_LUA_REAP)
        self._cancel = client.register_script(_LUA_CANCEL)
        self._delete = client.register_script(_LUA_DELETE)

    @classmethod
    def from_url(cls, url: str) -> RedisJobStore:
        plain, prefix = split_url(url)
        client = redis.Redis.from_url(
            plain, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
        )
        return cls(client, prefix)

    def close(self) -> None:
        self.r.close()

    # -- records -----------------------------------------------------------------------

    def _key(self, job_id: str) -> str:
        return f"{self.p}job:{job_id}"

    @staticmethod
    def _record(raw: Mapping[bytes, bytes] | list[bytes]) -> JobRecord:
        if isinstance(raw, list):  # HGETALL from a script: a flat list of field, value
            raw = dict(zip(raw[::2], raw[1::2], strict=True))
        f = {_s(k): _s(v) for k, v in raw.items()}

        def opt_float(name: str) -> float | None:
            return None if name not in f else float(f[name])

        return JobRecord(
            id=f["id"],
            status=f["status"],  # type: ignore[arg-type]
            spec=json.loads(f["spec"]),
            epochs=int(f["epochs"]),
            created_at=float(f["created_at"]),
            updated_at=float(f["updated_at"]),
            started_at=opt_float("started_at"),
            finished_at=opt_float("finished_at"),
            cancel_requested_at=opt_float("cancel_requested_at"),
            attempts=int(f["attempts"]),
            worker=f.get("worker"),
            lease_expires=opt_float("lease_expires"),
            epoch=int(f.get("epoch", 0)),
            loss=opt_float("loss"),
            elapsed=opt_float("elapsed"),
            snapshot=None if "snapshot" not in f else json.loads(f["snapshot"]),
            result=None if "result" not in f else json.loads(f["result"]),
            error=f.get("error"),
            message=f.get("message"),
            idempotency_key=f.get("idempotency_key"),
            digest=f.get("digest"),
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
        job_id = uuid.uuid4().hex
        blobs: list[str | bytes] = []
        for name, arr in arrays.items():
            blobs += [name, to_npy(arr)]
        args = [
            self.p,
            job_id,
            _num(self.clock()),
            json.dumps(dict(spec)),
            str(int(epochs)),
            "" if max_queued is None else str(int(max_queued)),
            idempotency_key or "",
            digest or "",
            *blobs,
        ]
        outcome, *rest = [_s(x) for x in self._create(args=args)]
        if outcome == "full":
            raise QueueFull(int(rest[0]), int(max_queued or 0))
        if outcome == "conflict":
            raise JobConflict(
                f"Idempotency-Key {idempotency_key!r} was already used for a different job ({rest[0]}); "
                "use a new key for a new job"
            )
        record = self.get(rest[0])
        assert record is not None
        return record, outcome == "created"

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.r.hgetall(self._key(job_id))
        return self._record(raw) if raw else None  # type: ignore[arg-type]

    def list(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        index = f"{self.p}status:{status}" if status else f"{self.p}all"
        pipe = self.r.pipeline(transaction=True)
        pipe.zcard(index)
        pipe.zrevrange(index, offset, offset + limit - 1)
        total, ids = pipe.execute()
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._key(_s(job_id)))
        # A job deleted between the two reads is skipped, not returned half-empty.
        return [self._record(raw) for raw in pipe.execute() if raw], int(total)

    def count(self, status: str) -> int:
        return int(self.r.zcard(f"{self.p}status:{status}"))  # type: ignore[arg-type]

    def losses(self, job_id: str) -> list[float]:
        raw: dict[bytes, bytes] = self.r.hgetall(f"{self._key(job_id)}:losses")  # type: ignore[assignment]
        return [float(v) for _, v in sorted((int(k), v) for k, v in raw.items())]

    def arrays(self, job_id: str, names: Iterable[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        raw: dict[bytes, bytes] = self.r.hgetall(f"{self._key(job_id)}:arrays")  # type: ignore[assignment]
        wanted = None if names is None else set(names)
        return {_s(k): from_npy(v) for k, v in raw.items() if wanted is None or _s(k) in wanted}

    def cancel(self, job_id: str) -> JobRecord:
        outcome, *rest = self._cancel(args=[self.p, job_id, _num(self.clock())])
        outcome = _s(outcome)
        if outcome == "notfound":
            raise JobNotFound(job_id)
        if outcome == "conflict":
            raise JobConflict(f"job {job_id} has already {_s(rest[0])}; there is nothing to cancel")
        return self._record(rest[0])

    def delete(self, job_id: str) -> None:
        outcome, *rest = [_s(x) for x in self._delete(args=[self.p, job_id])]
        if outcome == "notfound":
            raise JobNotFound(job_id)
        if outcome == "conflict":
            raise JobConflict(
                f"job {job_id} is {rest[0]}; only finished jobs can be deleted (cancel it first)"
            )

    def ping(self) -> None:
        # A write, not PING: a Redis over maxmemory (noeviction), read-only or unable to
        # persist (MISCONF) answers PING but refuses every job write.
        self.r.set(f"{self.p}probe", _num(self.clock()))

    # -- the worker side ---------------------------------------------------------------

    def claim(self, worker: str, lease_seconds: float) -> tuple[JobRecord, Lease] | None:
        now = self.clock()
        raw = self._claim(args=[self.p, worker, _num(now), _num(now + lease_seconds)])
        if not raw:
            return None
        record = self._record(raw)
        return record, Lease(record.id, worker, record.attempts)

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
        pairs: list[str] = []
        for e, v in (new_losses or {}).items():
            pairs += [str(int(e)), _num(v)]
        answer = self._heartbeat(
            args=[
                self.p,
                lease.job_id,
                lease.worker,
                str(lease.attempt),
                _num(now),
                _num(now + lease_seconds),
                "" if epoch is None else str(int(epoch)),
                _num(loss),
                _num(elapsed),
                "" if snapshot is None else json.dumps(snapshot),
                *pairs,
            ]
        )
        return _s(answer)  # type: ignore[return-value]

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
        blobs: list[str | bytes] = []
        for name, arr in (arrays or {}).items():
            blobs += [name, to_npy(arr)]
        done = self._finish(
            args=[
                self.p,
                lease.job_id,
                lease.worker,
                str(lease.attempt),
                status,
                _num(self.clock()),
                "" if result is None else json.dumps(dict(result)),
                error or "",
                *blobs,
            ]
        )
        return bool(done)

    def requeue(self, lease: Lease, reason: str) -> bool:
        args = [self.p, lease.job_id, lease.worker, str(lease.attempt), _num(self.clock()), reason]
        return bool(self._requeue(args=args))

    def reap(self, max_attempts: int) -> list[str]:
        return [_s(x) for x in self._reap(args=[self.p, _num(self.clock()), str(int(max_attempts))])]

    # -- figures for /metrics ----------------------------------------------------------

    def worker_heartbeats(self) -> dict[str, float]:
        """Each worker's latest claim or lease renewal (idle workers poll, so they show too)."""
        raw: dict[bytes, bytes] = self.r.hgetall(f"{self.p}workers")  # type: ignore[assignment]
        seen = {_s(k): float(v) for k, v in raw.items()}
        stale = [w for w, at in seen.items() if at < self.clock() - WORKER_FORGET_SECONDS]
        if stale:
            self.r.hdel(f"{self.p}workers", *stale)
        return {w: at for w, at in seen.items() if w not in stale}
