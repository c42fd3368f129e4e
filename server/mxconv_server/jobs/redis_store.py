"""The Redis job store (``MXCONV_JOBS_URL=redis://host:port/db``), for API replicas and job
workers on any number of hosts. Same contract as the embedded SQLite store.

Only the store's primitives live here (the rules are in rules.py). Each write primitive is
one Lua script, which Redis runs with nothing in between: create-if-absent, and a
compare-and-set fenced on status, worker and attempt that also keeps the indexes in step
with the record. The scripts know nothing of the job states beyond that.

Keys, all under a prefix (``mxconv:`` by default; ``?prefix=other:`` in the URL lets several
deployments share one Redis):

* ``job:<id>`` hash: the record's fields (spec and result as JSON; absent field = None) and
  ``seq``, the creation order;
* ``job:<id>:arrays`` hash: array name -> ``.npy`` bytes (never pickle);
* ``job:<id>:losses`` hash: epoch -> loss of the current attempt (and of those before it, up
  to the checkpoint it resumed from);
* ``job:<id>:metrics`` hash: ``<name>|<epoch>`` -> value, a network's other histories;
* ``all`` and ``status:<status>`` sorted sets of ids by ``seq``: listing, counting, and the
  queue itself (``status:queued``, oldest first);
* ``leases`` sorted set of the ids that hold a lease, by its expiry: what reaping scans;
* ``idem:<key>`` -> id, for idempotency keys; ``seq``, the counter;
* ``workers`` hash: worker id -> the time it last claimed or renewed (for /metrics).

Durability is Redis's: run it with ``appendonly yes`` (docker-compose.yml does), so records
survive a restart of Redis as well as of the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions

from .records import (
    FIELDS,
    INT_FIELDS,
    JSON_FIELDS,
    TEXT_FIELDS,
    Change,
    Fence,
    Heartbeat,
    Inserted,
    JobRecord,
    StoreUnavailable,
)
from .store import JobStore, guarded

DEFAULT_PREFIX = "mxconv:"
#: Workers not seen for this long are dropped from the heartbeat figures.
WORKER_FORGET_SECONDS = 24 * 3600.0
#: Redis errors that mean "down for now", not a bug. ConnectionError includes
#: BusyLoadingError (Redis reading its data back); OutOfMemoryError is over maxmemory with
#: noeviction, which takes no writes.
OUTAGES = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
)
CHECK = "that the Redis in MXCONV_JOBS_URL is up"

# Does job key k meet the fence (status, worker or '', attempt, cancel '1'|'0'|'', expired_by|'')?
_LUA_FENCE = """
local function fenced(k, st, worker, attempt, cancel, expired_by)
  local h = redis.call('HMGET', k, 'status', 'worker', 'attempts', 'cancel_requested_at', 'lease_expires')
  if h[1] ~= st or (h[2] or '') ~= worker or h[3] ~= attempt then return false end
  if cancel ~= '' and ((h[4] and '1') or '0') ~= cancel then return false end
  if expired_by ~= '' and not (h[5] and tonumber(h[5]) < tonumber(expired_by)) then return false end
  return true
end
"""

# ARGV: prefix, id, idem|'', max_queued|'', n, then n field/value pairs, then name/blob pairs.
_LUA_INSERT = """
local P, id, idem, maxq = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if idem ~= '' then
  local existing = redis.call('GET', P .. 'idem:' .. idem)
  if existing then
    local found = redis.call('HGETALL', P .. 'job:' .. existing)
    if #found > 0 then return {'exists', found} end
  end
end
if maxq ~= '' then
  local queued = redis.call('ZCARD', P .. 'status:queued')
  if queued >= tonumber(maxq) then return {'full', queued} end
