"""A conversation's stored state: language, recent transcript and handoff status."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

TRANSCRIPT_LIMIT = 200


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Role(StrEnum):
    USER = "user"
    BOT = "bot"
    STAFF = "staff"
    NOTE = "note"  # private staff note, never sent to the user
    EVENT = "event"  # e.g. "handed off", "claimed by Anna"


class Turn(BaseModel):
    role: Role
    text: str
    at: dt.datetime = Field(default_factory=utcnow)
    intent: str | None = None
    author: str | None = None  # staff name for STAFF / NOTE turns


HandoffReason = Literal["unsure", "requested", "emergency", "nlu_unavailable", "media"]


class Handoff(BaseModel):
    """A conversation waiting for, or taken by, a person at the guichet."""

    reason: HandoffReason
    urgent: bool = False
    since: dt.datetime = Field(default_factory=utcnow)
    guesses: list[tuple[str, float]] = Field(default_factory=list)
    claimed_by: str | None = None
    reminded: bool = False  # the user was told that nobody is free yet


class Conversation(BaseModel):
    """Everything stored about one user; ``key`` is a pseudonym, never the raw platform id."""

    key: str
    channel: str
    address: str  # the platform id replies are sent to (needed to send, nothing else)
    lang: str | None = None
    lang_chosen: bool = False  # picked from the language menu: detection no longer overrides it
    handoff: Handoff | None = None
    pending_options: list[str] = Field(default_factory=list)  # intents offered by a clarifying question
    forget_pending: bool = False
    last_user_at: dt.datetime | None = None
    transcript: list[Turn] = Field(default_factory=list)

    @property
    def handed_off(self) -> bool:
        return self.handoff is not None

    def add(self, turn: Turn) -> None:
        self.transcript.append(turn)
        del self.transcript[:-TRANSCRIPT_LIMIT]
