"""Small persistent maps for the staff side (accounts, Telegram topics): a JSON file, or Redis.

The file is re-read on every access, so ``guichet staff add`` takes effect in a running server
at once; it is written atomically and readable by its owner only.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Protocol

Record = dict[str, Any]


class Records(Protocol):
    """A map of names to JSON objects."""

    async def get(self, name: str) -> Record | None: ...

    async def put(self, name: str, value: Record) -> None: ...

    async def delete(self, name: str) -> None: ...

    async def all(self) -> dict[str, Record]: ...

    async def close(self) -> None: ...


class FileRecords:
    """One JSON file (a few dozen records at most: staff accounts, open topics)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, Record]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: not a JSON object")
        return data

    def _write(self, data: dict[str, Record]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=2, sort_keys=True)
        os.replace(temp, self.path)

    async def get(self, name: str) -> Record | None:
        return self._read().get(name)

    async def put(self, name: str, value: Record) -> None:
        async with self._lock:
            data = self._read()
            data[name] = value
            self._write(data)

    async def delete(self, name: str) -> None:
        async with self._lock:
            data = self._read()
            if data.pop(name, None) is not None:
                self._write(data)

    async def all(self) -> dict[str, Record]:
        return self._read()

    async def close(self) -> None:
        return None


class RedisRecords:
    """One Redis hash, shared by every worker."""

    def __init__(self, url: str, hash_name: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._hash = hash_name

    async def get(self, name: str) -> Record | None:
        raw = await self._redis.hget(self._hash, name)
        return json.loads(raw) if raw else None

    async def put(self, name: str, value: Record) -> None:
        await self._redis.hset(self._hash, name, json.dumps(value, ensure_ascii=False))

    async def delete(self, name: str) -> None:
        await self._redis.hdel(self._hash, name)

    async def all(self) -> dict[str, Record]:
        raw = await self._redis.hgetall(self._hash)
        return {str(name): json.loads(value) for name, value in raw.items()}

    async def close(self) -> None:
        await self._redis.aclose()


def records_for(storage_url: str | None, staff_dir: Path, name: str) -> Records:
    """Redis when the bot stores conversations there (several workers), else a file in ``staff_dir``."""
    if storage_url:
        return RedisRecords(storage_url, f"guichet:staff:{name}")
    return FileRecords(staff_dir / f"{name}.json")
