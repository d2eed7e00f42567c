"""Opening hours: open now, next opening, holidays, time zones, spans past midnight."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.config import TimeSpan
from bot.hours import OpeningHours, format_moment

TALLINN = ZoneInfo("Europe/Tallinn")


def hours(**weekly: list[str]) -> OpeningHours:
    spans = {day: [TimeSpan.parse(s) for s in value] for day, value in weekly.items()}
    return OpeningHours(spans, frozenset({dt.date(2026, 12, 24)}), TALLINN)


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TALLINN)


def test_open_and_closing_time() -> None:
    h = hours(monday=["09:00-17:00"])
    assert h.closes_at(at(2026, 11, 23, 10, 0)) == at(2026, 11, 23, 17, 0)
    assert not h.is_open(at(2026, 11, 23, 17, 0))
    assert not h.is_open(at(2026, 11, 23, 8, 59))


def test_next_opening_skips_closed_days_and_holidays() -> None:
    h = hours(monday=["09:00-17:00"], thursday=["10:00-12:00"])
    assert h.next_opening(at(2026, 11, 23, 18, 0)) == at(2026, 11, 26, 10, 0)
    # 2026-12-24 is a Thursday holiday: next is Monday 28th.
    assert h.next_opening(at(2026, 12, 22, 18, 0)) == at(2026, 12, 28, 9, 0)


def test_time_zone_is_the_places_own() -> None:
    h = hours(monday=["09:00-17:00"])
    # 06:30 UTC is 08:30 in Tallinn (winter, UTC+2): closed; 07:30 UTC is open.
    assert not h.is_open(dt.datetime(2026, 11, 23, 6, 30, tzinfo=dt.UTC))
    assert h.is_open(dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC))


def test_span_past_midnight_is_one_opening() -> None:
    h = hours(friday=["20:00-24:00"], saturday=["00:00-02:00"])
    assert h.is_open(at(2026, 11, 28, 1, 0))
    assert h.closes_at(at(2026, 11, 27, 23, 0)) == at(2026, 11, 28, 2, 0)


def test_moments_are_written_in_the_readers_language() -> None:
    now = at(2026, 11, 21, 20, 0)
    monday = at(2026, 11, 23, 9, 0)
    assert format_moment(monday, "fr", TALLINN, now) == "lundi 09:00"
    assert format_moment(monday, "uk", TALLINN, now) == "понеділок 09:00"
    assert "2027" in format_moment(at(2027, 1, 4, 9, 0), "en", TALLINN, now)


def test_week_description_uses_local_day_names() -> None:
    text = hours(monday=["09:00-17:00"]).describe_week("et")
    assert text == "Esmaspäev: 09:00–17:00"


def test_round_the_clock_place_is_open_and_closing_time_is_bounded() -> None:
    every_day = {
        day: ["00:00-24:00"]
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    }
    h = hours(**every_day)
    now = at(2026, 11, 23, 3, 0)
    assert h.is_open(now)
    closes = h.closes_at(now)
    assert closes is not None and closes > now + dt.timedelta(days=7)
