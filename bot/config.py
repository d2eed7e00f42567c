"""The centre's configuration: ``config.yml`` validated with pydantic, secrets from the environment."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from ruamel.yaml import YAML

if TYPE_CHECKING:
    from bot.hours import OpeningHours

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yml"

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeSpan(_Strict):
    """An opening span within one day; ``end`` may be 24:00."""

    start: dt.time
    end_minutes: int

    @classmethod
    def parse(cls, text: str) -> TimeSpan:
        match = _SPAN.match(text.strip())
        if not match:
            raise ValueError(f"opening span {text!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise ValueError(f"opening span {text!r} ends before it starts")
        return cls(start=dt.time(h1, m1), end_minutes=end)

    @property
    def start_minutes(self) -> int:
        return self.start.hour * 60 + self.start.minute


class Organisation(_Strict):
    centre_name: str
    city: str
    address: str
    phone: str
    email: str
    website: str
    timezone: str = "UTC"
    language: str = "en"
    opening_hours: dict[str, list[TimeSpan]] = Field(default_factory=dict)
    holidays: list[dt.date] = Field(default_factory=list)
    numbers: dict[str, str] = Field(default_factory=dict)

    @field_validator("opening_hours", mode="before")
    @classmethod
    def _parse_hours(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        parsed: dict[str, list[TimeSpan]] = {}
        for day, spans in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            parsed[day] = [TimeSpan.parse(s) if isinstance(s, str) else s for s in (spans or [])]
        return parsed

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _emergency_number(self) -> Organisation:
        if "emergency" not in self.numbers:
            raise ValueError("organisation.numbers must define `emergency` (e.g. 112)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hours(self) -> OpeningHours:
        from bot.hours import OpeningHours

        return OpeningHours(self.opening_hours, frozenset(self.holidays), self.zone)


class Languages(_Strict):
    content: list[str]
    fallback: dict[str, list[str]] = Field(default_factory=dict)

    def chain(self, lang: str) -> list[str]:
        """The languages to try, in order, for an answer in ``lang``."""
        rest = self.fallback.get(lang, self.fallback.get("default", ["en"]))
        return list(dict.fromkeys([lang, *rest]))


class Thresholds(_Strict):
    """Confidence cut-offs of the answer / clarify / handoff policy (see ``bot.policy``)."""

    answer: float = Field(default=0.55, ge=0, le=1)
    clarify: float = Field(default=0.25, ge=0, le=1)
    clarify_second: float = Field(default=0.05, ge=0, le=1)
    emergency: float = Field(default=0.35, ge=0, le=1)


class NLUSettings(_Strict):
    backend: Literal["embedded", "rasa"] = "embedded"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_seconds: float = 3.0
    thresholds: Thresholds = Field(default_factory=Thresholds)
    model_dir: Path = PROJECT_ROOT / ".cache" / "nlu"


class Privacy(_Strict):
    """How long data is kept and how much one user may send."""

    retention_days: int = Field(default=30, ge=1)
    rate_limit_messages: int = Field(default=20, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)


class StorageSettings(_Strict):
    """In memory (one process), or Redis shared by several workers (bot/storage/redis.py)."""

    url: str | None = None  # redis://..., or redis+cluster://one-node:port for a Redis Cluster
    prefix: str = Field(default="guichet", min_length=1)  # every Redis key starts with it
    # A worker holds a user's lock under a lease it renews; if it dies, the lock frees itself
    # after this long and another worker takes over the message it was processing.
    lock_lease_seconds: float = Field(default=10.0, gt=0)
    # How often each worker looks for messages left behind by a worker that died.
    recover_every_seconds: float = Field(default=10.0, gt=0)


class ReopenTemplate(_Strict):
    """An approved WhatsApp message template, sent when staff answer after the 24-hour window."""

    name: str = Field(min_length=1)
    languages: list[str] = Field(default_factory=list)  # WhatsApp codes it is approved in (en_US, fr...)
    default_language: str = "en"  # for users whose language it is not approved in

    def language_for(self, lang: str) -> str:
        """The approved language closest to the user's ``lang``."""
        for code in self.languages:
            if code == lang or code.startswith(f"{lang}_"):
                return code
        return self.default_language


class WhatsAppSettings(_Strict):
    """The WhatsApp channel's non-secret settings (secrets: GUICHET_WHATSAPP_* variables)."""

    api_version: str = Field(default="v21.0", pattern=r"^v\d+\.\d+$")
    reopen_template: ReopenTemplate | None = None


