"""Opening hours: is a place open now, when does it close, when does it open next.

Used for the guichet itself (handoff messages) and for every service in the directory.
All computations happen in the place's own time zone; spans may end at 24:00 and a
span that runs past midnight is written as two spans (``22:00-24:00`` and ``00:00-02:00``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time, get_day_names

from bot.config import WEEKDAYS, TimeSpan

_LOOKAHEAD_DAYS = 21


@dataclass(frozen=True)
class OpeningHours:
    """A weekly schedule with closed days, in one time zone."""

    weekly: Mapping[str, Sequence[TimeSpan]]
    holidays: frozenset[dt.date]
    zone: ZoneInfo

    def _spans_on(self, day: dt.date) -> Sequence[TimeSpan]:
        if day in self.holidays:
            return ()
        return self.weekly.get(WEEKDAYS[day.weekday()], ())

    def _local(self, moment: dt.datetime) -> dt.datetime:
        if moment.tzinfo is None:
            raise ValueError("opening-hours arithmetic needs an aware datetime")
        return moment.astimezone(self.zone)

    def _at(self, day: dt.date, minutes: int) -> dt.datetime:
        midnight = dt.datetime.combine(day, dt.time(0, 0), tzinfo=self.zone)
        return midnight + dt.timedelta(minutes=minutes)

    def closes_at(self, moment: dt.datetime) -> dt.datetime | None:
        """When the current opening ends, or None when closed at ``moment``.

        A span ending at 24:00 followed by one starting at 00:00 counts as one opening; a place
        open round the clock "closes" at the end of the look-ahead period.
        """
        local = self._local(moment)
        end = self._span_end(local.date(), local.hour * 60 + local.minute)
        if end is None:
            return None
        for _ in range(_LOOKAHEAD_DAYS):
            if end.hour or end.minute:
                break
            following = self._span_end(end.date(), 0)
            if following is None:
                break
            end = following
        return end

    def _span_end(self, day: dt.date, minute: int) -> dt.datetime | None:
        for span in self._spans_on(day):
            if span.start_minutes <= minute < span.end_minutes:
                return self._at(day, span.end_minutes)
        return None

    def is_open(self, moment: dt.datetime) -> bool:
        return self.closes_at(moment) is not None

    def next_opening(self, moment: dt.datetime) -> dt.datetime | None:
        """The next time the place opens after ``moment`` (None if it never does within 3 weeks)."""
        local = self._local(moment)
        for offset in range(_LOOKAHEAD_DAYS):
            day = local.date() + dt.timedelta(days=offset)
            for span in sorted(self._spans_on(day), key=lambda s: s.start_minutes):
                start = self._at(day, span.start_minutes)
                if start > local:
                    return start
        return None

    def describe_week(self, locale: str) -> str:
        """One line per day, e.g. ``Monday: 09:00–17:00``, in the reader's language."""
        names = get_day_names("wide", locale=locale)
        lines = []
        for index, day in enumerate(WEEKDAYS):
            spans = self.weekly.get(day, ())
            if not spans:
                continue
            hours = ", ".join(
                f"{_clock(s.start_minutes, locale)}–{_clock(s.end_minutes, locale)}" for s in spans
            )
            lines.append(f"{names[index].capitalize()}: {hours}")
        return "\n".join(lines)


def _clock(minutes: int, locale: str) -> str:
    if minutes >= 24 * 60:
        return "24:00"
    return format_time(dt.time(minutes // 60, minutes % 60), "HH:mm", locale=locale)


def format_moment(moment: dt.datetime, locale: str, zone: ZoneInfo, now: dt.datetime) -> str:
    """A short human date for ``moment``: the weekday and time, with the date when over a week away."""
    local = moment.astimezone(zone)
    days_away = (local.date() - now.astimezone(zone).date()).days
    if days_away < 7:
        return format_datetime(local, "EEEE HH:mm", tzinfo=zone, locale=locale)
    day = format_date(local.date(), "full", locale=locale)
    return f"{day} {format_time(local, 'HH:mm', tzinfo=zone, locale=locale)}"
