"""Curated answers from ``responses/*.yml``: loading, language fallback and placeholders."""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.config import Config
from bot.i18n import N_, Catalogs
from bot.messages import Link

MAX_BUTTONS = 3
MAX_TITLE = 20


class ContentError(ValueError):
    """A content file is invalid; the message names the file (and line when known)."""


class LinkSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    url: str


class AnswerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    buttons: list[str] = Field(default_factory=list, max_length=MAX_BUTTONS)
    links: list[LinkSpec] = Field(default_factory=list)


class ResponseFile(BaseModel):
    """The schema of one ``responses/<topic>.yml`` file."""

    model_config = ConfigDict(extra="forbid")
    intent: str
    title: dict[str, str]
    answers: dict[str, AnswerSpec]

    @field_validator("title")
    @classmethod
    def _short_titles(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, title in value.items():
            if len(title) > MAX_TITLE:
                raise ValueError(f"title in {lang!r} is longer than {MAX_TITLE} characters: {title!r}")
        return value


@dataclass(frozen=True)
class Answer:
    """A curated answer ready to send: placeholders filled, in ``lang`` (maybe a fallback)."""

    intent: str
    lang: str
    text: str
    buttons: tuple[str, ...]
    links: tuple[Link, ...]


def placeholders_in(text: str) -> set[str]:
    """The ``{name}`` placeholders a text uses."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def load_response_files(directory: Path) -> dict[str, ResponseFile]:
    """Every ``*.yml`` directly in ``directory``, keyed by intent; errors name the file."""
    files: dict[str, ResponseFile] = {}
    yaml = YAML(typ="safe")
    for path in sorted(directory.glob("*.yml")):
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"))
            spec = ResponseFile.model_validate(raw)
        except YAMLError as exc:
            raise ContentError(f"{path}: not valid YAML: {exc}") from exc
        except ValidationError as exc:
            raise ContentError(f"{path}: {exc}") from exc
        if spec.intent in files:
            raise ContentError(f"{path}: a second file for intent {spec.intent!r}")
        files[spec.intent] = spec
    return files


# Names of the configured phone numbers, translated through the catalogs.
NUMBER_LABELS = {
    "emergency": N_("Emergency: police, ambulance, fire"),
    "crisis_line": N_("Crisis line (emotional support)"),
    "victim_support": N_("Victim support"),
    "child_helpline": N_("Child helpline"),
    "health_line": N_("Health advice line"),
}


class AnswerBook:
    """All curated answers, with the fallback chain of ``config.yml`` applied."""

    def __init__(self, responses: Mapping[str, ResponseFile], config: Config, catalogs: Catalogs) -> None:
        self._responses = dict(responses)
        self._config = config
        self._catalogs = catalogs

    @classmethod
    def from_config(cls, config: Config, catalogs: Catalogs) -> AnswerBook:
        return cls(load_response_files(config.responses_dir), config, catalogs)

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(self._responses)

    def has(self, intent: str) -> bool:
        return intent in self._responses

    def title(self, intent: str, lang: str) -> str:
        """The topic's short name for buttons; the intent id only if no language has one."""
        titles = self._responses[intent].title if intent in self._responses else {}
        for candidate in self._config.languages.chain(lang):
            if titles.get(candidate):
                return titles[candidate]
        return next(iter(titles.values()), intent)

    def answer(self, intent: str, lang: str, *, now: dt.datetime | None = None) -> Answer:
        """The answer for ``intent`` in ``lang`` or the first language of its fallback chain."""
        spec = self._responses[intent]
        chain = self._config.languages.chain(lang)
        used = next((c for c in chain if c in spec.answers), next(iter(spec.answers)))
        answer = spec.answers[used]
        values = self.placeholder_values(used)
        return Answer(
            intent=intent,
            lang=used,
            text=answer.text.strip().format_map(values),
            buttons=tuple(b for b in answer.buttons if b in self._responses),
            links=tuple(Link(link.label, link.url.format_map(values)) for link in answer.links),
        )

    def placeholder_values(self, lang: str) -> dict[str, str]:
        """What ``{placeholders}`` stand for in ``lang``."""
        org = self._config.organisation
        values = {
            "centre_name": org.centre_name,
            "city": org.city,
            "address": org.address,
            "phone": org.phone,
            "email": org.email,
            "website": org.website,
            "opening_hours": org.hours.describe_week(lang),
            "emergency_numbers": self.emergency_numbers(lang),
        }
        values.update(org.numbers)
        return values

    def emergency_numbers(self, lang: str) -> str:
        lines = []
        for key, number in self._config.organisation.numbers.items():
            label = NUMBER_LABELS.get(key)
            name = self._catalogs.gettext(lang, label) if label else key.replace("_", " ")
            lines.append(f"{name}: {number}")
        return "\n".join(lines)