class TelegramSettings(_Strict):
    """The Telegram channel's non-secret settings (token and URLs: GUICHET_TELEGRAM_* variables)."""

    # In group chats: answer only messages addressed to the bot (a command, a mention, a reply
    # to the bot), or leave the group at once.
    groups: Literal["answer_when_addressed", "leave"] = "answer_when_addressed"


class Place(_Strict):
    """A district of the city that users may type instead of sharing their location."""

    name: str
    aliases: list[str] = Field(default_factory=list)  # other spellings and scripts
    postcodes: list[str] = Field(default_factory=list)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class ServicesSettings(_Strict):
    """The local services directory (``bot/services``): where it lives, the gazetteer."""

    directory: Path | None = None  # default: <responses_dir>/services
    max_listed: int = Field(default=3, ge=1, le=10)
    gazetteer: list[Place] = Field(default_factory=list)


def _default_staff_dir() -> Path:
    """Staff accounts live outside the source tree (XDG data directory)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "guichet" / "staff"


class TelegramStaffGroupSettings(_Strict):
    """A staff supergroup with forum topics: one topic per handed-off conversation (optional)."""

    chat_id: int | None = None  # e.g. -1001234567890; None turns the relay off
    base_url: str = "https://api.telegram.org/bot"
    token: str | None = None  # the staff bot's token, from GUICHET_STAFF_BOT_TOKEN


class HandoffSettings(_Strict):
    """The human handoff: reminders, staff accounts, console sessions, the Telegram staff group."""

    remind_after_minutes: int = Field(default=15, ge=1)
    staff_dir: Path = Field(default_factory=_default_staff_dir)
    session_hours: int = Field(default=12, ge=1)
    session_secret: str | None = None  # from GUICHET_SESSION_SECRET, never from the file
    telegram_group: TelegramStaffGroupSettings = Field(default_factory=TelegramStaffGroupSettings)


class FeedbackSettings(_Strict):
    """What the bot keeps so that admins can improve the content (bot/admin)."""

    ratings: bool = False  # 👍/👎 buttons after curated answers
    # An answer given with less confidence than this also goes to the unanswered-questions inbox.
    inbox_below: float = Field(default=0.85, ge=0, le=1)


class ContentSettings(_Strict):
    """Live reload of intents/, responses/ and config.yml (bot/admin/reload.py)."""

    watch_seconds: float = Field(default=3.0, ge=0)  # how often files are looked at; 0: only on demand
    admin_token: str | None = None  # from GUICHET_ADMIN_TOKEN, never from the file


class Config(_Strict):
    organisation: Organisation
    languages: Languages
    nlu: NLUSettings = Field(default_factory=NLUSettings)
    privacy: Privacy = Field(default_factory=Privacy)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    services: ServicesSettings = Field(default_factory=ServicesSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    content: ContentSettings = Field(default_factory=ContentSettings)
    intents_dir: Path = PROJECT_ROOT / "intents"
    responses_dir: Path = PROJECT_ROOT / "responses"

    @property
    def services_dir(self) -> Path:
        return self.services.directory or self.responses_dir / "services"


def load_config(path: Path | None = None) -> Config:
    """Read ``config.yml`` (or ``GUICHET_CONFIG``) and apply environment overrides."""
    path = path or Path(os.environ.get("GUICHET_CONFIG", DEFAULT_CONFIG))
    with path.open(encoding="utf-8") as handle:
        raw = YAML(typ="safe").load(handle) or {}
    config = Config.model_validate(raw)
    if url := os.environ.get("GUICHET_REDIS_URL"):
        config.storage.url = url
    if backend := os.environ.get("GUICHET_NLU_BACKEND"):
        config.nlu.backend = backend  # type: ignore[assignment]
    if rasa_url := os.environ.get("GUICHET_RASA_URL"):
        config.nlu.rasa_url = rasa_url
    if model_dir := os.environ.get("GUICHET_MODEL_DIR"):
        config.nlu.model_dir = Path(model_dir)
    if staff_dir := os.environ.get("GUICHET_STAFF_DIR"):
        config.handoff.staff_dir = Path(staff_dir)
    config.handoff.session_secret = os.environ.get("GUICHET_SESSION_SECRET") or None
    config.content.admin_token = os.environ.get("GUICHET_ADMIN_TOKEN") or None
    if staff_token := os.environ.get("GUICHET_STAFF_BOT_TOKEN"):
        config.handoff.telegram_group.token = staff_token
    return config
