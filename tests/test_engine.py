"""The conversation engine end to end: real embedded NLU, real content, in-memory storage."""

from __future__ import annotations

import itertools

import pytest

from bot.conversation import Role
from bot.engine import ConversationEngine
from bot.messages import (
    FORGET_CONFIRM,
    INTENT_PAYLOAD,
    LANGUAGE_PAYLOAD,
    IncomingMessage,
    Kind,
    OutgoingMessage,
)
from tests.conftest import CLOSED_TIME

_ids = itertools.count()


def text(user: str, body: str, *, hint: str | None = None, channel: str = "test") -> IncomingMessage:
    return IncomingMessage(
        channel, user, Kind.TEXT, text=body, message_id=str(next(_ids)), language_hint=hint
    )


async def answer_intent(engine: ConversationEngine, user: str, body: str) -> str | None:
    await engine.handle(text(user, body))
    conversation = await engine.storage.get(engine.key_for("test", user))
    assert conversation is not None
    decided = [t for t in conversation.transcript if t.role is Role.EVENT and t.text.startswith("nlu")]
    return decided[-1].intent if decided and decided[-1].text == "nlu answer" else None


TYPICAL = [
    ("fr", "je cherche un appartement a louer", "housing_search"),
    ("fr", "ou je peux apprendre l'estonien ?", "language_courses"),
    ("en", "how do i find a job here", "job_search"),
    ("en", "i need to see a doctor, my son is sick", "health_care"),
    ("nl", "waar kan ik mijn kind inschrijven op school", "school_enrollment"),
    ("nl", "ik zoek werk", "job_search"),
    ("ar", "ابحث عن سكن للايجار", "housing_search"),
    ("ar", "كيف اسجل ابني في المدرسة", "school_enrollment"),
    ("uk", "де можна вивчати естонську мову", "language_courses"),
    ("uk", "як продовжити тимчасовий захист", "residence_permit"),
    ("ru", "как открыть счет в банке", "bank_account"),
    ("ru", "ищу работу", "job_search"),
    ("et", "kus ma saan eesti keelt õppida", "language_courses"),
    ("et", "otsin korterit", "housing_search"),
]


@pytest.mark.parametrize(("lang", "question", "intent"), TYPICAL)
async def test_typical_questions_get_the_curated_answer_in_their_language(
    engine: ConversationEngine, lang: str, question: str, intent: str
) -> None:
    replies = await engine.handle(text(f"u-{lang}-{intent}", question))
    expected = engine.curated(intent, lang)
    assert replies and replies[0].text == expected.text


async def test_emergency_numbers_come_first_then_a_person(engine: ConversationEngine) -> None:
    replies = await engine.handle(text("danger", "my husband is hitting me, help"))
    assert "112" in replies[0].text and replies[0].urgent
    conversation = await engine.storage.get(engine.key_for("test", "danger"))
    assert conversation and conversation.handoff and conversation.handoff.urgent
    queue = await engine.storage.handoff_queue()
    assert queue[0].key == conversation.key


async def test_emergency_in_unknown_language_uses_centre_language_and_english(
    engine: ConversationEngine,
) -> None:
    replies = await engine.handle(text("es-user", "ayuda, mi marido me pega y tengo miedo"))
    assert replies[0].text == engine.curated("emergency", "et").text
    assert replies[1].text == engine.curated("emergency", "en").text


async def test_gibberish_is_handed_to_a_person_not_answered(engine: ConversationEngine) -> None:
    replies = await engine.handle(text("g", "asdkjh qwpoeiru zxmcnv", hint="en"))
    assert len(replies) == 1 and "person" in replies[0].text
    conversation = await engine.storage.get(engine.key_for("test", "g"))
    assert conversation and conversation.handoff and conversation.handoff.reason == "unsure"


async def test_handoff_when_closed_says_when_the_guichet_opens(engine: ConversationEngine) -> None:
    engine._clock = lambda: CLOSED_TIME
    replies = await engine.handle(text("closed", "je veux parler a une personne"))
    assert "lundi 09:00" in replies[-1].text


