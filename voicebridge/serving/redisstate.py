"""The shared state on Redis: one call cap, one set of used tokens, one transfer board for many hosts.

Keys (``prefix`` namespaces them, default ``voicebridge``), each bounded by a TTL:

* ``<prefix>:slots`` -- a sorted set: one member per live call (a *lease*: ``<host>:<n>``),
  scored by the lease's expiry in Redis's own clock (ms). Admission is one Lua script
  (:data:`ADMIT`): drop expired leases, count, add if under the cap -- atomic, so N hosts
  never admit more than the cap. Each host renews its leases every ``lease_s / 3`` from one
  thread; a host that dies (``kill -9``, a lost node) stops renewing, and its slots come back
  at most ``lease_s`` later (default 30 s). The key itself expires ``3 * lease_s`` after the
  last admission or renewal.
* ``<prefix>:used:<nonce>`` -- a stream token's "used" mark, ``SET NX`` with the token's
  remaining lifetime (+1 s) as TTL: the redeem is one atomic round trip.
* ``<prefix>:transfer:<call SID>`` -- a transfer target (or the "refused" mark), ``SET PX``
  for its wait; ``GETDEL`` takes it once, whichever host asks (Redis >= 6.2).
* ``<prefix>:hosts`` -- a hash: bridge id -> ``{draining, active, until}``, written with the
  renewals; fields past ``until`` are dropped by every renewal and every read, and the key
  expires ``3 * lease_s`` after the last write.

Faults. Unreachable at start: :class:`StoreUnreachable`, one line naming the URL (the example
app names ``REDIS_URL``). Lost later: live calls go on untouched (their leases are kept in this
process and written back by the renewer once Redis answers again; a lease whose call ended
meanwhile is removed then); new calls follow :class:`~voicebridge.serving.sharedstate.OutagePolicy`:
``refuse`` (default: the webhook answers the apology) or ``local`` (admitted under
``outage_max_calls`` of this host, tokens single-use in this process). Transfers recorded
during an outage are kept in this process and answered from it. Every command has a short
timeout (``timeout_s``); after a failure Redis is not asked again for ``retry_s`` (calls are
not made to wait on a dead store), then it is, and service resumes without a restart.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import threading
import time
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .filestate import SingleUse, TransferBoard, safe_name
from .sharedstate import OutagePolicy, StoreUnsuitable
from ..throttle import LogThrottle

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PREFIX = "voicebridge"
DEFAULT_LEASE_S = 30.0
TIMEOUT_S = 0.5
RETRY_S = 1.0
MIN_VERSION = (6, 2)  # GETDEL

ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
"""KEYS: slots; ARGV: lease id, lease ms, limit (0 = none), key TTL ms. 1 admitted, 0 at the cap."""

RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = 0
for i = 3, #ARGV do
  added = added + redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return added
"""
"""KEYS: slots; ARGV: lease ms, key TTL ms, lease ids. Re-adds a lease swept meanwhile (its call
is live: it must count). Returns how many were missing."""

COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
"""KEYS: slots. Live leases (expired ones are removed on the way: every probe sweeps)."""


class StoreUnreachable(ConnectionError):
    """Redis did not answer (a ConnectionError, so an OSError: the bridge's state-failure paths catch it)."""


@dataclasses.dataclass(frozen=True)
class RedisOptions:
    """How the Redis backend behaves (all have defaults; tests shorten the lease)."""

    prefix: str = DEFAULT_PREFIX
    lease_s: float = DEFAULT_LEASE_S  # a dead host's slots come back within this
    outage: OutagePolicy | str = OutagePolicy.REFUSE
    outage_max_calls: int | None = None  # OutagePolicy.LOCAL: this host's cap while Redis is away
    timeout_s: float = TIMEOUT_S  # per command (connect and read)
    retry_s: float = RETRY_S  # after a failure, Redis is not asked again for this long
    host_id: str | None = None  # default: hostname-pid-random

    def checked(self) -> "RedisOptions":
        policy = OutagePolicy(self.outage)
        if not self.prefix or any(c in self.prefix for c in " \r\n"):
            raise ValueError(f"redis prefix must be a non-empty word, got {self.prefix!r}")
        if self.lease_s < 0.3 or self.timeout_s <= 0 or self.retry_s < 0:
            raise ValueError("lease_s must be >= 0.3 s, timeout_s > 0 and retry_s >= 0")
        if policy is OutagePolicy.LOCAL and not (self.outage_max_calls and self.outage_max_calls >= 1):
            raise ValueError("the 'local' outage policy needs outage_max_calls >= 1")
        return dataclasses.replace(self, outage=policy)


