"""The Redis cache: the latest reading per meter and hot query results, never newer data's stale copy.

PostgreSQL stays the truth; Redis only saves it work (docs/api.md#cache). Two kinds of entry:

- `latest:<meter>`: the meter's newest stored reading, refreshed from PostgreSQL by the writer after
  its commit and replaced only by a newer one (a later `reading_start`, or the same one at a record
  version not older: the upsert's rule), in one Lua script, so a replay of an old batch or a slower
  concurrent writer never puts an older reading back;
- `q:<name>:<digest>`: a query's JSON result, keyed by the generation of what it reads (a meter's, or
  the global one), which every writer bumps after its commit: a result computed before a change is
  stored under a generation nobody reads any more.

A generation starts at Redis's clock in microseconds, so after a restart (Redis keeps nothing) new
generations are larger than any a slow reader may still hold. A writer that replaces data by older
data (a rejection, a restore, a rollback) invalidates: it deletes the meter's latest entry and raises
its guard, so a refresh whose snapshot predates that is refused.

Redis down or unreachable: every operation is a miss or a no-op, a warning is logged once per outage,
and reads skip Redis for `retry_after_s`; nothing here raises a Redis error to its caller.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse

import orjson
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from metrify_assets.env import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
ScriptArg = bytes | str | int | float
DEFAULT_TTL_S = 300
CHUNK = 1000  # meters per script call: bounds how long one script holds Redis
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_PRELUDE = """
local function generation(key)
  local g = redis.call('HGET', key, 'gen')
  if not g then
    local t = redis.call('TIME')
    g = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('HSET', key, 'gen', g)
  end
  return g
end
local function bump(key)
  generation(key)
  return redis.call('HINCRBY', key, 'gen', 1)
end
local function older(a, b)  -- equal-length digit strings, compared exactly 10 digits at a time
  for i = 1, #a, 10 do
    local x, y = tonumber(string.sub(a, i, i + 9)), tonumber(string.sub(b, i, i + 9))
    if x ~= y then return x < y end
  end
  return false
end
local function cas(key, order, row, ttl)
  local current = redis.call('HGET', key, 'order')
  if current and older(order, current) then return 0 end
  redis.call('HSET', key, 'order', order, 'row', row)
  redis.call('PEXPIRE', key, ttl)
  return 1
end
"""
# KEYS: scopes -> their generations (started if missing).
_GENERATIONS = (
    _PRELUDE + "local out = {} for i, key in ipairs(KEYS) do out[i] = generation(key) end return out"
)
# KEYS: global, then (meter, latest) pairs; ARGV: ttl_ms, then (seen, order, row) per meter.
_REFRESH = (
    _PRELUDE
    + """
