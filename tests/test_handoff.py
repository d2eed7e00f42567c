"""The handoff service: claim, reply, curated answers, notes, transfer, close, reminders, 24-hour window.

Real engine (embedded NLU, real content), real dispatcher; the user's channel is a small recording
channel registered in the Runtime, like Telegram or WhatsApp would be.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from bot.app import build_engine
from bot.channels.whatsapp import WhatsAppChannel, WhatsAppCredentials
from bot.config import Config, HandoffSettings, ReopenTemplate
from bot.conversation import Conversation, Role
from bot.engine import ConversationEngine
from bot.events import Event, EventKind
from bot.handoff import (
    ClaimedByOther,
    ConversationGone,
    HandoffError,
    HandoffService,
    NotDelivered,
    NotHandedOff,
    Staff,
    WindowClosed,
)
from bot.messages import IncomingMessage, Kind, OutgoingMessage
from bot.runtime import Runtime
from bot.storage import MemoryStorage, Storage
from bot.storage.redis import RedisStorage
from bot.web.app import create_app
from nlu.embedded import EmbeddedNLU
from tests.conftest import CLOSED_TIME, OPEN_TIME
from tests.standins import GraphAPI, deliver_webhook, text_message_payload

UNSURE_AR = "ما هو أفضل مطعم بيتزا في المدينة"  # "the best pizza place in town": no curated answer
HOUSING_AR = "ابحث عن سكن للايجار"
_ids = itertools.count()


class RecordingChannel:
    """A channel that records what it sends, as the user's phone would receive it."""

    def __init__(
        self, name: str = "test", reply_window: dt.timedelta | None = None, template: bool = False
    ) -> None:
        self.name = name
        self.reply_window = reply_window
        self.template = template
        self.sent: list[tuple[str, OutgoingMessage]] = []
        self.templates: list[tuple[str, str]] = []
        self.failures = 0

    async def send(self, address: str, messages: Sequence[OutgoingMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("network down")
        await asyncio.sleep(0.001)
        self.sent.extend((address, message) for message in messages)

    def texts(self, address: str) -> list[str]:
        return [message.text for to, message in self.sent if to == address]

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def send_template(self, address: str, lang: str) -> bool:
        self.templates.append((address, lang))
        return self.template

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class Clock:
    """A clock the test moves forward; the engine and the service share it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def user_text(user: str, text: str, channel: str = "test", hint: str | None = "ar") -> IncomingMessage:
    return IncomingMessage(
        channel, user, Kind.TEXT, text=text, message_id=str(next(_ids)), language_hint=hint
    )


async def say(runtime: Runtime, message: IncomingMessage) -> None:
    """The user writes: through the dispatcher, as a channel delivers it."""
    assert await runtime.dispatcher.accept(message)
    await runtime.dispatcher.idle()


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """The app served by uvicorn in this event loop (lifespan on), on a free port of 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class Setup:
    def __init__(self, engine: ConversationEngine, config: Config, channel: RecordingChannel) -> None:
        self.clock = Clock(OPEN_TIME)
        engine._clock = self.clock
        self.engine = engine
        self.channel = channel
        self.runtime = Runtime(config, engine)
        self.runtime.add_channel(channel)
        self.service = HandoffService(
            self.runtime, HandoffSettings(remind_after_minutes=15), clock=self.clock
        )
        self.events: list[Event] = []

        async def record(event: Event) -> None:
            self.events.append(event)

        engine.events.subscribe(record)

    async def handed_off(self, user: str = "amal", text: str = UNSURE_AR) -> Conversation:
        await say(self.runtime, user_text(user, text, self.channel.name))
        conversation = await self.engine.storage.get(self.engine.key_for(self.channel.name, user))
        assert conversation is not None and conversation.handoff is not None
        assert conversation.handoff.reason == "unsure"
        return conversation


@pytest.fixture(params=["memory", "redis"])
async def setup(
    request: pytest.FixtureRequest, config: Config, embedded_nlu: EmbeddedNLU
) -> AsyncIterator[Setup]:
    """The same rules on both stores: one process in memory, or workers sharing a real Redis."""
    storage: Storage = MemoryStorage(3600)
    if request.param == "redis":
        url = request.getfixturevalue("redis_server")
        storage = RedisStorage.from_url(url, retention_seconds=3600, prefix=f"handoff-{uuid.uuid4().hex}")
    engine = build_engine(config, nlu=embedded_nlu, storage=storage)
    yield Setup(engine, config, RecordingChannel())
    await storage.close()


ANNA, BORIS = Staff("Anna"), Staff("Boris")


async def test_claim_is_exclusive_and_visible_in_the_queue(setup: Setup) -> None:
    conversation = await setup.handed_off()
    results = await asyncio.gather(
        setup.service.claim(conversation.key, ANNA),
        setup.service.claim(conversation.key, BORIS),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ClaimedByOther) for r in results) == 1
    holder = (await setup.service.get(conversation.key)).handoff
    assert holder is not None and holder.claimed_by in {"Anna", "Boris"}
    queue = await setup.service.queue()
    assert [c.handoff.claimed_by for c in queue if c.handoff] == [holder.claimed_by]
    assert [e.kind for e in setup.events].count(EventKind.CLAIMED) == 1


async def test_staff_replies_reach_the_user_in_order_in_their_language(setup: Setup) -> None:
    conversation = await setup.handed_off()
    address = conversation.address
    before = len(setup.channel.texts(address))
    await setup.service.claim(conversation.key, ANNA)
    await setup.service.send_curated(conversation.key, ANNA, "language_courses")
    await setup.service.reply(conversation.key, ANNA, "Bonjour, je peux vous aider.")
    curated = setup.engine.curated("language_courses", "ar")
    assert setup.channel.texts(address)[before:] == [curated.text, "Bonjour, je peux vous aider."]
    sent_curated = setup.channel.sent[before][1]
    assert sent_curated.buttons == () and sent_curated.links == curated.links
    stored = await setup.service.get(conversation.key)
    staff_turns = [t for t in stored.transcript if t.role is Role.STAFF]
    assert [(t.author, t.intent) for t in staff_turns] == [("Anna", "language_courses"), ("Anna", None)]
    assert [e.kind for e in setup.events].count(EventKind.STAFF_MESSAGE) == 2


async def test_while_handed_off_the_user_writes_to_staff_not_to_the_bot(setup: Setup) -> None:
    conversation = await setup.handed_off()
    sent_before = len(setup.channel.sent)
    await say(setup.runtime, user_text("amal", HOUSING_AR))
    assert len(setup.channel.sent) == sent_before
    assert setup.events[-1] == Event(EventKind.USER_MESSAGE, conversation.key)
    stored = await setup.service.get(conversation.key)
    assert any(t.role is Role.USER and t.text == HOUSING_AR for t in stored.transcript)


async def test_close_tells_the_user_and_their_next_message_goes_to_the_bot(setup: Setup) -> None:
    conversation = await setup.handed_off()
    await setup.service.reply(conversation.key, ANNA, "Hello")
    assert await setup.service.close(conversation.key, ANNA) is None
    closing = setup.engine.catalogs.gettext(
        "ar",
        "This conversation with %(centre)s is closed. You are back with the assistant: "
        "write your question any time.",
        centre=setup.engine.config.organisation.centre_name,
    )
    assert setup.channel.texts(conversation.address)[-1] == closing
    assert "Kalamaja" in closing and not closing.startswith("This conversation")
    stored = await setup.service.get(conversation.key)
    assert stored.handoff is None
    assert await setup.service.queue() == []
    assert setup.events[-1] == Event(EventKind.CLOSED, conversation.key)
    # Back with the bot: the next question gets the bot's answer, not the last staff member.
    before = len(setup.channel.texts(conversation.address))
    await say(setup.runtime, user_text("amal", HOUSING_AR))
    answer = setup.channel.texts(conversation.address)[before]
    assert answer == setup.engine.curated("housing_search", "ar").text
    with pytest.raises(NotHandedOff):
        await setup.service.reply(conversation.key, ANNA, "still there?")


async def test_notes_stay_private(setup: Setup) -> None:
    conversation = await setup.handed_off()
    sent = len(setup.channel.sent)
    await setup.service.note(conversation.key, BORIS, "Probably wants the food bank.")
    assert len(setup.channel.sent) == sent
    stored = await setup.service.get(conversation.key)
    assert stored.transcript[-1].role is Role.NOTE and stored.transcript[-1].author == "Boris"
    with pytest.raises(HandoffError):
        await setup.service.note(conversation.key, BORIS, "   ")


async def test_transfer_moves_the_conversation_to_a_colleague(setup: Setup) -> None:
    conversation = await setup.handed_off()
    await setup.service.claim(conversation.key, ANNA)
    with pytest.raises(ClaimedByOther):
        await setup.service.transfer(conversation.key, BORIS, "Boris")
    await setup.service.transfer(conversation.key, ANNA, "Boris")
    with pytest.raises(ClaimedByOther):
        await setup.service.reply(conversation.key, ANNA, "hello")
    await setup.service.reply(conversation.key, BORIS, "hello from Boris")
    assert setup.channel.texts(conversation.address)[-1] == "hello from Boris"
    # An admin may take a conversation over; a colleague may not.
    with pytest.raises(ClaimedByOther):
        await setup.service.claim(conversation.key, ANNA, take_over=True)
    await setup.service.claim(conversation.key, Staff("Chief", admin=True), take_over=True)
    assert (await setup.service.get(conversation.key)).handoff.claimed_by == "Chief"  # type: ignore[union-attr]


async def test_waiting_users_are_reminded_once_when_nobody_claims_them(setup: Setup) -> None:
    waiting = await setup.handed_off("amal")
    claimed = await setup.handed_off("omar")
    await setup.service.claim(claimed.key, ANNA)
    setup.clock.advance(minutes=14)
    assert await setup.service.remind_waiting() == 0
    setup.clock.advance(minutes=2)
    assert await setup.service.remind_waiting() == 1
    reminder = setup.channel.texts(waiting.address)[-1]
    assert reminder == setup.engine.catalogs.gettext(
        "ar",
        "Everyone at %(centre)s is busy at the moment. You have not been forgotten: a person will "
        "answer you here as soon as possible.",
        centre=setup.engine.config.organisation.centre_name,
    )
    setup.clock.advance(minutes=30)
    assert await setup.service.remind_waiting() == 0
    assert not any("busy" in text for text in setup.channel.texts(claimed.address))


async def test_outside_opening_hours_the_user_hears_when_we_open_and_waits(setup: Setup) -> None:
    setup.clock.now = CLOSED_TIME  # Saturday evening; the desk opens Monday 09:00 in Tallinn
    conversation = await setup.handed_off()
    notice = setup.channel.texts(conversation.address)[-1]
    assert notice == setup.engine.handoff_notice("ar", CLOSED_TIME)
    assert "09:00" in notice or "٠٩:٠٠" in notice
    assert [c.key for c in await setup.service.queue()] == [conversation.key]
    # Reminders count from the opening, not from the night message.
    setup.clock.now = dt.datetime(2026, 11, 23, 7, 10, tzinfo=dt.UTC)  # Monday 09:10 in Tallinn
    assert await setup.service.remind_waiting() == 0
    setup.clock.advance(minutes=6)
    assert await setup.service.remind_waiting() == 1


async def test_whatsapp_window_sends_a_template_once_and_never_free_text(
    engine: ConversationEngine, config: Config
) -> None:
    setup = Setup(engine, config, RecordingChannel("whatsapp", dt.timedelta(hours=24), template=True))
    conversation = await setup.handed_off()
    await setup.service.reply(conversation.key, ANNA, "within the window")
    setup.clock.advance(hours=25)
    sent = len(setup.channel.sent)
    with pytest.raises(WindowClosed) as closed:
        await setup.service.reply(conversation.key, ANNA, "too late")
    assert closed.value.template_sent and "24 hours" in str(closed.value)
    with pytest.raises(WindowClosed):
        await setup.service.send_curated(conversation.key, ANNA, "housing_search")
    assert setup.channel.templates == [(conversation.address, "ar")]
    assert len(setup.channel.sent) == sent
    stored = await setup.service.get(conversation.key)
    assert not any(t.role is Role.STAFF and t.text == "too late" for t in stored.transcript)
    # The user answers the template: the window is open again.
    await say(setup.runtime, user_text("amal", "نعم", "whatsapp"))
    await setup.service.reply(conversation.key, ANNA, "now it works")
    assert setup.channel.texts(conversation.address)[-1] == "now it works"


async def test_without_a_template_staff_are_told_the_user_cannot_be_reached(
    engine: ConversationEngine, config: Config
) -> None:
    setup = Setup(engine, config, RecordingChannel("whatsapp", dt.timedelta(hours=24), template=False))
    conversation = await setup.handed_off()
    setup.clock.advance(hours=30)
    with pytest.raises(WindowClosed) as closed:
        await setup.service.reply(conversation.key, ANNA, "hello?")
    assert not closed.value.template_sent and "No reply template" in str(closed.value)
    problem = await setup.service.close(conversation.key, ANNA)
    assert problem is not None and "could not be told" in problem
    assert (await setup.service.get(conversation.key)).handoff is None


async def test_a_failed_delivery_is_reported_and_not_recorded_as_sent(setup: Setup) -> None:
    conversation = await setup.handed_off()
    setup.channel.failures = 1
    with pytest.raises(NotDelivered, match="try again"):
        await setup.service.reply(conversation.key, ANNA, "lost?")
    stored = await setup.service.get(conversation.key)
    assert not any(t.role is Role.STAFF for t in stored.transcript)
    await setup.service.reply(conversation.key, ANNA, "second try")
    assert setup.channel.texts(conversation.address)[-1] == "second try"


async def test_forgotten_conversations_are_gone_for_staff(setup: Setup) -> None:
    conversation = await setup.handed_off()
    await setup.engine.storage.delete(conversation.key)
    with pytest.raises(ConversationGone):
        await setup.service.claim(conversation.key, ANNA)
    with pytest.raises(HandoffError):
        await setup.service.send_curated(conversation.key, ANNA, "no_such_topic")


async def test_the_whatsapp_window_against_the_graph_api_standin(
    engine: ConversationEngine, config: Config
) -> None:
    """Real WhatsApp channel: free text within 24 hours, then only the re-open template."""
    clock = Clock(OPEN_TIME)
    engine._clock = clock
    template = ReopenTemplate(name="guichet_reply_waiting", languages=["ar", "en"])
    with GraphAPI() as graph:
        credentials = WhatsAppCredentials.from_env(
            {
                "GUICHET_WHATSAPP_TOKEN": graph.access_token,
                "GUICHET_WHATSAPP_PHONE_NUMBER_ID": graph.phone_number_id,
                "GUICHET_WHATSAPP_APP_SECRET": graph.app_secret,
                "GUICHET_WHATSAPP_VERIFY_TOKEN": "verify-token-0123",
                "GUICHET_WHATSAPP_API_URL": graph.base_url,
            }
        )
        assert credentials is not None
        settings = config.whatsapp.model_copy(update={"reopen_template": template})
        runtime = Runtime(config, engine)
        runtime.add_channel(WhatsAppChannel(credentials, settings, engine, retry_delay=0.01))
        service = HandoffService(runtime, HandoffSettings(), clock=clock)
        async with serving(create_app(runtime)) as base_url:
            user = "32470000001"
            webhook = await deliver_webhook(
                f"{base_url}/webhooks/whatsapp", text_message_payload(user, UNSURE_AR), graph.app_secret
            )
            assert webhook.status_code == 200
            await runtime.dispatcher.idle()
            [waiting] = await service.queue()
            await service.reply(waiting.key, ANNA, "مرحبا، أنا آنا من المكتب")
            assert graph.texts_to(user)[-1] == "مرحبا، أنا آنا من المكتب"
            clock.advance(hours=25)
            with pytest.raises(WindowClosed) as closed:
                await service.reply(waiting.key, ANNA, "too late for free text")
            assert closed.value.template_sent
            assert graph.texts_to(user)[-1] == "template:guichet_reply_waiting"
            assert "too late for free text" not in graph.texts_to(user)
