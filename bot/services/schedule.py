"""When a service is open: its weekly hours, dated exceptions and closed days, in the centre's zone."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.config import TimeSpan
from bot.hours import OpeningHours
from bot.services.model import Service


@dataclass(frozen=True)
class ServiceHours(OpeningHours):
    """Opening hours where a dated exception (shorter hours, an open holiday) beats the week."""

    exceptions: Mapping[dt.date, Sequence[TimeSpan]] = field(default_factory=dict)

    def _spans_on(self, day: dt.date) -> Sequence[TimeSpan]:
        if day in self.exceptions:
            return self.exceptions[day]
        return super()._spans_on(day)


def hours_of(service: Service, zone: ZoneInfo, public_holidays: frozenset[dt.date]) -> ServiceHours:
    closed = frozenset(service.holidays) | (public_holidays if service.public_holidays else frozenset())
    return ServiceHours(service.weekly, closed, zone, service.exceptions)


@dataclass(frozen=True)
class Status:
    """Open or closed at one moment; ``until`` is when it closes, ``opens`` when it opens next."""

    open: bool
    until: dt.datetime | None = None  # None while open means day and night
    opens: dt.datetime | None = None  # None while closed means not within three weeks

    @property
    def sort_key(self) -> tuple[int, float]:
        """Open first (day and night, then the later it closes), then the sooner it opens."""
        if self.open:
            return (0, -self.until.timestamp() if self.until else -math.inf)
        return (1, self.opens.timestamp()) if self.opens else (2, 0.0)


def status_at(service: Service, hours: ServiceHours, now: dt.datetime) -> Status:
    if service.always_open:
        return Status(open=True)
    closes = hours.closes_at(now)
    if closes is not None:
        return Status(open=True, until=closes)
    return Status(open=False, opens=hours.next_opening(now))
