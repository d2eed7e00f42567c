"""What the console shows about a conversation: waiting time, languages, guesses, transcript.

Times and durations are formatted with Babel, in the centre's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from babel.dates import format_time, format_timedelta

from bot.conversation import Conversation, Role, Turn
from bot.engine import ConversationEngine
from bot.i18n import language_name
from bot.staff.accounts import StaffAccount
from nlu.understanding import NLUUnavailable

CONSOLE_LOCALE = "en"
# Below this confidence the detected language of the user's messages is not trusted.
_LANG_CONFIDENT = 0.5
_PREVIEW_CHARS = 280
# What staff read for intents that have no curated answer.
GUESS_LABELS = {"out_of_scope": "no topic", "human_handoff": "Talk to a person"}
REASONS = {
    "unsure": "Bot unsure",
    "requested": "Asked for a person",
    "emergency": "Emergency",
    "nlu_unavailable": "Language model down",
    "media": "Sent a file",
}


@dataclass(frozen=True)
class Speaker:
    name: str
    languages: str
    speaks: bool


@dataclass(frozen=True)
class Row:
    """One conversation of the queue (also the header of the conversation page)."""

    key: str
    channel: str
    lang: str  # the language the user writes in (detected), else the answer language
    lang_label: str
    answer_lang: str
    urgent: bool
    reason: str
    waiting: str
    since: str
    claimed_by: str | None
    guesses: list[str]
    last_messages: list[str]
    speakers: list[Speaker]  # colleagues who speak the user's language come first
    nobody_speaks: bool
    you_speak: bool
    yours: bool


@dataclass(frozen=True)
class TurnView:
    role: str
    who: str
    text: str
    at: str
    intent: str | None


class LanguageNotes:
    """The language each waiting user writes in, from the NLU, computed once per new message."""

    def __init__(self, engine: ConversationEngine) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[str, str | None]] = {}

    async def written_language(self, conversation: Conversation) -> str | None:
        texts = [
            t.text
            for t in conversation.transcript
            if t.role is Role.USER and not t.text.startswith(("/", "["))
        ]
        sample = " ".join(texts[-3:])[-600:]
        if not sample:
            return None
        cached = self._cache.get(conversation.key)
        if cached and cached[0] == sample:
            return cached[1]
        try:
            understanding = await self._engine.nlu.understand(sample)
        except NLUUnavailable:
            return None
        lang = understanding.lang if understanding.lang_confidence >= _LANG_CONFIDENT else None
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[conversation.key] = (sample, lang)
        return lang

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)


def waiting_time(since: dt.datetime, now: dt.datetime) -> str:
    return format_timedelta(max(now - since, dt.timedelta(0)), granularity="minute", locale=CONSOLE_LOCALE)


def clock(moment: dt.datetime, engine: ConversationEngine) -> str:
    return format_time(moment, "HH:mm", tzinfo=engine.config.organisation.zone, locale=CONSOLE_LOCALE)


def speakers(accounts: Sequence[StaffAccount], lang: str | None) -> list[Speaker]:
    rows = [Speaker(a.name, ", ".join(a.languages), a.speaks(lang)) for a in accounts]
    return sorted(rows, key=lambda s: (not s.speaks, s.name.casefold()))


def row(
    conversation: Conversation,
    written: str | None,
    answer_lang: str,
    engine: ConversationEngine,
    accounts: Sequence[StaffAccount],
    me: StaffAccount,
    now: dt.datetime,
) -> Row:
    handoff = conversation.handoff
    assert handoff is not None
    lang = written or answer_lang
    colleagues = speakers(accounts, lang)
    user_texts = [t.text for t in conversation.transcript if t.role is Role.USER]
    return Row(
        key=conversation.key,
        channel=conversation.channel,
        lang=lang,
        lang_label=f"{language_name(lang)} ({lang})",
        answer_lang=answer_lang,
        urgent=handoff.urgent,
        reason=REASONS.get(handoff.reason, handoff.reason),
        waiting=waiting_time(handoff.since, now),
        since=handoff.since.isoformat(),
        claimed_by=handoff.claimed_by,
        guesses=[f"{topic_name(intent, engine)} {score:.0%}" for intent, score in handoff.guesses],
        last_messages=[_preview(text) for text in user_texts[-3:]],
        speakers=colleagues,
        nobody_speaks=not any(s.speaks for s in colleagues),
        you_speak=me.speaks(lang),
        yours=handoff.claimed_by == me.name,
    )


def topic_name(intent: str, engine: ConversationEngine) -> str:
    """The topic as staff know it: its English title."""
    if engine.answers.has(intent):
        return engine.answers.title(intent, CONSOLE_LOCALE)
    return GUESS_LABELS.get(intent, intent)


def transcript(turns: Sequence[Turn], engine: ConversationEngine) -> list[TurnView]:
    who = {Role.USER: "User", Role.BOT: "Bot", Role.EVENT: ""}
    return [
        TurnView(
            role=turn.role.value,
            who=who.get(turn.role, turn.author or "Staff") + (" (note)" if turn.role is Role.NOTE else ""),
            text=turn.text,
            at=clock(turn.at, engine),
            intent=turn.intent,
        )
        for turn in turns
    ]


def _preview(text: str) -> str:
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"
