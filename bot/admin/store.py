"""Where the admin records live: in memory (one process) or in Redis (shared by every worker).

Two shapes are enough: records that expire after the retention period, counted from when they
were kept (the inbox, the audit log), optionally indexed by an owner so ``/forget`` can delete a
user's records, and plain counters (ratings).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

Record = dict[str, Any]
Clock = Callable[[], float]


class AdminStore(Protocol):
    """Records that expire, and counters."""

    async def append(self, stream: str, record: Record, *, owner: str | None = None) -> str:
        """Keep ``record`` (a JSON object) until the retention period has passed; returns its id."""

    async def items(self, stream: str, *, limit: int | None = None) -> list[tuple[str, Record]]:
        """The records not yet expired, the most recently kept first."""

    async def remove(self, stream: str, ids: Iterable[str]) -> None: ...

    async def remove_owner(self, stream: str, owner: str) -> int:
        """Delete every record of ``owner``; how many there were."""

    async def increment(self, counter: str, field: str, by: int = 1) -> None: ...

    async def counts(self, counter: str) -> dict[str, int]: ...

    async def close(self) -> None: ...


def new_id() -> str:
    return secrets.token_hex(8)


class MemoryAdminStore:
    """Dicts in insertion order; expired records are dropped whenever a stream is read or written."""

    def __init__(self, retention_seconds: int, clock: Clock = time.time) -> None:
        self._retention = retention_seconds
        self._clock = clock
        self._streams: dict[str, dict[str, tuple[float, str | None, Record]]] = {}
        self._counters: dict[str, dict[str, int]] = {}

    def _live(self, stream: str) -> dict[str, tuple[float, str | None, Record]]:
        records = self._streams.setdefault(stream, {})
        oldest = self._clock() - self._retention
        for expired in [i for i, (kept, _, _) in records.items() if kept < oldest]:
            del records[expired]
        return records

    async def append(self, stream: str, record: Record, *, owner: str | None = None) -> str:
        record_id = new_id()
        self._live(stream)[record_id] = (self._clock(), owner, dict(record))
        return record_id

    async def items(self, stream: str, *, limit: int | None = None) -> list[tuple[str, Record]]:
        newest_first = list(reversed(self._live(stream).items()))[:limit]
        return [(i, dict(record)) for i, (_, _, record) in newest_first]

    async def remove(self, stream: str, ids: Iterable[str]) -> None:
        records = self._live(stream)
        for record_id in ids:
            records.pop(record_id, None)

    async def remove_owner(self, stream: str, owner: str) -> int:
        records = self._live(stream)
        mine = [i for i, (_, who, _) in records.items() if who == owner]
        for record_id in mine:
            del records[record_id]
        return len(mine)

    async def increment(self, counter: str, field: str, by: int = 1) -> None:
        counts = self._counters.setdefault(counter, {})
        counts[field] = counts.get(field, 0) + by

    async def counts(self, counter: str) -> dict[str, int]:
        return dict(self._counters.get(counter, {}))

    async def close(self) -> None:
        return None


class RedisAdminStore:
    """Per stream: a hash of JSON records, a sorted set of their times, and one set per owner.

    A stream's keys share the hash tag ``{admin-<stream>}``, so its transactions also work on a
    Redis Cluster (one slot).
    """

    def __init__(
        self, url: str, retention_seconds: int, clock: Clock = time.time, prefix: str = "guichet"
    ) -> None:
        from bot.storage.redis import connect

        self._redis: Any = connect(url)
        self._retention = retention_seconds
        self._clock = clock
        self._prefix = prefix

    def _keys(self, stream: str) -> tuple[str, str]:
        return f"{self._prefix}:{{admin-{stream}}}:records", f"{self._prefix}:{{admin-{stream}}}:at"

    def _owner_key(self, stream: str, owner: str) -> str:
        return f"{self._prefix}:{{admin-{stream}}}:owner:{owner}"

    async def _expire(self, stream: str) -> None:
        records, times = self._keys(stream)
        expired = await self._redis.zrangebyscore(times, "-inf", self._clock() - self._retention)
        if expired:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(records, *expired)
                pipe.zrem(times, *expired)
                await pipe.execute()

    async def append(self, stream: str, record: Record, *, owner: str | None = None) -> str:
        record_id = new_id()
        records, times = self._keys(stream)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(records, record_id, json.dumps({**record, "owner": owner}, ensure_ascii=False))
            pipe.zadd(times, {record_id: self._clock()})
            # Old entries are dropped one by one on reading; a stream nobody writes to goes whole.
            pipe.expire(records, self._retention)
            pipe.expire(times, self._retention)
            if owner:
                pipe.sadd(self._owner_key(stream, owner), record_id)
                pipe.expire(self._owner_key(stream, owner), self._retention)
            await pipe.execute()
        return record_id

    async def items(self, stream: str, *, limit: int | None = None) -> list[tuple[str, Record]]:
        await self._expire(stream)
        records, times = self._keys(stream)
        found_ids = await self._redis.zrevrange(times, 0, -1 if limit is None else limit - 1)
        ids = [str(record_id) for record_id in found_ids]
        if not ids:
            return []
        values = await self._redis.hmget(records, ids)
        found = []
        for record_id, raw in zip(ids, values, strict=True):
            if raw:
                record = json.loads(raw)
                record.pop("owner", None)
                found.append((record_id, record))
        return found

    async def remove(self, stream: str, ids: Iterable[str]) -> None:
        wanted = list(ids)
        if not wanted:
            return
        records, times = self._keys(stream)
        raw = await self._redis.hmget(records, wanted)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(records, *wanted)
            pipe.zrem(times, *wanted)
            for record_id, value in zip(wanted, raw, strict=True):
                owner = json.loads(value).get("owner") if value else None
                if owner:
                    pipe.srem(self._owner_key(stream, owner), record_id)
            await pipe.execute()

    async def remove_owner(self, stream: str, owner: str) -> int:
        key = self._owner_key(stream, owner)
        ids = list(await self._redis.smembers(key))
        records, times = self._keys(stream)
        async with self._redis.pipeline(transaction=True) as pipe:
            if ids:
                pipe.hdel(records, *ids)
                pipe.zrem(times, *ids)
            pipe.delete(key)
            await pipe.execute()
        return len(ids)

    async def increment(self, counter: str, field: str, by: int = 1) -> None:
        await self._redis.hincrby(f"{self._prefix}:{{admin-{counter}}}:counts", field, by)

    async def counts(self, counter: str) -> dict[str, int]:
        raw = await self._redis.hgetall(f"{self._prefix}:{{admin-{counter}}}:counts")
        return {str(field): int(value) for field, value in raw.items()}

    async def close(self) -> None:
        await self._redis.aclose()


def admin_store_for(storage_url: str | None, retention_seconds: int, prefix: str = "guichet") -> AdminStore:
    """Redis when the bot stores conversations there (several workers), else memory."""
    if storage_url:
        return RedisAdminStore(storage_url, retention_seconds, prefix=prefix)
    return MemoryAdminStore(retention_seconds)