for i = 1, (#KEYS - 1) / 2 do
  local meter, latest = KEYS[2 * i], KEYS[2 * i + 1]
  local seen, order, row = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  local guard = redis.call('HGET', meter, 'guard')
  if seen ~= '' and row ~= '' and (not guard or tonumber(seen) >= tonumber(guard)) then
    cas(latest, order, row, ARGV[1])
  else
    redis.call('DEL', latest)
  end
  bump(meter)
end
return bump(KEYS[1])
"""
)
# KEYS: meter, latest; ARGV: the generation seen before reading PostgreSQL, order, row, ttl_ms.
_FILL = (
    _PRELUDE
    + """
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end
return cas(KEYS[2], ARGV[2], ARGV[3], ARGV[4])
"""
)
# KEYS: global, then (meter, latest) pairs.
_INVALIDATE = (
    _PRELUDE
    + """
for i = 1, (#KEYS - 1) / 2 do
  redis.call('DEL', KEYS[2 * i + 1])
  redis.call('HSET', KEYS[2 * i], 'guard', bump(KEYS[2 * i]))
end
return bump(KEYS[1])
"""
)
# KEYS: global, then meters.
_BUMP = _PRELUDE + "for i = 2, #KEYS do bump(KEYS[i]) end return bump(KEYS[1])"


def order_key(reading_start: datetime, record_version: int) -> str:
    """(reading_start, record_version) as 40 digits whose order is the pair's order (offsets keep
    any instant and any bigint version non-negative)."""
    micros = (reading_start - _EPOCH) // timedelta(microseconds=1)
    return f"{micros + 2**62:020d}{record_version + 2**63:020d}"


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):  # subclasses orjson leaves to us (pandas.Timestamp)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode(value: object) -> bytes:
    """The JSON a cached value is stored as (numpy values, datetimes and decimals included); a time
    without an offset is UTC (the marts' `..._utc` columns), as the API writes it uncached."""
    return orjson.dumps(
        value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC
    )


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """`items` in slices of `size`; one empty slice for no items (the global scope alone)."""
    for start in range(0, max(len(items), 1), size):
        yield items[start : start + size]


class Cache:
    """The cache on one Redis (`url`). Short socket timeouts and one immediate retry: a slow Redis
    must cost a request milliseconds, not seconds. Safe to share between threads."""

    def __init__(
        self,
        url: str,
        ttl_s: int = DEFAULT_TTL_S,
        prefix: str = "metrify",
        timeout_s: float = 0.25,
        retry_after_s: float = 1.0,
    ) -> None:
        parsed = urlparse(url)
        self.where = f"{parsed.hostname}:{parsed.port or 6379}{parsed.path}"  # no credentials in logs
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),  # once, at once: a pooled connection a restart closed reconnects
        )
        self._generations = self._redis.register_script(_GENERATIONS)
        self._refresh = self._redis.register_script(_REFRESH)
        self._fill = self._redis.register_script(_FILL)
        self._invalidate = self._redis.register_script(_INVALIDATE)
        self._bump = self._redis.register_script(_BUMP)
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0

    # keys
    @property
    def _global(self) -> str:
        return f"{self.prefix}:all"

    def _meter(self, meter_id: str) -> str:
        return f"{self.prefix}:meter:{meter_id}"

    def _latest(self, meter_id: str) -> str:
        return f"{self.prefix}:latest:{meter_id}"

    def _query(self, scope: str, generation: int, key_parts: Sequence[object]) -> str:
        digest = hashlib.sha256(encode([scope, generation, list(key_parts)])).hexdigest()[:32]
        return f"{self.prefix}:q:{key_parts[0] if key_parts else ''}:{digest}"

    # outage handling
    def _run(self, op: Callable[[], T], default: T, *, write: bool = False) -> T:
        """`op()` against Redis, or `default` when Redis fails. Reads skip Redis for a moment after a
        failure; writes (after a commit) always try, since a missed invalidation is what matters."""
        if not write and time.monotonic() < self._retry_at:
            return default
        try:
            result = op()
        except RedisError as err:
            with self._lock:
                self._retry_at = time.monotonic() + self.retry_after_s
                if not self._down:
                    self._down = True
                    log.warning(
                        "Redis cache at %s failed (%s: %s): serving from PostgreSQL until it answers; "
                        "entries written before may be stale for up to %d s",
                        self.where,
                        type(err).__name__,
                        err,
                        self.ttl_s,
                    )
            return default
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    log.warning("Redis cache at %s answers again", self.where)
        return result

    def available(self) -> bool:
        """Whether Redis answers PING now (for `/readyz`)."""
        return bool(self._run(self._redis.ping, False, write=True))

    def close(self) -> None:
        self._redis.close()

    def _seen(self, scopes: Sequence[str], write: bool = False) -> list[int] | None:
        """The scopes' generations now (started if missing), or None when Redis fails."""
        found: list[bytes] | None = self._run(lambda: self._generations(keys=list(scopes)), None, write=write)
        return None if found is None else [int(g) for g in found]

    # query results
    def get_or_compute(
        self,
        key_parts: Sequence[object],
        compute: Callable[[], object],
        ttl_s: int | None = None,
        *,
        meter_id: str | None = None,
    ) -> Any:
        """`compute()`'s result as JSON values (a hit and a miss return the same thing), cached for
        `ttl_s` (default the cache's) under `key_parts` (first the query's name, then its parameters)
        and the generation of `meter_id` (None: the global one). A result is only ever served for the
        generation it was computed at, so never after a newer version of what it read committed."""
        scope = self._global if meter_id is None else self._meter(meter_id)
        seen = self._seen([scope])
        if seen is None:
            return orjson.loads(encode(compute()))
        key = self._query(scope, seen[0], key_parts)
        hit: bytes | str | None = self._run(lambda: self._redis.get(key), None)
        if hit is not None:
            return orjson.loads(hit)
        body = encode(compute())
        ttl_ms = 1000 * (ttl_s or self.ttl_s)
        self._run(lambda: self._redis.set(key, body, px=ttl_ms), None)
        return orjson.loads(body)

    # the latest reading per meter
    def latest(self, meter_id: str, read: Callable[[], Mapping[str, Any] | None]) -> dict[str, Any] | None:
        """The meter's newest stored reading as JSON values: the cached entry, else `read()` (from
        PostgreSQL; a row with `reading_start` and `record_version`), which then fills the entry
        unless the meter's generation moved while it read (a writer committed meanwhile)."""
        hit: bytes | str | None = self._run(lambda: self._redis.hget(self._latest(meter_id), "row"), None)
        if hit is not None:
            cached: dict[str, Any] = orjson.loads(hit)
            return cached
        seen = self._seen([self._meter(meter_id)])
        row = read()
        if row is None:
            return None
        body = encode(row)
        if seen is not None:
            keys = [self._meter(meter_id), self._latest(meter_id)]
            args: list[ScriptArg] = [
                seen[0],
                order_key(row["reading_start"], int(row["record_version"])),
                body,
                1000 * self.ttl_s,
            ]
            self._run(lambda: self._fill(keys=keys, args=args), None)
        value: dict[str, Any] = orjson.loads(body)
        return value

    def refresh_latest(
        self,
        meter_ids: Collection[str],
        read: Callable[[list[str]], Mapping[str, Mapping[str, Any]]],
    ) -> None:
        """After a commit that stored readings of `meter_ids`: their latest entries from `read(ids)`
        (the newest stored row per meter, read by this call after it took the generations), each
        replacing only an older entry; then their generations and the global one move on. Without a
        snapshot (Redis failed) the entries are deleted instead of written."""
        ids = sorted(set(meter_ids))
        if not ids:
            self.bump(())
            return
        seen: dict[str, int] = {}
        for chunk in _chunks(ids):
            gens = self._seen([self._meter(m) for m in chunk], write=True)
            if gens is not None:
                seen.update(zip(chunk, gens, strict=True))
        rows = read(sorted(seen)) if seen else {}
        for chunk in _chunks(ids):
            keys = [self._global]
            args: list[ScriptArg] = [1000 * self.ttl_s]
            for meter_id in chunk:
                keys += [self._meter(meter_id), self._latest(meter_id)]
                row, gen = rows.get(meter_id), seen.get(meter_id)
                if row is None or gen is None:
                    args += ["", "", ""]
                else:
                    args += [gen, order_key(row["reading_start"], int(row["record_version"])), encode(row)]
            self._run(partial(self._refresh, keys=keys, args=args), None, write=True)

    # after other changes
    def bump(self, meter_ids: Collection[str]) -> None:
        """After a commit that changed data of `meter_ids` (or, empty, only data not about one meter):
        a new generation for them and the global one; the latest entries stay (the readings did not)."""
        for chunk in _chunks(sorted(set(meter_ids))):
            keys = [self._global, *(self._meter(m) for m in chunk)]
            self._run(partial(self._bump, keys=keys), None, write=True)

    def invalidate(self, meter_ids: Collection[str]) -> None:
        """After a commit that may have replaced readings of `meter_ids` by older ones or removed them
        (a rejection, a restore, a rollback): their latest entries go, refreshes that began before are
        refused, and their generations and the global one move on."""
        for chunk in _chunks(sorted(set(meter_ids))):
            keys = [self._global]
            for meter_id in chunk:
                keys += [self._meter(meter_id), self._latest(meter_id)]
            self._run(partial(self._invalidate, keys=keys), None, write=True)


def open_cache(settings: Settings) -> Cache | None:
    """The cache on REDIS_URL with METRIFY_API_CACHE_TTL_S, for a process that holds the URL's value
    (the CLI, the API); None when REDIS_URL is unset. `close()` it when done."""
    return Cache(settings.redis_url, ttl_s=settings.api.cache_ttl_s) if settings.redis_url else None
