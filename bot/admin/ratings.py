"""👍/👎 after curated answers, counted per topic and language, so admins find the weak answers.

Only counts are kept: no user, no time. The buttons carry ``rate:<intent>:up`` or ``:down``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.admin.store import AdminStore

RATE_PAYLOAD = "rate:"
_COUNTER = "ratings"


def rating_payload(intent: str, helpful: bool) -> str:
    return f"{RATE_PAYLOAD}{intent}:{'up' if helpful else 'down'}"


def parse_rating(payload: str) -> tuple[str, bool] | None:
    """``rate:housing_search:up`` -> ("housing_search", True); None when it is not a rating."""
    intent, _, verdict = payload.removeprefix(RATE_PAYLOAD).rpartition(":")
    if not payload.startswith(RATE_PAYLOAD) or not intent or verdict not in {"up", "down"}:
        return None
    return intent, verdict == "up"


@dataclass(frozen=True)
class RatingRow:
    intent: str
    lang: str
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def helpful_share(self) -> float:
        return self.up / self.total if self.total else 0.0


class Ratings:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def add(self, intent: str, lang: str, helpful: bool) -> None:
        await self._store.increment(_COUNTER, f"{intent}|{lang}|{'up' if helpful else 'down'}")

    async def table(self) -> list[RatingRow]:
        """One row per topic and language, the least helpful first."""
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for field, value in (await self._store.counts(_COUNTER)).items():
            intent, lang, verdict = field.split("|")
            counts.setdefault((intent, lang), {"up": 0, "down": 0})[verdict] = value
        rows = [RatingRow(i, lang, c["up"], c["down"]) for (i, lang), c in counts.items()]
        return sorted(rows, key=lambda r: (r.helpful_share, -r.total, r.intent, r.lang))