end
local k = P .. 'job:' .. id
local seq = redis.call('INCR', P .. 'seq')
local i = 6 + 2 * tonumber(ARGV[5])
redis.call('HSET', k, 'seq', seq, unpack(ARGV, 6, i - 1))
if i <= #ARGV then redis.call('HSET', k .. ':arrays', unpack(ARGV, i, #ARGV)) end
if idem ~= '' then redis.call('SET', P .. 'idem:' .. idem, id) end
redis.call('ZADD', P .. 'all', seq, id)
redis.call('ZADD', P .. 'status:' .. redis.call('HGET', k, 'status'), seq, id)
return {'created'}
"""

# Apply the change in ARGV[i] (JSON: "set" and "add" as flat field, value lists, "del" the
# fields to clear, "trim" to drop the histories after the checkpoint epoch, "losses" a flat
# epoch, loss list, "metrics" a flat name|epoch, value list), and the name/blob pairs after
# it, to job key k, whose status was old. The indexes follow the record.
_LUA_APPLY = """
local function trim(key, kept, epoch_of)
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if tonumber(epoch_of(f)) > kept then redis.call('HDEL', key, f) end
  end
end
local function apply(P, id, k, old, i)
  local c = cjson.decode(ARGV[i])
  if #c.set > 0 then redis.call('HSET', k, unpack(c.set)) end
  for j = 1, #c.add, 2 do redis.call('HINCRBY', k, c.add[j], c.add[j + 1]) end
  if #c.del > 0 then redis.call('HDEL', k, unpack(c.del)) end
  if c.trim then
    local kept = tonumber(redis.call('HGET', k, 'checkpoint_epoch') or '0')
    trim(k .. ':losses', kept, function(f) return f end)
    trim(k .. ':metrics', kept, function(f) return string.match(f, '|(%d+)$') end)
  end
  if #c.losses > 0 then redis.call('HSET', k .. ':losses', unpack(c.losses)) end
  if #c.metrics > 0 then redis.call('HSET', k .. ':metrics', unpack(c.metrics)) end
  if i < #ARGV then redis.call('HSET', k .. ':arrays', unpack(ARGV, i + 1, #ARGV)) end
  local h = redis.call('HMGET', k, 'status', 'seq', 'lease_expires', 'worker', 'updated_at',
    'cancel_requested_at')
  if h[1] ~= old then
    redis.call('ZREM', P .. 'status:' .. old, id)
    redis.call('ZADD', P .. 'status:' .. h[1], h[2], id)
  end
  if h[3] then redis.call('ZADD', P .. 'leases', h[3], id) else redis.call('ZREM', P .. 'leases', id) end
  if h[1] == 'running' then redis.call('HSET', P .. 'workers', h[4], h[5]) end
  return h[6]
end
"""

# ARGV: prefix, id, the fence (5), then the change. 'lost' (fence not met: nothing written),
# 'cancel' (written; a cancel is asked) or 'ok'.
_LUA_CAS = (
    _LUA_FENCE
    + _LUA_APPLY
    + """
local P, id = ARGV[1], ARGV[2]
local k = P .. 'job:' .. id
if not fenced(k, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]) then return 'lost' end
if apply(P, id, k, ARGV[3], 8) then return 'cancel' end
return 'ok'
"""
)

# ARGV: prefix, worker, now, then the change. The claimed record, or nil.
_LUA_CLAIM = (
    _LUA_APPLY
    + """
local P, worker, now = ARGV[1], ARGV[2], ARGV[3]
-- An idle worker polls often: note it as alive at most every 5 s, not at every poll.
local seen = redis.call('HGET', P .. 'workers', worker)
if not seen or tonumber(now) - tonumber(seen) >= 5 then redis.call('HSET', P .. 'workers', worker, now) end
local ids = redis.call('ZRANGE', P .. 'status:queued', 0, 0)
if #ids == 0 then return false end
local k = P .. 'job:' .. ids[1]
apply(P, ids[1], k, 'queued', 4)
return redis.call('HGETALL', k)
"""
)

# ARGV: prefix, id, the fence (5). Returns 1 if removed.
_LUA_REMOVE = (
    _LUA_FENCE
    + """