async def test_no_bot_reply_while_handed_off(engine: ConversationEngine) -> None:
    await engine.handle(text("h", "i want to talk to a human"))
    assert await engine.handle(text("h", "where can i learn estonian")) == []
    conversation = await engine.storage.get(engine.key_for("test", "h"))
    assert conversation and conversation.transcript[-2].text == "where can i learn estonian"


async def test_language_menu_and_choice(engine: ConversationEngine) -> None:
    menu = await engine.handle(IncomingMessage("test", "lang", Kind.COMMAND, payload="language"))
    payloads = [b.payload for b in menu[0].buttons]
    assert LANGUAGE_PAYLOAD + "uk" in payloads and len(payloads) == 7
    chosen = await engine.handle(
        IncomingMessage("test", "lang", Kind.BUTTON, payload=LANGUAGE_PAYLOAD + "uk")
    )
    assert chosen[0].text == engine.catalogs.gettext("uk", "OK, I will write to you in English.")
    replies = await engine.handle(text("lang", "how do i find a job here"))
    assert replies[0].text == engine.curated("job_search", "uk").text


async def test_ukrainian_speaker_writing_russian_words_stays_in_ukrainian(engine: ConversationEngine) -> None:
    await engine.handle(text("uk-user", "де можна вивчати естонську мову"))
    replies = await engine.handle(text("uk-user", "где найти работу в таллине"))
    assert replies[0].text == engine.curated("job_search", "uk").text


async def test_button_asks_its_topic(engine: ConversationEngine) -> None:
    replies = await engine.handle(
        IncomingMessage("test", "b", Kind.BUTTON, payload=INTENT_PAYLOAD + "bank_account", language_hint="ru")
    )
    assert replies[0].text == engine.curated("bank_account", "ru").text


async def test_forget_deletes_everything_after_confirmation(engine: ConversationEngine) -> None:
    await engine.handle(text("f", "i want to talk to a human"))
    question = await engine.handle(IncomingMessage("test", "f", Kind.COMMAND, payload="forget"))
    assert next(b.payload for b in question[0].buttons) == FORGET_CONFIRM
    done = await engine.handle(IncomingMessage("test", "f", Kind.BUTTON, payload=FORGET_CONFIRM))
    assert done and await engine.storage.get(engine.key_for("test", "f")) is None
    assert await engine.storage.handoff_queue() == []


async def test_forget_button_without_question_does_not_delete(engine: ConversationEngine) -> None:
    await engine.handle(text("f2", "hello"))
    await engine.handle(IncomingMessage("test", "f2", Kind.BUTTON, payload=FORGET_CONFIRM))
    assert await engine.storage.get(engine.key_for("test", "f2")) is not None


@pytest.mark.parametrize("kind", [Kind.IMAGE, Kind.STICKER, Kind.AUDIO, Kind.DOCUMENT, Kind.EDITED])
async def test_media_gets_a_polite_reply_in_the_users_language(
    engine: ConversationEngine, kind: Kind
) -> None:
    replies = await engine.handle(IncomingMessage("test", f"m-{kind}", kind, language_hint="fr"))
    assert len(replies) == 1 and replies[0].text
    assert replies[0].text != engine.catalogs.gettext(
        "en", "I can only read text messages. Please write your question in a few words."
    )
    assert bool(replies[0].buttons) == (kind in (Kind.AUDIO, Kind.DOCUMENT))


async def test_flood_gets_one_slow_down(engine: ConversationEngine) -> None:
    limit = engine.config.privacy.rate_limit_messages
    replies: list[OutgoingMessage] = []
    for _ in range(limit + 5):
        replies = await engine.handle(text("flood", "hello"))
    conversation = await engine.storage.get(engine.key_for("test", "flood"))
    assert conversation is not None
    assert sum(t.text == "rate limited" for t in conversation.transcript) == 1
    assert replies == []
    assert await engine.handle(text("calm", "hello"))


@pytest.mark.parametrize("body", ["", "   ", "😀😀😀", "a" * 20_000, "\x00\x01\x02 hi", "\ud800 broken"])
async def test_odd_text_never_crashes(engine: ConversationEngine, body: str) -> None:
    replies = await engine.handle(text("odd", body))
    assert replies and all(r.text for r in replies)
