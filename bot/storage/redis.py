"""Redis storage: several ``guichet serve`` workers share one Redis (or a Redis Cluster).

Every key of one user carries the user's pseudonymous key as a hash tag, so all of them live
in one cluster slot and change together in one script:

    guichet:{<key>}:conv     the conversation (JSON)
    guichet:{<key>}:inbox    accepted messages not yet processed (list of JSON, oldest first)
    guichet:{<key>}:seen     hashes of the platform message ids already accepted (sorted by time)
    guichet:{<key>}:rate     times of the user's recent messages (sliding window)
    guichet:{<key>}:lock     the lease of the worker processing the user's messages

Two indexes span users, each under a hash tag of its own:

    guichet:{handoff}:queue  keys of the conversations waiting for staff, scored by handoff time
    guichet:{inbox}:pending  keys whose inbox holds messages, for recovery after a crash
    guichet:seen:{<hash>}    a platform message id seen outside any user (``first_delivery``)

Every key expires: the user's keys after the retention period (refreshed on each write), the
lock after its lease, the rate window after the window. ``delete`` removes all of them at once.
Any failure to reach Redis surfaces as :class:`StorageUnavailable` (webhooks answer 503); the
client reconnects by itself on the next command once Redis is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.conversation import Conversation
from bot.messages import IncomingMessage
from bot.storage.base import Lease, Storage, StorageUnavailable

log = logging.getLogger(__name__)

# Failures that mean "Redis cannot take this now" (down, loading its AOF after a restart, failing
# over, out of memory), as opposed to a bug: the caller refuses the delivery and it comes back.
_OUTAGES = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    RedisClusterException,
    TryAgainError,
    ReadOnlyError,
    OutOfMemoryError,
)
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Platforms redeliver for days when they got no 200 (Meta: up to 7 days); within the retention period.
_DEDUPE_SECONDS = 7 * 24 * 3600
# A pending-inbox entry with an empty inbox is dropped once it is this old (see keys_with_incoming).
_STALE_PENDING_SECONDS = 60.0
_LOCK_POLL_SECONDS = (0.002, 0.1)
# Commands in flight at once, per process. The cluster client refuses (rather than waits for) a
# 101st connection to one node, and a burst must queue here instead of failing.
_IN_FLIGHT = 64

# KEYS: seen, inbox. ARGV: message id hash ('' for none), now (ms), dedupe window (ms),
# retention (s), message JSON. Dedupe and push in one step: a message is either refused as a
# redelivery or stored, never marked as seen without being stored.
_ACCEPT = """
if ARGV[1] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
  if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""
# KEYS: inbox. ARGV: the message JSON that was processed. Removes it only if it is still the
# oldest (the user's data may have been deleted meanwhile); returns how many are left.
_ACK = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('LPOP', KEYS[1]) end
return redis.call('LLEN', KEYS[1])
"""
# KEYS: rate. ARGV: window (ms), limit, a unique member. Sliding window on Redis's clock (the
# same for every worker); only the newest limit + 1 times are kept, which is all the answer needs.
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""
# KEYS: lock. ARGV: token, lease (ms). Renew only a lease we still hold.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: lock. ARGV: token. Release only our own lease, never the next holder's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _encode(message: IncomingMessage) -> str:
    """The inbox form of a message; deterministic, so a processed message can be found again."""
    return json.dumps(message.to_json(), ensure_ascii=False, separators=(",", ":"))


def _digest(message_id: str, length: int = 16) -> str:
    """Platform message ids can embed the sender's number (WhatsApp wamids do): store a hash.
    64 bits tell apart the few hundred ids of one user; global keys use more."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:length]


def connect(url: str, **options: Any) -> Redis | RedisCluster:
    """A client for ``url``: ``redis://``, ``rediss://``, ``unix://``, or ``redis+cluster://host:port``
    (``rediss+cluster://``) for a Redis Cluster, given any one of its nodes.

    Failing fast matters more than waiting: an unreachable Redis must become a 503 within a
    second or two, and the platform delivers again later. Query parameters of the URL
    (``?socket_timeout=5``) override these defaults.
    """
    options = {
        "decode_responses": True,
        "socket_connect_timeout": 2.0,
        "socket_timeout": 2.0,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        **options,
    }
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}", **options)
    return Redis.from_url(url, **options)


