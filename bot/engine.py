"""The conversation engine: one incoming message in, the replies out. Channel-agnostic.

For each message: load the conversation,
understand the text (danger lexicon first, then the intent model), choose the answer
language, decide (answer / clarify / hand off), save, and return the replies.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from bot.admin.journal import Journal
from bot.admin.ratings import RATE_PAYLOAD, parse_rating, rating_payload
from bot.config import Config
from bot.content import AnswerBook
from bot.conversation import Conversation, Handoff, HandoffReason, Role, Turn, utcnow
from bot.events import Event, EventBus, EventKind
from bot.hours import format_moment
from bot.i18n import Catalogs, language_name, negotiate
from bot.language import answer_language
from bot.messages import (
    FORGET_CANCEL,
    FORGET_CONFIRM,
    HUMAN_PAYLOAD,
    INTENT_PAYLOAD,
    LANGUAGE_PAYLOAD,
    Button,
    IncomingMessage,
    Kind,
    Location,
    OutgoingMessage,
)
from bot.policy import Action, Decision, decide
from bot.privacy import pseudonym
from bot.services import Found, Point, ServiceGuide
from bot.storage import Storage
from nlu.langid import LanguageGuess
from nlu.understanding import EMERGENCY, OUT_OF_SCOPE, NLUBackend, NLUUnavailable, Understanding

log = logging.getLogger(__name__)

# Longer messages are cut before the NLU (the need is usually at the start or the end).
MAX_TEXT_CHARS = 4000
MAIN_TOPICS = (
    "housing_search",
    "language_courses",
    "job_search",
    "health_care",
    "residence_permit",
    "school_enrollment",
    "social_benefits",
    "legal_aid",
    "guichet_info",
)
_MEDIA_WITH_HANDOFF = {Kind.AUDIO, Kind.DOCUMENT}
# Transcript event recording a topic whose local services were listed ("nearest" uses the last one).
SERVICES_EVENT = "services"
# Transcript events of the 👍/👎 question after an answer, and of its answer (counted once).
RATING_ASKED_EVENT = "rating asked"
RATED_EVENT = "rated"


@dataclass(frozen=True)
class Reply:
    """The replies to one message, and the conversation they were computed for."""

    messages: list[OutgoingMessage]
    conversation: Conversation | None  # None when the user's data was just deleted


class ConversationEngine:
    """Turns incoming messages into replies, keeping state in ``storage``."""

    def __init__(
        self,
        *,
        config: Config,
        nlu: NLUBackend,
        answers: AnswerBook,
        catalogs: Catalogs,
        storage: Storage,
        secret: bytes,
        events: EventBus | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        services: ServiceGuide | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.config = config
        self.journal = journal  # notes for admins: missed questions, answers shown, ratings
        self.services = services
        self.nlu = nlu
        self.answers = answers
        self.catalogs = catalogs
        self.storage = storage
        self.events = events or EventBus()
        self._secret = secret
        self._clock = clock

    def key_for(self, channel: str, user_id: str) -> str:
        return pseudonym(channel, user_id, self._secret)

    async def handle(self, message: IncomingMessage) -> list[OutgoingMessage]:
        """The replies to ``message``, in order; empty while a person has taken over.

        The caller holds the user's lock and has already dropped redeliveries
        (see :class:`bot.dispatcher.Dispatcher`).
        """
        return (await self.process(message)).messages

    async def process(self, message: IncomingMessage) -> Reply:
        key = self.key_for(message.channel, message.user_id)
        conversation = await self.storage.get(key) or Conversation(
            key=key, channel=message.channel, address=message.user_id
        )
        now = self._clock()
        conversation.last_user_at = now
        allowed = await self.storage.within_rate_limit(
            key,
            self.config.privacy.rate_limit_messages,
            self.config.privacy.rate_limit_window_seconds,
        )
        events: list[Event] = []
        if allowed:
            replies = await self._respond(conversation, message, now, events)
        else:
            replies = self._slow_down(conversation, message, now)
        if replies is None:
            await self.storage.delete(key)
            await self.events.publish(Event(EventKind.FORGOTTEN, key))
            return Reply([self._forgotten(conversation)], None)
        for reply in replies:
            conversation.add(Turn(role=Role.BOT, text=reply.text, at=now))
        await self.storage.put(conversation)
        for event in events:
            await self.events.publish(event)
        if self.journal:
            await self.journal.flush()
        return Reply(replies, conversation)

    # -- dispatch ---------------------------------------------------------------------------

    async def _respond(
        self, conversation: Conversation, message: IncomingMessage, now: dt.datetime, events: list[Event]
    ) -> list[OutgoingMessage] | None:
        """The replies; None means "delete this user's data now"."""
        if message.kind is Kind.TEXT and message.text.strip():
            return await self._on_text(conversation, message, now, events)
        if message.kind is Kind.BUTTON:
            return await self._on_button(conversation, message, now, events)
        if message.kind is Kind.COMMAND:
            return self._on_command(conversation, message, now, events)
        if message.kind is Kind.LOCATION and self.services and _valid_point(message.location):
            return self._on_location(conversation, message, now, events)
        if message.kind is Kind.REACTION:
            return []  # an emoji reaction to one of our messages asks for nothing
        return self._on_media(conversation, message, now, events)

    def _lang(self, conversation: Conversation, message: IncomingMessage) -> str:
        if conversation.lang:
            return conversation.lang
        lang = answer_language(
            None, None, False, message.language_hint, self.config.languages.content, self._default_lang
        )
        conversation.lang = lang
        return lang

    @property
    def _default_lang(self) -> str:
        content = self.config.languages.content
        return "en" if "en" in content else content[0]

    def _t(self, lang: str, msgid: str, **params: object) -> str:
        return self.catalogs.gettext(lang, msgid, **params)

    # -- text ---------------------------------------------------------------------------

    async def _on_text(
        self, conversation: Conversation, message: IncomingMessage, now: dt.datetime, events: list[Event]
    ) -> list[OutgoingMessage]:
        # Lone surrogates or other unencodable input must not reach storage or the NLU.
        text = message.text.encode("utf-8", "replace").decode("utf-8")[:MAX_TEXT_CHARS]
        conversation.add(Turn(role=Role.USER, text=text, at=now))
        try:
            understanding = await self.nlu.understand(text)
        except NLUUnavailable:
            log.warning("NLU unavailable; message handed to staff")
            lang = self._lang(conversation, message)
            if conversation.handed_off:
                events.append(Event(EventKind.USER_MESSAGE, conversation.key))
                return []
            return self._hand_off(conversation, lang, "nlu_unavailable", [], now, events)
        lang_before = conversation.lang
        lang_known = self._update_language(conversation, message, understanding)
        lang = conversation.lang or self._default_lang
        decision = decide(understanding, self.config.nlu.thresholds)
        conversation.add(Turn(role=Role.EVENT, text=f"nlu {decision.action}", at=now, intent=decision.intent))
        guesses = list(understanding.ranking[:3])
        if decision.emergency:
            return self._emergency(conversation, lang, lang_known, guesses, now, events)
        if conversation.handed_off:
            events.append(Event(EventKind.USER_MESSAGE, conversation.key))
            return []
        if self.services and (found := self.services.place_in(text)):
            answers_topic = decision.action is Action.ANSWER and self.services.covers(decision.intent)
            if not answers_topic and (nearby := self._on_place(conversation, found, lang_before, now)):
                return nearby
        if self.journal:
            self.journal.note_understood(conversation.key, text, lang, decision, guesses, now)
        return self._act(conversation, decision, lang, guesses, now, events)

    def _update_language(
        self, conversation: Conversation, message: IncomingMessage, understanding: Understanding
    ) -> bool:
        """Store the answer language; False when nothing tells us the user's language yet."""
        content = self.config.languages.content
        guess = LanguageGuess(understanding.lang, understanding.lang_confidence)
        hinted = negotiate([message.language_hint], content) if message.language_hint else None
        known = bool(conversation.lang or hinted or guess.lang in content)
        conversation.lang = answer_language(
            guess,
            conversation.lang,
            conversation.lang_chosen,
            message.language_hint,
            content,
            self._default_lang,
        )
        return known

    def _act(
        self,
        conversation: Conversation,
        decision: Decision,
        lang: str,
        guesses: list[tuple[str, float]],
        now: dt.datetime,
        events: list[Event],
    ) -> list[OutgoingMessage]:
        conversation.pending_options = []
        if decision.action is Action.CLARIFY:
            conversation.pending_options = list(decision.options)
            buttons = [Button(self.answers.title(o, lang), INTENT_PAYLOAD + o) for o in decision.options]
            buttons.append(Button(self._t(lang, "Talk to a person"), HUMAN_PAYLOAD))
            return [OutgoingMessage(self._t(lang, "Did you mean one of these?"), tuple(buttons))]
        if decision.action is Action.HANDOFF:
            reason: HandoffReason = "requested" if decision.intent == "human_handoff" else "unsure"
            return self._hand_off(conversation, lang, reason, guesses, now, events)
        return self._answer_intent(conversation, decision.intent, lang, now, events)

    def _answer_intent(
        self, conversation: Conversation, intent: str, lang: str, now: dt.datetime, events: list[Event]
    ) -> list[OutgoingMessage]:
        if intent == "human_handoff":
            return self._hand_off(conversation, lang, "requested", [(intent, 1.0)], now, events)
        if intent == EMERGENCY:
            return self._emergency(conversation, lang, True, [(intent, 1.0)], now, events)
        if intent == "change_language":
            return [self.language_menu(lang)]
        if intent == OUT_OF_SCOPE or not self.answers.has(intent):
            return self._hand_off(conversation, lang, "unsure", [], now, events)
        replies = [self.curated(intent, lang, now), *self._services_for(conversation, intent, lang, now)]
        return replies + self._after_answer(conversation, intent, lang, now)

    # -- notes for admins: the audit log and ratings (bot/admin) ---------------------------

    def _after_answer(
        self, conversation: Conversation, intent: str, lang: str, now: dt.datetime
    ) -> list[OutgoingMessage]:
        """Note the answer in the audit log; ask "did this help?" when ratings are on."""
        if self.journal is None:
            return []
        self.journal.note_shown(conversation.key, intent, lang, now)
        if not self.journal.rates(intent):
            return []
        conversation.add(Turn(role=Role.EVENT, text=RATING_ASKED_EVENT, at=now, intent=intent))
        buttons = (Button("👍", rating_payload(intent, True)), Button("👎", rating_payload(intent, False)))
        return [OutgoingMessage(self._t(lang, "Did this answer help you?"), buttons)]

    def _on_rating(
        self, conversation: Conversation, payload: str, lang: str, now: dt.datetime
    ) -> list[OutgoingMessage]:
        """👍/👎, counted once per answer asked about; 👎 offers other words or a person."""
        rating = parse_rating(payload)
        if rating is None or self.journal is None:
            text = self._t(lang, "Sorry, this button is no longer valid. Please write your question.")
            return [OutgoingMessage(text)]
        intent, helpful = rating
        if _rating_open(conversation, intent):
            conversation.add(Turn(role=Role.EVENT, text=RATED_EVENT, at=now, intent=intent))
            self.journal.note_rating(intent, lang, helpful)
        if conversation.handed_off:
            return []
        if helpful:
            return [OutgoingMessage(self._t(lang, "Thank you for telling us!"))]
        text = self._t(
            lang,
            "Thank you. Sorry it did not help: write your question in other words, or talk to a person.",
        )
        return [OutgoingMessage(text, (Button(self._t(lang, "Talk to a person"), HUMAN_PAYLOAD),))]

    def curated(self, intent: str, lang: str, now: dt.datetime | None = None) -> OutgoingMessage:
        """The curated answer for ``intent``, its follow-up topics as buttons."""
        answer = self.answers.answer(intent, lang, now=now)
        buttons = tuple(Button(self.answers.title(b, lang), INTENT_PAYLOAD + b) for b in answer.buttons)
        return OutgoingMessage(answer.text, buttons, answer.links, urgent=intent == EMERGENCY)

    # -- local services (bot/services) -----------------------------------------------------

    def _services_for(
        self, conversation: Conversation, intent: str, lang: str, now: dt.datetime
    ) -> list[OutgoingMessage]:
        """The local services for a topic just answered, as one extra message (if it has any)."""
        if not self.services or not self.services.covers(intent):
            return []
        conversation.add(Turn(role=Role.EVENT, text=SERVICES_EVENT, at=now, intent=intent))
        listing = self.services.after_answer(intent, lang, now)
        return [listing] if listing else []

    def _last_topic(self, conversation: Conversation) -> str | None:
        return next(
            (
                t.intent
                for t in reversed(conversation.transcript)
                if t.role is Role.EVENT and t.text == SERVICES_EVENT
            ),
            None,
        )

    def _on_location(
        self, conversation: Conversation, message: IncomingMessage, now: dt.datetime, events: list[Event]
    ) -> list[OutgoingMessage]:
        """A shared location: the nearest services for the last topic. The coordinates are not stored."""
        assert self.services and message.location
        lang = self._lang(conversation, message)
        conversation.add(Turn(role=Role.USER, text=f"[{message.kind.value}]", at=now))
        if conversation.handed_off:
            events.append(Event(EventKind.USER_MESSAGE, conversation.key))
            return [
                OutgoingMessage(self._t(lang, "The team can only read text here. Please write your message."))
            ]
        point = Point(message.location.latitude, message.location.longitude)
        return [self.services.nearest(self._last_topic(conversation), point, lang, now)]

    def _on_place(
        self, conversation: Conversation, found: Found, lang_before: str | None, now: dt.datetime
    ) -> list[OutgoingMessage]:
        """A typed district or postcode: the nearest services; an unknown postcode gets a way forward."""
        assert self.services
        # A place name says nothing about the user's language: keep the one we had.
        conversation.lang = lang_before or conversation.lang
        lang = conversation.lang or self._default_lang
        topic = self._last_topic(conversation)
        if found.place and found.point:
            return [self.services.nearest(topic, found.point, lang, now, found.place.name)]
        if found.postcode and topic:
            return [self.services.unknown_postcode(found.postcode, lang)]
        return []

    # -- emergencies and handoffs ---------------------------------------------------------

    def _emergency(
        self,
        conversation: Conversation,
        lang: str,
        lang_known: bool,
        guesses: list[tuple[str, float]],
        now: dt.datetime,
        events: list[Event],
    ) -> list[OutgoingMessage]:
        """Emergency numbers first, in the user's language (else the centre's and English), then staff."""
        langs = [lang] if lang_known else list(dict.fromkeys([self.config.organisation.language, "en"]))
        replies = [self.curated(EMERGENCY, each, now) for each in langs]
        if self.journal:
            self.journal.note_shown(conversation.key, EMERGENCY, langs[0], now)
        if conversation.handed_off and conversation.handoff:
            conversation.handoff.urgent = True
            events.append(Event(EventKind.HANDOFF, conversation.key, urgent=True))
            return replies
        return replies + self._hand_off(conversation, lang, "emergency", guesses, now, events)

    def _hand_off(
        self,
        conversation: Conversation,
        lang: str,
        reason: HandoffReason,
        guesses: list[tuple[str, float]],
        now: dt.datetime,
        events: list[Event],
    ) -> list[OutgoingMessage]:
        urgent = reason == "emergency"
        if conversation.handoff is None:
            conversation.handoff = Handoff(reason=reason, urgent=urgent, since=now, guesses=guesses)
            conversation.add(Turn(role=Role.EVENT, text=f"handoff: {reason}", at=now))
        events.append(Event(EventKind.HANDOFF, conversation.key, urgent=urgent))
        return [OutgoingMessage(self.handoff_notice(lang, now), urgent=urgent)]

    def handoff_notice(self, lang: str, now: dt.datetime) -> str:
        """What happens next: a person answers here, now or when the guichet opens."""
        org = self.config.organisation
        hours = org.hours
        if hours.is_open(now):
            return self._t(
                lang,
                "A person from %(centre)s will answer you here soon. Please stay in this chat.",
                centre=org.centre_name,
            )
        opening = hours.next_opening(now)
        if opening is None:
            return self._t(lang, "A person from %(centre)s will answer you here.", centre=org.centre_name)
        return self._t(
            lang,
            "A person from %(centre)s will answer you here. We are closed now; we open %(when)s.",
            centre=org.centre_name,
            when=format_moment(opening, lang, org.zone, now),
        )

    # -- buttons, commands, media ---------------------------------------------------------

    async def _on_button(
        self, conversation: Conversation, message: IncomingMessage, now: dt.datetime, events: list[Event]
    ) -> list[OutgoingMessage] | None:
        lang = self._lang(conversation, message)
        payload = message.payload
        conversation.add(Turn(role=Role.USER, text=message.text or payload, at=now))
        if payload == FORGET_CONFIRM:
            return None if conversation.forget_pending else [self._forget_question(conversation, lang)]
        conversation.forget_pending = False
        if payload == FORGET_CANCEL:
            return [OutgoingMessage(self._t(lang, "OK, nothing was deleted."))]
        if payload.startswith(LANGUAGE_PAYLOAD):
            return self._set_language(conversation, payload.removeprefix(LANGUAGE_PAYLOAD), lang)
        if payload.startswith(RATE_PAYLOAD):
            return self._on_rating(conversation, payload, lang, now)
        if conversation.handed_off:
            events.append(Event(EventKind.USER_MESSAGE, conversation.key))
            return []
        if payload == HUMAN_PAYLOAD:
            return self._hand_off(conversation, lang, "requested", [], now, events)
        if payload.startswith(INTENT_PAYLOAD):
            intent = payload.removeprefix(INTENT_PAYLOAD)
            if self.answers.has(intent):
                conversation.pending_options = []
                return self._answer_intent(conversation, intent, lang, now, events)
        return [
            OutgoingMessage(
                self._t(lang, "Sorry, this button is no longer valid. Please write your question.")
            )
        ]

    def _on_command(
        self, conversation: Conversation, message: IncomingMessage, now: dt.datetime, events: list[Event]
    ) -> list[OutgoingMessage]:
        lang = self._lang(conversation, message)
        command = message.payload
        conversation.add(Turn(role=Role.USER, text=f"/{command}", at=now))
        if command == "forget":
            return [self._forget_question(conversation, lang)]
        if command == "language":
            return [self.language_menu(lang)]
        if command == "human":
            return self._hand_off(conversation, lang, "requested", [], now, events)
        if command == "help" and self.answers.has("help"):
            return [self.curated("help", lang, now)]
        return [self.welcome(lang)]

    def _on_media(
        self, conversation: Conversation, message: IncomingMessage, now: dt.datetime, events: list[Event]
    ) -> list[OutgoingMessage]:
        lang = self._lang(conversation, message)
        conversation.add(Turn(role=Role.USER, text=f"[{message.kind.value}]", at=now))
        if conversation.handed_off:
            events.append(Event(EventKind.USER_MESSAGE, conversation.key))
            return [
                OutgoingMessage(self._t(lang, "The team can only read text here. Please write your message."))
            ]
        if message.kind in _MEDIA_WITH_HANDOFF:
            text = self._t(
                lang,
                "I cannot listen to voice messages or read files. Please write your question in a few "
                "words, or tap the button to talk to a person.",
            )
            return [OutgoingMessage(text, (Button(self._t(lang, "Talk to a person"), HUMAN_PAYLOAD),))]
        if message.kind is Kind.EDITED:
            return [
                OutgoingMessage(self._t(lang, "I only read new messages. Please send your question again."))
            ]
        return [
            OutgoingMessage(
                self._t(lang, "I can only read text messages. Please write your question in a few words.")
            )
        ]

    def welcome(self, lang: str) -> OutgoingMessage:
        """The greeting of /start: what the bot does, and the main topics."""
        text = self._t(
            lang,
            "Hello! I am the assistant of %(centre)s. I answer questions about housing, work, health, "
            "papers, school, money and more. Write your question in your own words and language, "
            "or choose a topic.",
            centre=self.config.organisation.centre_name,
        )
        buttons = tuple(
            Button(self.answers.title(t, lang), INTENT_PAYLOAD + t)
            for t in MAIN_TOPICS
            if self.answers.has(t)
        )
        return OutgoingMessage(text, buttons)

    def language_menu(self, lang: str) -> OutgoingMessage:
        buttons = tuple(
            Button(language_name(code), LANGUAGE_PAYLOAD + code) for code in self.config.languages.content
        )
        return OutgoingMessage(self._t(lang, "Choose your language:"), buttons)

    def _set_language(self, conversation: Conversation, code: str, lang: str) -> list[OutgoingMessage]:
        if code not in self.config.languages.content:
            return [self.language_menu(lang)]
        conversation.lang, conversation.lang_chosen = code, True
        return [OutgoingMessage(self._t(code, "OK, I will write to you in English."))]

    def _forget_question(self, conversation: Conversation, lang: str) -> OutgoingMessage:
        conversation.forget_pending = True
        return OutgoingMessage(
            self._t(lang, "Do you want me to delete everything stored about you? This cannot be undone."),
            (
                Button(self._t(lang, "Yes, delete"), FORGET_CONFIRM),
                Button(self._t(lang, "No, keep"), FORGET_CANCEL),
            ),
        )

    def _forgotten(self, conversation: Conversation) -> OutgoingMessage:
        lang = conversation.lang or self._default_lang
        return OutgoingMessage(self._t(lang, "Done. Everything stored about you has been deleted."))

    def _slow_down(
        self, conversation: Conversation, message: IncomingMessage, now: dt.datetime
    ) -> list[OutgoingMessage]:
        """One polite "slow down" per flood; the messages are still kept for staff."""
        lang = self._lang(conversation, message)
        conversation.add(Turn(role=Role.USER, text=message.text or f"[{message.kind.value}]", at=now))
        if any(
            t.role is Role.EVENT
            and t.text == "rate limited"
            and (now - t.at).total_seconds() < self.config.privacy.rate_limit_window_seconds
            for t in conversation.transcript[-50:]
        ):
            return []
        conversation.add(Turn(role=Role.EVENT, text="rate limited", at=now))
        return [
            OutgoingMessage(
                self._t(lang, "You are sending many messages. Please wait a minute, then write again.")
            )
        ]


def _rating_open(conversation: Conversation, intent: str) -> bool:
    """The user was asked about ``intent``'s answer and has not rated it since."""
    for turn in reversed(conversation.transcript):
        if turn.role is Role.EVENT and turn.intent == intent:
            if turn.text == RATED_EVENT:
                return False
            if turn.text == RATING_ASKED_EVENT:
                return True
    return False


def _valid_point(location: Location | None) -> bool:
    """A location a channel passed on is usable only with finite, in-range coordinates."""
    if location is None:
        return False
    lat, lon = location.latitude, location.longitude
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
