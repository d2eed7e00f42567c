"""Which services to show first: those speaking the user's language, open now or soon, nearest."""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.model import Service
from bot.services.schedule import Status


@dataclass(frozen=True)
class Match:
    """A service as one user sees it now: open or not, in their language or not, how far."""

    service: Service
    status: Status
    speaks: bool  # the user's language is spoken there
    distance_m: float | None = None  # from the user, when we know where they are


def relevance(match: Match) -> tuple[object, ...]:
    """Language first (an open door is of little use without words), then open now / soonest."""
    return (not match.speaks, match.status.sort_key, match.distance_m or 0.0, match.service.id)


def nearness(match: Match) -> tuple[object, ...]:
    """For "nearest": language first, then distance, then open now / soonest."""
    return (not match.speaks, match.distance_m or 0.0, match.status.sort_key, match.service.id)