class RedisStorage(Storage):
    """The storage interface on Redis; see the module docstring for the keys."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        retention_seconds: int,
        lease_seconds: float = 10.0,
        prefix: str = "guichet",
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._retention = retention_seconds
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._dedupe_ms = min(_DEDUPE_SECONDS, retention_seconds) * 1000
        self._accept = client.register_script(_ACCEPT)
        self._ack = client.register_script(_ACK)
        self._rate = client.register_script(_RATE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._queue = f"{prefix}:{{handoff}}:queue"
        self._pending = f"{prefix}:{{inbox}}:pending"
        self._in_flight = asyncio.Semaphore(_IN_FLIGHT)
        self._cluster_ready = not isinstance(client, RedisCluster)
        self._cluster_starting = asyncio.Lock()
        self._renewals: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls, url: str, *, retention_seconds: int, lease_seconds: float = 10.0, prefix: str = "guichet"
    ) -> RedisStorage:
        return cls(
            connect(url), retention_seconds=retention_seconds, lease_seconds=lease_seconds, prefix=prefix
        )

    @asynccontextmanager
    async def _redis(self) -> AsyncIterator[None]:
        """Around every exchange with Redis: a place among those in flight, and outages translated
        into :class:`StorageUnavailable`."""
        async with self._in_flight:
            try:
                if not self._cluster_ready:
                    await self._discover_cluster()
                yield
            except _OUTAGES as exc:
                raise StorageUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc

    async def _discover_cluster(self) -> None:
        """Learn the cluster's slots once, before the first commands: redis-py's cluster client
        mixes up connections when many first commands race to do it (redis-py 8.1)."""
        async with self._cluster_starting:
            if not self._cluster_ready:
                assert isinstance(self.client, RedisCluster)
                await self.client.initialize()
                self._cluster_ready = True

    def key(self, user: str, part: str) -> str:
        """The Redis key of one part of a user's data (``conv``, ``inbox``, ``seen``, ``rate``, ``lock``)."""
        return f"{self.prefix}:{{{user}}}:{part}"

    # -- conversations -------------------------------------------------------------------------

    async def get(self, key: str) -> Conversation | None:
        async with self._redis():
            raw = await self.client.get(self.key(key, "conv"))
        return None if raw is None else Conversation.model_validate_json(raw)

    async def put(self, conversation: Conversation) -> None:
        key = conversation.key
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self.key(key, "conv"), conversation.model_dump_json(), ex=self._retention)
            pipe.expire(self.key(key, "seen"), self._retention)
            if conversation.handoff:
                pipe.zadd(self._queue, {key: conversation.handoff.since.timestamp()})
                pipe.expire(self._queue, self._retention)
            else:
                pipe.zrem(self._queue, key)
            async with self._redis():
                await pipe.execute()

    async def delete(self, key: str) -> None:
        # The lock is not data about the user: its holder releases it moments later.
        parts = [self.key(key, part) for part in ("conv", "inbox", "seen", "rate")]
        async with self.client.pipeline(transaction=False) as pipe:
            for part in parts:  # one by one: DEL of several keys is refused across cluster slots
                pipe.delete(part)
            pipe.zrem(self._queue, key)
            pipe.zrem(self._pending, key)
            async with self._redis():
                await pipe.execute()

    async def handoff_queue(self) -> list[Conversation]:
        async with self._redis():
            keys = cast(list[str], list(await self.client.zrange(self._queue, 0, -1)))
            if not keys:
                return []
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(self.key(key, "conv"))
                raws = await pipe.execute()
            waiting = [Conversation.model_validate_json(raw) for raw in raws if raw is not None]
            # Conversations that expired, or that left the queue between two writes, are pruned.
            gone = [c.key for c in waiting if c.handoff is None]
            gone += [key for key, raw in zip(keys, raws, strict=True) if raw is None]
            if gone:
                await self.client.zrem(self._queue, *gone)
        waiting = [c for c in waiting if c.handoff is not None]
        waiting.sort(key=lambda c: (not c.handoff.urgent, c.handoff.since) if c.handoff else (True, 0))
        return waiting

    # -- deliveries ----------------------------------------------------------------------------

    async def first_delivery(self, message_id: str) -> bool:
        name = f"{self.prefix}:seen:{{{_digest(message_id, 32)}}}"
        async with self._redis():
            return bool(await self.client.set(name, 1, nx=True, ex=self._dedupe_ms // 1000))

    async def accept_incoming(self, key: str, message: IncomingMessage, delivery_id: str | None) -> bool:
        """Dedupe and store in one script, then index the user for recovery, in one round trip
        on a single Redis. The index comes second (see ``ack_incoming``); it is written for a
        redelivery too, so a worker that died between the two leaves no message unindexed."""
        keys = [self.key(key, "seen"), self.key(key, "inbox")]
        digest = _digest(delivery_id) if delivery_id else ""
        args: list[str | int] = [
            digest,
            int(time.time() * 1000),
            self._dedupe_ms,
            self._retention,
            _encode(message),
        ]
        async with self._redis():
            if isinstance(self.client, RedisCluster):  # other slots, other nodes: one after the other
                accepted = await self._accept(keys=keys, args=args)
                await self.client.zadd(self._pending, {key: time.time()})
                await self.client.expire(self._pending, self._retention)
                return bool(accepted)
            async with self.client.pipeline(transaction=False) as pipe:
                await self._accept(keys=keys, args=args, client=pipe)
                pipe.zadd(self._pending, {key: time.time()})
                pipe.expire(self._pending, self._retention)
                accepted, *_ = await pipe.execute()
        return bool(accepted)

    async def push_incoming(self, key: str, message: IncomingMessage) -> None:
        await self.accept_incoming(key, message, None)

    async def peek_incoming(self, key: str) -> IncomingMessage | None:
        async with self._redis():
            raw = await self.client.lindex(self.key(key, "inbox"), 0)
        return None if raw is None else IncomingMessage.from_json(json.loads(raw))

    async def ack_incoming(self, key: str, message: IncomingMessage) -> None:
        async with self._redis():
            left = await self._ack(keys=[self.key(key, "inbox")], args=[_encode(message)])
            if left == 0:
                await self.client.zrem(self._pending, key)
                # A message stored since is indexed after it is stored: either after this removal,
                # or before it, and then it is in the inbox now.
                if await self.client.llen(self.key(key, "inbox")):
                    await self.client.zadd(self._pending, {key: time.time()})

    async def keys_with_incoming(self) -> list[str]:
        async with self._redis():
            keys = cast(
                list[tuple[str, float]], list(await self.client.zrange(self._pending, 0, -1, withscores=True))
            )
            if not keys:
                return []
            async with self.client.pipeline(transaction=False) as pipe:
                for key, _ in keys:
                    pipe.llen(self.key(key, "inbox"))
                lengths = await pipe.execute()
            stale_before = time.time() - _STALE_PENDING_SECONDS
            stale = [k for (k, at), n in zip(keys, lengths, strict=True) if not n and at < stale_before]
            if stale:
                await self.client.zrem(self._pending, *stale)
        return [key for (key, _), n in zip(keys, lengths, strict=True) if n]

    # -- locks and rate limits -----------------------------------------------------------------

    @asynccontextmanager
    async def user_lock(self, key: str) -> AsyncIterator[Lease]:
        """A lease, renewed while held: only a dead (or stalled) worker's lock expires."""
        lease = _RedisLease(self, self.key(key, "lock"))
        delay, longest = _LOCK_POLL_SECONDS
        while True:
            async with self._redis():
                if await self.client.set(lease.name, lease.token, nx=True, px=self._lease_ms):
                    break
            await asyncio.sleep(delay)
            delay = min(longest, delay * 2)
        renewing = asyncio.get_running_loop().create_task(lease.keep())
        self._renewals.add(renewing)
        renewing.add_done_callback(self._renewals.discard)
        try:
            yield lease
        finally:
            # Not awaited: on Python 3.11 a cancellation can be lost inside redis-py's
            # asyncio.wait_for (cpython#86296), and waiting for it would hold the lock forever.
            lease.released = True
            renewing.cancel()
            try:
                async with self._redis():
                    await self._release(keys=[lease.name], args=[lease.token])
            except StorageUnavailable:
                log.warning("could not release a user lock; it expires with its lease")

    async def _renew_lease(self, lease: _RedisLease) -> bool:
        async with self._redis():
            return bool(await self._renew(keys=[lease.name], args=[lease.token, self._lease_ms]))

    async def within_rate_limit(self, key: str, limit: int, window_seconds: int) -> bool:
        async with self._redis():
            count = await self._rate(
                keys=[self.key(key, "rate")], args=[window_seconds * 1000, limit, secrets.token_hex(8)]
            )
        return int(count) <= limit

    async def close(self) -> None:
        await self.client.aclose()


class _RedisLease(Lease):
    """One worker's hold on a user's lock: a random token under the lock key, with an expiry."""

    def __init__(self, storage: RedisStorage, name: str) -> None:
        self.storage = storage
        self.name = name
        self.token = secrets.token_hex(16)
        self.released = False

    async def held(self) -> bool:
        """Renew now: True if the lease was still ours (it then runs a full lease again)."""
        return await self.storage._renew_lease(self)

    async def keep(self) -> None:
        """Renew every third of the lease, for as long as the lock is held."""
        every = self.storage._lease_ms / 3000
        while True:
            await asyncio.sleep(every)
            if self.released:
                return
            try:
                if not await self.storage._renew_lease(self) and not self.released:
                    log.warning("a user lock was lost while held (worker stalled, or Redis away)")
                    return
            except StorageUnavailable:
                log.warning("could not renew a user lock; trying again")
