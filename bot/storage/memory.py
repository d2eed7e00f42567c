"""In-memory storage: the default for one process (a small centre, tests, ``guichet chat``)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.conversation import Conversation
from bot.messages import IncomingMessage
from bot.storage.base import Lease, Storage

_DEDUPE_SECONDS = 7 * 24 * 3600


class MemoryStorage(Storage):
    """Dicts with expiry times; retention is enforced lazily on read and on each write."""

    def __init__(self, retention_seconds: int) -> None:
        self._retention = retention_seconds
        self._conversations: dict[str, tuple[float, Conversation]] = {}
        self._seen: dict[str, float] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)
        self._inbox: defaultdict[str, deque[IncomingMessage]] = defaultdict(deque)

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    async def get(self, key: str) -> Conversation | None:
        entry = self._conversations.get(key)
        if entry is None:
            return None
        expires, conversation = entry
        if expires < self._now():
            del self._conversations[key]
            return None
        return conversation.model_copy(deep=True)

    async def put(self, conversation: Conversation) -> None:
        self._conversations[conversation.key] = (
            self._now() + self._retention,
            conversation.model_copy(deep=True),
        )

    async def delete(self, key: str) -> None:
        self._conversations.pop(key, None)
        self._hits.pop(key, None)
        self._inbox.pop(key, None)

    async def first_delivery(self, message_id: str) -> bool:
        now = self._now()
        if len(self._seen) > 100_000:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        if self._seen.get(message_id, 0) > now:
            return False
        self._seen[message_id] = now + _DEDUPE_SECONDS
        return True

    @asynccontextmanager
    async def user_lock(self, key: str) -> AsyncIterator[Lease]:
        async with self._locks[key]:
            yield Lease()

    async def within_rate_limit(self, key: str, limit: int, window_seconds: int) -> bool:
        now = self._now()
        hits = self._hits[key]
        while hits and hits[0] <= now - window_seconds:
            hits.popleft()
        hits.append(now)
        return len(hits) <= limit

    async def handoff_queue(self) -> list[Conversation]:
        now = self._now()
        waiting = [c for expires, c in self._conversations.values() if expires >= now and c.handoff]
        waiting.sort(key=lambda c: (not c.handoff.urgent, c.handoff.since) if c.handoff else (True, 0))
        return [c.model_copy(deep=True) for c in waiting]

    async def push_incoming(self, key: str, message: IncomingMessage) -> None:
        self._inbox[key].append(message)

    async def peek_incoming(self, key: str) -> IncomingMessage | None:
        inbox = self._inbox.get(key)
        return inbox[0] if inbox else None

    async def ack_incoming(self, key: str, message: IncomingMessage) -> None:
        inbox = self._inbox.get(key)
        if inbox and inbox[0] == message:
            inbox.popleft()
            if not inbox:
                del self._inbox[key]

    async def keys_with_incoming(self) -> list[str]:
        return [key for key, inbox in self._inbox.items() if inbox]
