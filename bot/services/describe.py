"""Services in words, in the reader's language: open until when, languages, distance, week."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_time, get_day_names
from babel.lists import format_list
from babel.units import format_unit

from bot.config import WEEKDAYS, TimeSpan
from bot.hours import format_moment
from bot.i18n import Catalogs
from bot.services.schedule import Status


def localized(texts: Mapping[str, str], chain: Sequence[str]) -> str:
    """The text in the first language of ``chain`` that has one, else in any language."""
    for lang in chain:
        if texts.get(lang):
            return texts[lang]
    return next(iter(texts.values()), "")


def _locale(lang: str) -> Locale:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def language_name(code: str, lang: str) -> str:
    """The name of language ``code`` written in ``lang`` (``arabe`` for ar in French)."""
    name = _locale(lang).languages.get(code) or code
    return name[:1].upper() + name[1:]


def language_list(codes: Sequence[str], lang: str) -> str:
    """``Arabic, English and Estonian``, written in ``lang``; the reader's own language first."""
    ordered = sorted(codes, key=lambda code: code != lang)
    names = [language_name(code, lang) for code in ordered]
    text = format_list(names, locale=_locale(lang))
    return text[:1].upper() + text[1:]


def distance_text(meters: float, lang: str) -> str:
    """``350 m`` or ``1,2 km`` in the reader's locale."""
    if meters < 1000:
        return format_unit(max(10, round(meters, -1)), "length-meter", "short", locale=_locale(lang))
    return format_unit(round(meters / 1000, 1), "length-kilometer", "short", locale=_locale(lang))


def status_text(status: Status, lang: str, zone: ZoneInfo, now: dt.datetime, catalogs: Catalogs) -> str:
    """``Open now, until 17:00`` / ``Closed now, opens Monday 09:00``, in the centre's time zone."""
    local_now = now.astimezone(zone)
    if status.open and status.until is None:
        return catalogs.gettext(lang, "Open day and night")
    if status.open and status.until is not None:
        until = status.until.astimezone(zone)
        if until.date() == local_now.date():
            time = format_time(until, "HH:mm", tzinfo=zone, locale=_locale(lang))
        else:
            time = format_moment(until, lang, zone, now)
        return catalogs.gettext(lang, "Open now, until %(time)s", time=time)
    if status.opens is None:
        return catalogs.gettext(lang, "Closed for now")
    opens = status.opens.astimezone(zone)
    if opens.date() == local_now.date():
        time = format_time(opens, "HH:mm", tzinfo=zone, locale=_locale(lang))
        return catalogs.gettext(lang, "Closed now, opens today at %(time)s", time=time)
    return catalogs.gettext(lang, "Closed now, opens %(when)s", when=format_moment(opens, lang, zone, now))


def _clock(minutes: int) -> str:
    return "24:00" if minutes >= 24 * 60 else f"{minutes // 60:02d}:{minutes % 60:02d}"


def week_text(weekly: Mapping[str, Sequence[TimeSpan]], lang: str) -> str:
    """The week in one line, days with the same hours grouped: ``Mon–Fri 09:00–17:00; Sat 10:00–14:00``."""
    names = get_day_names("abbreviated", locale=_locale(lang))
    groups: list[tuple[int, int, str]] = []
    for index, day in enumerate(WEEKDAYS):
        spans = weekly.get(day, ())
        if not spans:
            continue
        hours = ", ".join(f"{_clock(s.start_minutes)}–{_clock(s.end_minutes)}" for s in spans)
        if groups and groups[-1][1] == index - 1 and groups[-1][2] == hours:
            groups[-1] = (groups[-1][0], index, hours)
        else:
            groups.append((index, index, hours))
    parts = []
    for first, last, hours in groups:
        days = names[first] if first == last else f"{names[first]}–{names[last]}"
        parts.append(f"{days} {hours}")
    return "; ".join(parts)


def cost_text(cost: str, lang: str, catalogs: Catalogs) -> str:
    return catalogs.gettext(lang, "Free of charge") if cost == "free" else catalogs.gettext(lang, "Paid")
