"""The schema of ``responses/services/*.yml``: one local service, validated with pydantic.

Checks sit on the smallest part they concern (one topic, one span, one language key), so an
error's location points at the exact line of the file (see :mod:`bot.services.loader`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from babel import Locale, UnknownLocaleError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from bot.config import WEEKDAYS, TimeSpan

_DAY_RANGE = re.compile(r"^([a-z]+)-([a-z]+)$")
_FULL_DAY = 24 * 60


def weekdays(key: str) -> list[str]:
    """The days of ``monday`` or of a range such as ``monday-friday``."""
    key = key.strip().lower()
    if key in WEEKDAYS:
        return [key]
    match = _DAY_RANGE.match(key)
    if match and match[1] in WEEKDAYS and match[2] in WEEKDAYS:
        first, last = WEEKDAYS.index(match[1]), WEEKDAYS.index(match[2])
        if first < last:
            return list(WEEKDAYS[first : last + 1])
    raise ValueError(f"unknown day {key!r} (use monday ... sunday, or a range like monday-friday)")


def _day_key(key: str) -> str:
    weekdays(key)
    return key.strip().lower()


def _span(value: object) -> object:
    return TimeSpan.parse(value) if isinstance(value, str) else value


def _context(info: ValidationInfo, name: str) -> object:
    return (info.context or {}).get(name)


def _known_topic(topic: str, info: ValidationInfo) -> str:
    known = _context(info, "topics")
    if isinstance(known, list | tuple | set | frozenset) and topic not in known:
        raise ValueError(f"unknown topic {topic!r} (topics are the ids of responses/*.yml)")
    return topic


def _content_language(lang: str, info: ValidationInfo) -> str:
    languages = _context(info, "languages")
    if isinstance(languages, list | tuple) and lang not in languages:
        raise ValueError(f"{lang!r} is not a content language ({', '.join(languages)})")
    return lang


def _spoken_language(code: str) -> str:
    try:
        Locale.parse(code)
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"unknown language code {code!r}") from exc
    return code


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("the text is empty")
    return value.strip()


Span = Annotated[TimeSpan, BeforeValidator(_span)]
DayKey = Annotated[str, AfterValidator(_day_key)]
Topic = Annotated[str, AfterValidator(_known_topic)]
SpokenLanguage = Annotated[str, AfterValidator(_spoken_language)]
# A text per content language: {en: "...", fr: "..."}; read it with ``describe.localized``.
Localized = dict[Annotated[str, AfterValidator(_content_language)], Annotated[str, AfterValidator(_text)]]


class Service(BaseModel):
    """One local service: what it does, where, when, in which languages, for whom."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=60)
    name: Localized = Field(min_length=1)
    topics: list[Topic] = Field(min_length=1)
    address: str = Field(min_length=1)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    # Weekly hours in the centre's time zone; keys are days or day ranges (monday-friday).
    hours: dict[DayKey, list[Span]] = Field(default_factory=dict)
    always_open: bool = False  # day and night, every day (shelters, hotlines)
    # Special hours on a given date; an empty list means closed that day.
    exceptions: dict[dt.date, list[Span]] = Field(default_factory=dict)
    public_holidays: bool = True  # closed on the holidays of config.yml
    holidays: list[dt.date] = Field(default_factory=list)  # the service's own closed days
    phone: str | None = None
    email: str | None = None
    website: str | None = Field(default=None, pattern=r"^https?://\S+$")
    languages: list[SpokenLanguage] = Field(min_length=1)  # spoken at the service (any language code)
    cost: Literal["free", "paid"]
    cost_note: Localized = Field(default_factory=dict)
    audience: Localized = Field(default_factory=dict)  # who it is for; empty means everyone
    description: Localized = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent_hours(self) -> Service:
        days = [day for key in self.hours for day in weekdays(key)]
        if repeated := sorted({day for day in days if days.count(day) > 1}):
            raise ValueError(f"{', '.join(repeated)} given twice in `hours`")
        if self.always_open and self.hours:
            raise ValueError("give either `always_open: true` or `hours`, not both")
        weekly = self.weekly
        if not self.always_open and not any(weekly.values()):
            raise ValueError("give the opening `hours` (or `always_open: true`)")
        if all(
            [(s.start_minutes, s.end_minutes) for s in weekly.get(day, [])] == [(0, _FULL_DAY)]
            for day in WEEKDAYS
        ):
            raise ValueError("open 00:00-24:00 every day: write `always_open: true` instead")
        return self

    @property
    def weekly(self) -> dict[str, list[TimeSpan]]:
        """The hours with day ranges spelled out: ``{"monday": [...], "tuesday": [...]}``."""
        return {day: spans for key, spans in self.hours.items() for day in weekdays(key)}

    def speaks(self, lang: str) -> bool:
        return lang in self.languages


class ServiceFile(BaseModel):
    """One ``responses/services/<area>.yml`` file: a list of services."""

    model_config = ConfigDict(extra="forbid")

    services: list[Service] = Field(min_length=1)
