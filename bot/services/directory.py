"""The centre's directory of local services, and the services that fit one user right now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from zoneinfo import ZoneInfo

from bot.config import Config
from bot.services.geo import Point, distance_m
from bot.services.loader import load_services
from bot.services.model import Service
from bot.services.ranking import Match, nearness, relevance
from bot.services.schedule import ServiceHours, Status, hours_of, status_at


class ServiceDirectory:
    """All services, with their opening hours in the centre's time zone."""

    def __init__(
        self, services: Iterable[Service], *, zone: ZoneInfo, public_holidays: Collection[dt.date] = ()
    ) -> None:
        self.services = tuple(services)
        self.zone = zone
        holidays = frozenset(public_holidays)
        self._hours = {s.id: hours_of(s, zone, holidays) for s in self.services}

    @classmethod
    def from_config(cls, config: Config, *, topics: Collection[str] | None = None) -> ServiceDirectory:
        """Load ``config.services_dir``; ``topics`` (the answer ids) are checked when given."""
        services = load_services(config.services_dir, topics=topics, languages=config.languages.content)
        org = config.organisation
        return cls(services, zone=org.zone, public_holidays=org.holidays)

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics that have at least one service, in order of first appearance."""
        return tuple(dict.fromkeys(t for s in self.services for t in s.topics))

    @property
    def spoken(self) -> tuple[str, ...]:
        """Every language spoken at some service, sorted by code."""
        return tuple(sorted({lang for s in self.services for lang in s.languages}))

    def covers(self, topic: str | None) -> bool:
        return topic is not None and topic in self.topics

    def hours(self, service: Service) -> ServiceHours:
        return self._hours[service.id]

    def status(self, service: Service, now: dt.datetime) -> Status:
        return status_at(service, self._hours[service.id], now)

    def find(
        self,
        *,
        now: dt.datetime,
        topic: str | None = None,
        lang: str | None = None,
        spoken: str | None = None,
        near: Point | None = None,
        open_now: bool = False,
    ) -> list[Match]:
        """Services for ``topic`` (all when None), best first for a user speaking ``lang``.

        ``spoken`` keeps only services where that language is spoken; ``near`` orders by distance.
        """
        matches = []
        for service in self.services:
            if topic is not None and topic not in service.topics:
                continue
            if spoken is not None and not service.speaks(spoken):
                continue
            status = self.status(service, now)
            if open_now and not status.open:
                continue
            distance = distance_m(near, Point(service.latitude, service.longitude)) if near else None
            matches.append(Match(service, status, bool(lang and service.speaks(lang)), distance))
        return sorted(matches, key=nearness if near else relevance)