def version_at_least(version: str, minimum: tuple[int, ...]) -> bool:
    """``"7.0.15" >= (6, 2)``; False for a version that does not parse."""
    try:
        parts = tuple(int(p) for p in version.split(".")[:len(minimum)])
    except ValueError:
        return False
    return len(parts) == len(minimum) and parts >= minimum


def redacted(url: str) -> str:
    """``url`` without its password (it is logged and put in error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Link:
    """The client and its circuit: after a failure Redis is not asked for ``retry_s`` (one owner of up/down)."""

    def __init__(self, url: str, options: RedisOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = redacted(url)
        self.client = redis.Redis.from_url(url, socket_timeout=options.timeout_s,
                                           socket_connect_timeout=options.timeout_s,
                                           retry=Retry(NoBackoff(), 1))  # one retry: a pooled socket of a restarted Redis
        self._retry_s = options.retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until = float("-inf")
        self.up = True
        self._log = LogThrottle(log)

    def call(self, what: str, operation: Callable[[Any], T]) -> T:
        """``operation(client)``, or StoreUnreachable (at once while the circuit is open)."""
        if self._clock() < self._down_until:
            raise StoreUnreachable(f"Redis at {self.url} unreachable (retrying shortly)")
        try:
            result = operation(self.client)
        except (redis.RedisError, OSError) as exc:  # refused, timed out, LOADING, READONLY after a failover...
            with self._lock:
                self._down_until = self._clock() + self._retry_s
                was_up, self.up = self.up, False
            if was_up:
                log.error("Redis at %s unreachable (%s: %s) during %s: live calls go on; new calls follow the "
                          "outage policy until it answers", self.url, type(exc).__name__, exc, what)
            else:
                self._log.warning("down", "Redis at %s still unreachable (%s)", self.url, type(exc).__name__)
            raise StoreUnreachable(f"Redis at {self.url} unreachable: {exc}") from None
        if not self.up:
            with self._lock:
                self.up = True
            log.warning("Redis at %s reachable again: the shared cap, tokens and transfers are back", self.url)
        return result


class RedisCallSlots:
    """The call cap on Redis leases (see the module docstring); the :class:`CallCap` protocol."""

    def __init__(self, link: _Link, limit: int | None, options: RedisOptions, host_id: str) -> None:
        if limit is not None and limit < 1:
            raise ValueError("max_calls must be >= 1 (or None for no cap)")
        self.limit = limit
        self.shared = True
        self._link = link
        self._options = options
        self._key = f"{options.prefix}:slots"
        self._lease_ms = int(options.lease_s * 1000)
        self._key_ttl_ms = 3 * self._lease_ms
        self._host_id = host_id
        self._lock = threading.Lock()
        self._held: list[str] = []  # lease ids of this instance's live calls
        self._gone: list[str] = []  # leases of ended calls whose ZREM failed (Redis away): removed later
        self.on_owed: Callable[[], None] = lambda: None  # wakes the renewer (set by RedisState)
        self._admit = link.client.register_script(ADMIT)
        self._renew = link.client.register_script(RENEW)
        self._count = link.client.register_script(COUNT)

    @property
    def active(self) -> int:
        return len(self._held)

    @property
    def reachable(self) -> bool:
        """False while Redis is away (new calls then follow the outage policy)."""
        return self._link.up

    @property
    def active_all(self) -> int:
        """Live calls of every host (this instance's alone while Redis is away)."""
        try:
            return self._count_all()
        except StoreUnreachable:
            return self.active

    def full(self) -> bool:
        """The webhook's check; while Redis is away: the outage policy (never an exception)."""
        try:
            return self.limit is not None and self._count_all() >= self.limit
        except StoreUnreachable:
            return not self._outage_room()

    def _count_all(self) -> int:
        return int(self._link.call("count", lambda c: self._count(keys=[self._key])))

    def try_enter(self) -> bool:
        lease = f"{self._host_id}:{secrets.token_hex(6)}"
        try:
            admitted = self._link.call("admission", lambda c: self._admit(
                keys=[self._key], args=[lease, self._lease_ms, self.limit or 0, self._key_ttl_ms]))
        except StoreUnreachable:
            admitted = self._outage_room()
            if admitted:
                log.warning("call admitted under the local outage cap (%s here) while Redis is away",
                            self._options.outage_max_calls)
        if not admitted:
            return False
        with self._lock:
            self._held.append(lease)
        return True

    def leave(self) -> None:
        with self._lock:
            if not self._held:
                return
            lease = self._held.pop()
        try:
            self._link.call("release", lambda c: c.zrem(self._key, lease))
        except StoreUnreachable:
            with self._lock:
                self._gone.append(lease)  # the renewer removes it once Redis answers (else it expires)
            self.on_owed()

    @property
    def owes_releases(self) -> bool:
        """True while an ended call's lease could not be removed (Redis away): the renewer retries soon."""
        return bool(self._gone)

    def renew(self) -> None:
        """Extend every held lease (re-adding one swept during an outage) and drop ended ones."""
        with self._lock:
            held, gone = list(self._held), list(self._gone)
        if gone:
            self._link.call("release", lambda c: c.zrem(self._key, *gone))
            with self._lock:
                self._gone = [lease for lease in self._gone if lease not in gone]
        if held:
            missing = self._link.call("renewal", lambda c: self._renew(
                keys=[self._key], args=[self._lease_ms, self._key_ttl_ms, *held]))
            if missing:
                log.warning("%d live call(s) here had lost their lease (Redis was away longer than the lease, "
                            "or restarted empty): counted again", missing)

    def close(self) -> None:
        """Give back every slot now (best effort: without Redis they expire within the lease)."""
        with self._lock:
            held, self._held = self._held + self._gone, []
            self._gone = []
        if held:
            try:
                self._link.call("release", lambda c: c.zrem(self._key, *held))
            except StoreUnreachable:
                pass

    def _outage_room(self) -> bool:
        options = self._options
        return options.outage is OutagePolicy.LOCAL and self.active < (options.outage_max_calls or 0)


class RedisUsedMarks:
    """Single-use markers: ``SET <prefix>:used:<name> 1 NX PX <ttl>`` (the :class:`UsedMarks` protocol)."""

    def __init__(self, link: _Link, options: RedisOptions) -> None:
        self._link = link
        self._prefix = f"{options.prefix}:used:"
        self._local = SingleUse() if options.outage is OutagePolicy.LOCAL else None

    def claim(self, name: str, expires: float, now: float) -> bool:
        safe_name(name)
        ttl_ms = max(1000, int((expires - now) * 1000) + 1000)
        try:
            return bool(self._link.call("token redeem", lambda c: c.set(self._prefix + name, 1, nx=True, px=ttl_ms)))
        except StoreUnreachable:
            if self._local is None:
                raise
            return self._local.claim(name, expires, now)  # single use in this process only, while Redis is away


class RedisTransfers:
    """The transfer board (the :class:`Handoffs` protocol): ``SET PX`` and ``GETDEL``; kept in this
    process while Redis is away, so a live call's transfer is never lost to an outage."""

    def __init__(self, link: _Link, options: RedisOptions) -> None:
        self._link = link
        self._prefix = f"{options.prefix}:transfer:"
        self._local = TransferBoard()

    def put(self, call_sid: str, target: str, expires: float, now: float) -> None:
        safe_name(call_sid)
        ttl_ms = max(1, int((expires - now) * 1000))
        try:
            self._link.call("transfer", lambda c: c.set(self._prefix + call_sid, target, px=ttl_ms))
        except StoreUnreachable:
            self._local.put(call_sid, target, expires, now)

    def take(self, call_sid: str, now: float) -> str | None:
        try:
            safe_name(call_sid)
        except ValueError:
            return None
        local = self._local.take(call_sid, now)
        if local is not None:
            return local
        try:
            found = self._link.call("transfer", lambda c: c.getdel(self._prefix + call_sid))
        except StoreUnreachable:
            return None
        return found.decode("utf-8") if isinstance(found, bytes) else found


class RedisState:
    """The Redis backend: a link, the three stores, and the renewer thread (leases, host record)."""

    def __init__(self, url: str, limit: int | None, options: RedisOptions | None = None) -> None:
        self.options = options = (options or RedisOptions()).checked()
        self.host_id = options.host_id or f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"
        self.link = _Link(url, options)
        try:
            version = str(self.link.client.info("server").get("redis_version", ""))
        except (redis.RedisError, OSError) as exc:
            raise StoreUnreachable(f"Redis at {self.link.url} unreachable at startup ({type(exc).__name__}: {exc}); "
                                   "start it, or fix the URL") from None
        if not version_at_least(version, MIN_VERSION):
            raise StoreUnsuitable(f"Redis at {self.link.url} is version {version or 'unknown'}; the shared state needs "
                             f">= {'.'.join(map(str, MIN_VERSION))} (GETDEL)")
        self.slots = RedisCallSlots(self.link, limit, options, self.host_id)
        self.used = RedisUsedMarks(self.link, options)
        self.transfers = RedisTransfers(self.link, options)
        self._hosts_key = f"{options.prefix}:hosts"
        self._draining = False
        self._stop = threading.Event()
        self._poke = threading.Event()  # set: renew now (a release is owed, or the bridge closes)
        self.slots.on_owed = self._poke.set
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        log.info("shared state: Redis at %s, prefix %r, lease %.1f s, outage policy %s", self.link.url,
                 options.prefix, options.lease_s, OutagePolicy(options.outage).value)
        self.start()

    def start(self) -> None:
        """Start the renewer (once; after a fork, call it again in the child: threads do not survive a fork)."""
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="vb-state-renew", daemon=True)
            self._thread.start()

    def set_draining(self) -> None:
        self._draining = True  # a flag: the renewer publishes it (drain() may run in a signal handler)

    def tick(self) -> None:
        """One renewal: this host's leases and its record (the renewer's step; tests call it)."""
        self.slots.renew()
        period_s = self.options.lease_s
        record = json.dumps({"draining": self._draining, "active": self.slots.active,
                             "until": time.time() + period_s})

        def publish(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.hset(self._hosts_key, self.host_id, record)
            pipe.pexpire(self._hosts_key, int(3 * period_s * 1000))
            pipe.execute()
        self.link.call("host record", publish)
        self.health()  # sweeps the records of dead bridges: the hash holds the live ones (+ one lease)

    def health(self) -> dict[str, Any]:
        """``/healthz`` fields: the store's state and the fleet (live hosts, draining ones)."""
        try:
            records = self.link.call("health", lambda c: c.hgetall(self._hosts_key))
        except StoreUnreachable:
            return {"shared_state": "unreachable", "outage_policy": OutagePolicy(self.options.outage).value}
        now, hosts, draining, stale = time.time(), 0, 0, []
        for host, raw in records.items():
            try:
                record = json.loads(raw)
                live = float(record["until"]) >= now
            except (ValueError, KeyError, TypeError):
                live = False
            if not live:
                stale.append(host)
                continue
            hosts += 1
            draining += bool(record.get("draining"))
        if stale:
            try:
                self.link.call("health", lambda c: c.hdel(self._hosts_key, *stale))
            except StoreUnreachable:
                pass
        return {"shared_state": "ok", "bridges": hosts, "bridges_draining": draining}

    def close(self) -> None:
        """Stop the renewer (joined), remove this host's record; slots are given back by ``slots.close``."""
        self._stop.set()
        self._poke.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.options.timeout_s * 4 + 1.0)
        try:
            self.link.call("host record", lambda c: c.hdel(self._hosts_key, self.host_id))
        except StoreUnreachable:
            pass
        self.link.client.close()

    def _run(self) -> None:
        period_s = self.options.lease_s / 3
        soon_s = min(period_s, max(self.options.retry_s, 0.05))
        while not self._stop.is_set():
            ok = False
            try:
                self.tick()
                ok = True
            except StoreUnreachable:
                pass  # logged by the link; the leases are kept here and renewed when Redis is back
            except Exception:  # noqa: BLE001 - a renewer that dies would let every lease expire
                log.exception("renewing the call leases failed; trying again")
            # After a failure, or with releases still owed, try again soon: once Redis answers, the
            # live calls are counted again and ended ones released within retry_s, not a third of a lease.
            self._poke.wait(period_s if ok and not self.slots.owes_releases else soon_s)
            self._poke.clear()