local P, id = ARGV[1], ARGV[2]
local k = P .. 'job:' .. id
if not fenced(k, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]) then return 0 end
local idem = redis.call('HGET', k, 'idempotency_key')
redis.call('DEL', k, k .. ':arrays', k .. ':losses', k .. ':metrics')
redis.call('ZREM', P .. 'all', id)
redis.call('ZREM', P .. 'status:' .. ARGV[3], id)
redis.call('ZREM', P .. 'leases', id)
if idem then redis.call('DEL', P .. 'idem:' .. idem) end
return 1
"""
)

# ARGV: prefix, now. The records whose lease ran out before now.
_LUA_EXPIRED = """
local P, now = ARGV[1], ARGV[2]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(' .. now)) do
  local h = redis.call('HGETALL', P .. 'job:' .. id)
  if #h > 0 then table.insert(out, h) end
end
return out
"""


def _num(x: float | int) -> str:
    """Numbers travel to Lua as text; ``repr`` keeps a float exact both ways."""
    return repr(float(x))


def _s(b: bytes | str) -> str:
    return b.decode() if isinstance(b, bytes) else b


def _text(name: str, value: Any) -> str:
    if name in JSON_FIELDS:
        return json.dumps(value)
    if name in INT_FIELDS:
        return str(int(value))
    return str(value) if name in TEXT_FIELDS else _num(value)


def _value(name: str, text: str) -> Any:
    if name in JSON_FIELDS:
        return json.loads(text)
    if name in INT_FIELDS:
        return int(text)
    return text if name in TEXT_FIELDS else float(text)


def _record(raw: Mapping[bytes, bytes] | list[bytes]) -> JobRecord:
    if isinstance(raw, list):  # HGETALL from a script: a flat list of field, value
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    f = {_s(k): _s(v) for k, v in raw.items()}
    return JobRecord(**{name: _value(name, f[name]) for name in FIELDS if name in f})


def _fence(fence: Fence) -> list[str]:
    cancel = "" if fence.cancel_requested is None else "1" if fence.cancel_requested else "0"
    expired = "" if fence.expired_by is None else _num(fence.expired_by)
    return [fence.status, fence.worker or "", str(fence.attempt), cancel, expired]


def _pairs(mapping: Mapping[Any, Any]) -> list[Any]:
    return [x for pair in mapping.items() for x in pair]


def _change(change: Change, blobs: Mapping[str, bytes] | None = None) -> list[Any]:
    """``change`` as the arguments _LUA_APPLY reads: one JSON text, then the blobs."""
    sets = [x for n, v in change.fields.items() if v is not None for x in (n, _text(n, v))]
    encoded = {
        "set": sets,
        "add": [x for n, v in change.add.items() for x in (n, int(v))],
        "del": [n for n, v in change.fields.items() if v is None],
        "trim": change.trim_history,
        "losses": [x for e, v in change.losses.items() for x in (str(int(e)), _num(v))],
        "metrics": [
            x
            for name, series in change.metrics.items()
            for e, v in series.items()
            for x in (f"{name}|{int(e)}", _num(v))
        ],
    }
    return [json.dumps(encoded), *_pairs(blobs or {})]


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
        self._insert_script = client.register_script(_LUA_INSERT)
        self._cas_script = client.register_script(_LUA_CAS)
        self._remove_script = client.register_script(_LUA_REMOVE)
        self._claim_script = client.register_script(_LUA_CLAIM)
        self._expired_script = client.register_script(_LUA_EXPIRED)

    @classmethod
    def from_url(cls, url: str) -> RedisJobStore:
        plain, prefix = split_url(url)
        client = redis.Redis.from_url(
            plain, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
        )
        return cls(client, prefix)

    def _outage(self, error: Exception) -> StoreUnavailable | None:
        return StoreUnavailable(error, CHECK) if isinstance(error, OUTAGES) else None

    def _close(self) -> None:
        self.r.close()

    def _key(self, job_id: str) -> str:
        return f"{self.p}job:{job_id}"

    # -- reads -------------------------------------------------------------------------

    def _get(self, job_id: str) -> JobRecord | None:
        raw = self.r.hgetall(self._key(job_id))
        return _record(raw) if raw else None  # type: ignore[arg-type]

    def _list(self, status: str | None, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        index = f"{self.p}status:{status}" if status else f"{self.p}all"
        pipe = self.r.pipeline(transaction=True)
        pipe.zcard(index)
        pipe.zrevrange(index, offset, offset + limit - 1)
        total, ids = pipe.execute()
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._key(_s(job_id)))
        # A job deleted between the two reads is skipped, not returned half-empty.
        return [_record(raw) for raw in pipe.execute() if raw], int(total)

    def _count(self, status: str) -> int:
        return int(self.r.zcard(f"{self.p}status:{status}"))

    def _losses(self, job_id: str) -> list[float]:
        raw: dict[bytes, bytes] = self.r.hgetall(f"{self._key(job_id)}:losses")  # type: ignore[assignment]
        return [float(v) for _, v in sorted((int(k), v) for k, v in raw.items())]

    def _history(self, job_id: str) -> dict[str, list[float]]:
        raw: dict[bytes, bytes] = self.r.hgetall(f"{self._key(job_id)}:metrics")  # type: ignore[assignment]
        points = sorted(
            (name, int(epoch), float(v)) for k, v in raw.items() for name, _, epoch in [_s(k).rpartition("|")]
        )
        out: dict[str, list[float]] = {}
        for name, _, value in points:
            out.setdefault(name, []).append(value)
        return out

    def _blobs(self, job_id: str, names: set[str] | None) -> dict[str, bytes]:
        key = f"{self._key(job_id)}:arrays"
        if names is None:
            raw: dict[bytes, bytes] = self.r.hgetall(key)  # type: ignore[assignment]
            return {_s(k): v for k, v in raw.items()}
        wanted = sorted(names)  # only the blobs asked for are read
        values = self.r.hmget(key, wanted) if wanted else []
        return {name: v for name, v in zip(wanted, values, strict=True) if v is not None}  # type: ignore[arg-type]

    def _expired(self, now: float) -> list[JobRecord]:
        found = [_record(raw) for raw in self._expired_script(args=[self.p, _num(now)])]
        return [job for job in found if job.status == "running"]

    # -- writes ------------------------------------------------------------------------

    def _insert(self, record: JobRecord, blobs: Mapping[str, bytes], max_queued: int | None) -> Inserted:
        values = {n: _text(n, getattr(record, n)) for n in FIELDS if getattr(record, n) is not None}
        args = [
            self.p,
            record.id,
            record.idempotency_key or "",
            "" if max_queued is None else str(int(max_queued)),
            str(len(values)),
            *_pairs(values),
            *_pairs(blobs),
        ]
        outcome, *rest = self._insert_script(args=args)
        outcome = _s(outcome)
        if outcome == "exists":
            return Inserted("exists", existing=_record(rest[0]))
        if outcome == "full":
            return Inserted("full", queued=int(rest[0]))
        return Inserted("created")

    def _claim_oldest(self, worker: str, now: float, change: Change) -> JobRecord | None:
        raw = self._claim_script(args=[self.p, worker, _num(now), *_change(change)])
        return _record(raw) if raw else None

    def _cas(
        self, job_id: str, fence: Fence, change: Change, blobs: Mapping[str, bytes] | None = None
    ) -> Heartbeat:
        answer = self._cas_script(args=[self.p, job_id, *_fence(fence), *_change(change, blobs)])
        return _s(answer)  # type: ignore[return-value]

    def _remove(self, job_id: str, fence: Fence) -> bool:
        return bool(self._remove_script(args=[self.p, job_id, *_fence(fence)]))

    def _ping(self) -> None:
        # A write, not PING: a Redis over maxmemory (noeviction), read-only or unable to
        # persist (MISCONF) answers PING but refuses every job write.
        self.r.set(f"{self.p}probe", _num(self.clock()))

    # -- figures for /metrics ----------------------------------------------------------

    @guarded
    def worker_heartbeats(self) -> dict[str, float]:
        """Each worker's latest claim or lease renewal (idle workers poll, so they show too)."""
        raw: dict[bytes, bytes] = self.r.hgetall(f"{self.p}workers")  # type: ignore[assignment]
        seen = {_s(k): float(v) for k, v in raw.items()}
        stale = [w for w, at in seen.items() if at < self.clock() - WORKER_FORGET_SECONDS]
        if stale:
            self.r.hdel(f"{self.p}workers", *stale)
        return {w: at for w, at in seen.items() if w not in stale}
