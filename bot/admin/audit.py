"""The audit log: which curated answer was shown to whom (pseudonymous key) and when.

So that an admin can tell who was given an answer that turned out wrong, and with which version
of the content. Kept for ``privacy.retention_days``; ``/forget`` deletes a user's entries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.admin.store import AdminStore

STREAM = "audit"


@dataclass(frozen=True)
class Shown:
    key: str  # the conversation's pseudonymous key, never a phone number or chat id
    intent: str
    lang: str  # the language the answer was asked for (the fallback chain may have used another)
    version: str  # the content version that was live (see bot.admin.version)
    by: str  # "bot", or the name of the staff member who sent it
    at: dt.datetime


class AuditLog:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def add(self, shown: Shown) -> None:
        record = {
            "key": shown.key,
            "intent": shown.intent,
            "lang": shown.lang,
            "version": shown.version,
            "by": shown.by,
            "at": shown.at.timestamp(),
        }
        await self._store.append(STREAM, record, owner=shown.key)

    async def recent(
        self, *, limit: int = 200, key: str | None = None, intent: str | None = None
    ) -> list[Shown]:
        """The newest entries first, optionally of one conversation or one topic."""
        found = []
        for _, record in await self._store.items(STREAM, limit=None if key or intent else limit):
            if (key and record["key"] != key) or (intent and record["intent"] != intent):
                continue
            found.append(
                Shown(
                    key=str(record["key"]),
                    intent=str(record["intent"]),
                    lang=str(record["lang"]),
                    version=str(record.get("version", "")),
                    by=str(record.get("by", "bot")),
                    at=dt.datetime.fromtimestamp(float(record["at"]), dt.UTC),
                )
            )
            if len(found) >= limit:
                break
        return found

    async def forget(self, key: str) -> None:
        await self._store.remove_owner(STREAM, key)
