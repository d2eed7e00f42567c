"""The WhatsApp channel end to end: signed webhooks into the real app, answers out to the Graph API.

The app (bot.web.app with a Runtime holding the WhatsApp channel, real engine and embedded NLU)
is served by uvicorn on 127.0.0.1 in the test's event loop; Meta is stood in for by
tests/standins/graph_api.py, which posts webhooks byte-for-byte like Meta and records and
validates what the bot sends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from bot.channels.whatsapp import (
    WEBHOOK_PATH,
    ReplyWindowClosed,
    WhatsAppChannel,
    WhatsAppCredentials,
    to_incoming,
)
from bot.channels.whatsapp_payloads import Message
from bot.channels.whatsapp_render import TEXT_LIMIT, split_text
from bot.config import ReopenTemplate, WhatsAppSettings
from bot.engine import ConversationEngine
from bot.messages import (
    HUMAN_PAYLOAD,
    INTENT_PAYLOAD,
    LANGUAGE_PAYLOAD,
    Button,
    IncomingMessage,
    Kind,
    Location,
    OutgoingMessage,
)
from bot.runtime import Runtime
from bot.server import add_whatsapp
from bot.storage.redis import RedisStorage
from bot.web.app import create_app
from tests.conftest import OPEN_TIME
from tests.standins import (
    DEFAULT_APP_SECRET,
    GraphAPI,
    deliver_webhook,
    encode_webhook_body,
    interactive_reply_payload,
    media_message_payload,
    sign,
    status_payload,
    text_message_payload,
    verification_params,
)

JSONDict = dict[str, Any]
VERIFY_TOKEN = "guichet-verify-0123"


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn (lifespan on) on a free port of 127.0.0.1, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
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


@dataclass
class Bot:
    """The running app, its WhatsApp channel and the Graph API stand-in it talks to."""

    base_url: str
    runtime: Runtime
    channel: WhatsAppChannel
    graph: GraphAPI

    @property
    def webhook(self) -> str:
        return self.base_url + WEBHOOK_PATH

    @property
    def engine(self) -> ConversationEngine:
        return self.runtime.engine

    async def deliver(self, payload: JSONDict, app_secret: str = DEFAULT_APP_SECRET) -> httpx.Response:
        """Post like Meta does, then wait until every accepted message is answered."""
        response = await deliver_webhook(self.webhook, payload, app_secret)
        await self.runtime.dispatcher.idle()
        return response

    async def say(self, user: str, text: str) -> list[JSONDict]:
        """The user writes ``text``; the requests the bot sent in answer."""
        before = len(self.graph.sent_to(user))
        response = await self.deliver(text_message_payload(user, text))
        assert response.status_code == 200
        return self.graph.sent_to(user)[before:]

    async def tap(self, user: str, choice_id: str, title: str, kind: str = "button_reply") -> list[JSONDict]:
        before = len(self.graph.sent_to(user))
        response = await self.deliver(interactive_reply_payload(user, choice_id, title, kind))
        assert response.status_code == 200
        return self.graph.sent_to(user)[before:]


def credentials(graph: GraphAPI) -> WhatsAppCredentials:
    credentials = WhatsAppCredentials.from_env(
        {
            "GUICHET_WHATSAPP_TOKEN": graph.access_token,
            "GUICHET_WHATSAPP_PHONE_NUMBER_ID": graph.phone_number_id,
            "GUICHET_WHATSAPP_APP_SECRET": graph.app_secret,
            "GUICHET_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "GUICHET_WHATSAPP_API_URL": graph.base_url,
        }
    )
    assert credentials is not None
    return credentials


@pytest.fixture
def graph() -> Iterator[GraphAPI]:
    with GraphAPI() as api:
        yield api


@asynccontextmanager
async def running(
    engine: ConversationEngine, graph: GraphAPI, settings: WhatsAppSettings | None = None
) -> AsyncIterator[Bot]:
    channel = WhatsAppChannel(
        credentials(graph), settings or engine.config.whatsapp, engine, retry_delay=0.01
    )
    runtime = Runtime(engine.config, engine)
    runtime.add_channel(channel)
    async with serving(create_app(runtime)) as base_url:
        yield Bot(base_url, runtime, channel, graph)


@pytest.fixture
async def bot(engine: ConversationEngine, graph: GraphAPI) -> AsyncIterator[Bot]:
    async with running(engine, graph) as running_bot:
        yield running_bot


# -- reading what the user got ------------------------------------------------------------------


def words(text: str) -> str:
    return " ".join(text.split())


def read(bodies: Sequence[JSONDict]) -> str:
    """Everything the user reads, in order."""
    texts = []
    for body in bodies:
        if body["type"] == "text":
            texts.append(body["text"]["body"])
        else:
            texts.append(body["interactive"]["body"]["text"])
    return words(" ".join(texts))


def choices(body: JSONDict) -> list[tuple[str, str]]:
    """(id, title) of the reply buttons or list rows of an interactive message."""
    interactive = body["interactive"]
    if interactive["type"] == "button":
        return [(b["reply"]["id"], b["reply"]["title"]) for b in interactive["action"]["buttons"]]
    return [(r["id"], r["title"]) for s in interactive["action"]["sections"] for r in s["rows"]]


def expected_reading(message: OutgoingMessage) -> str:
    return words(" ".join([message.text, *(f"{link.label}: {link.url}" for link in message.links)]))


def assert_curated_first(bodies: Sequence[JSONDict], expected: OutgoingMessage) -> None:
    """The user first read the curated answer, links included, with its follow-ups as reply buttons
    (the engine may add more messages after it, e.g. local services)."""
    assert bodies, "nothing was sent"
    if not expected.buttons:
        assert read(bodies).startswith(expected_reading(expected))
        return
    interactive = [i for i, body in enumerate(bodies) if body["type"] == "interactive"]
    assert interactive, f"no buttons; the user read: {read(bodies)[:200]}"
    end = interactive[0]
    assert read(bodies[: end + 1]) == expected_reading(expected)
    assert bodies[end]["interactive"]["type"] == "button"
    assert choices(bodies[end]) == [(b.payload, b.label) for b in expected.buttons]


def assert_rendered(bodies: Sequence[JSONDict], replies: Sequence[OutgoingMessage]) -> None:
    """``bodies`` show every reply in order: all the text, every choice, within WhatsApp's limits."""
    assert read(bodies) == words(" ".join(expected_reading(reply) for reply in replies))
    interactive = [body["interactive"] for body in bodies if body["type"] == "interactive"]
    # ten choices or fewer in these replies: one interactive message per reply with choices
    asking = [reply for reply in replies if reply.buttons or reply.request_location]
    assert len(interactive) == len(asking)
    for shown, reply in zip(interactive, asking, strict=True):
        if not reply.buttons:
            assert shown["type"] == "location_request_message"
            continue
        assert shown["type"] == ("button" if len(reply.buttons) <= 3 else "list")
        shown_choices = choices({"interactive": shown})
        assert [i for i, _ in shown_choices] == [b.payload for b in reply.buttons]
        for (_, title), button in zip(shown_choices, reply.buttons, strict=True):
            assert title == button.label or (title.endswith("…") and button.label.startswith(title[:-1]))


async def reference_replies(engine: ConversationEngine, text: str) -> list[OutgoingMessage]:
    """What the engine itself answers a new user writing ``text`` (no channel involved)."""
    user = uuid.uuid4().hex
    return await engine.handle(IncomingMessage("reference", user, Kind.TEXT, text=text, message_id=user))


def request_welcome_payload(user: str) -> JSONDict:
    """What Meta sends when a user opens the chat with the business for the first time."""
    payload = text_message_payload(user, "")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message["type"] = "request_welcome"
    return payload


# -- conversations --------------------------------------------------------------------------------

QUESTIONS = [
    ("fr", "je cherche un appartement a louer", "housing_search"),
    ("en", "how do i find a job here", "job_search"),
    ("nl", "waar kan ik mijn kind inschrijven op school", "school_enrollment"),
    ("ar", "ابحث عن سكن للايجار", "housing_search"),
    ("uk", "де можна вивчати естонську мову", "language_courses"),
    ("ru", "как открыть счет в банке", "bank_account"),
    ("et", "kus ma saan eesti keelt õppida", "language_courses"),
]


@pytest.mark.parametrize(("lang", "question", "intent"), QUESTIONS)
async def test_questions_get_the_curated_answer_in_their_language(
    bot: Bot, lang: str, question: str, intent: str
) -> None:
    user = f"3725{abs(hash(question)) % 10**7:07d}"
    sent = await bot.say(user, question)
    assert_curated_first(sent, bot.engine.curated(intent, lang, OPEN_TIME))
    assert_rendered(sent, await reference_replies(bot.engine, question))


async def test_a_whole_conversation_with_the_language_list_buttons_and_topics(bot: Bot) -> None:
    user = "380501234567"
    [menu] = await bot.say(user, "change language")
    assert menu["interactive"]["type"] == "list"
    rows = choices(menu)
    assert [row_id for row_id, _ in rows] == [
        LANGUAGE_PAYLOAD + code for code in bot.engine.config.languages.content
    ]
    assert menu["interactive"]["action"]["button"] == bot.engine.catalogs.gettext("en", "Choose")

    title = dict(rows)[LANGUAGE_PAYLOAD + "uk"]
    [chosen] = await bot.tap(user, LANGUAGE_PAYLOAD + "uk", title, kind="list_reply")
    assert chosen["text"]["body"] == bot.engine.catalogs.gettext("uk", "OK, I will write to you in English.")

    answer = await bot.say(user, "how do i find a job here")
    job = bot.engine.curated("job_search", "uk", OPEN_TIME)
    assert_curated_first(answer, job)

    follow_up = job.buttons[0]
    tapped = await bot.tap(user, follow_up.payload, follow_up.label)
    assert_curated_first(
        tapped, bot.engine.curated(follow_up.payload.removeprefix(INTENT_PAYLOAD), "uk", OPEN_TIME)
    )

    greeting = await bot.deliver(request_welcome_payload(user))
    assert greeting.status_code == 200
    [welcome] = bot.graph.sent_to(user)[-1:]
    expected = bot.engine.welcome("uk")
    assert welcome["interactive"]["type"] == "list"
    assert read([welcome]) == words(expected.text)
    assert choices(welcome) == [(b.payload, b.label) for b in expected.buttons]
    assert welcome["interactive"]["action"]["button"] == bot.engine.catalogs.gettext("uk", "Choose")


# -- authentication -------------------------------------------------------------------------------


async def post_raw(bot: Bot, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        response = await client.post(bot.webhook, content=body, headers=headers)
    await bot.runtime.dispatcher.idle()
    return response


async def assert_no_trace(bot: Bot, user: str) -> None:
    assert await bot.engine.storage.get(bot.engine.key_for("whatsapp", user)) is None
    assert await bot.engine.storage.keys_with_incoming() == []
    assert bot.graph.sent == []


@pytest.mark.parametrize(
    ("signature", "status"),
    [
        (None, 401),
        (sign(b"another body", DEFAULT_APP_SECRET), 403),
        ("signed-with-a-wrong-secret", 403),
        ("sha256=", 403),
    ],
)
async def test_unsigned_or_wrongly_signed_webhooks_leave_no_trace(
    bot: Bot, signature: str | None, status: int
) -> None:
    user = "32470111222"
    payload = text_message_payload(user, "how do i find a job here")
    body = encode_webhook_body(payload)
    headers = {"Content-Type": "application/json"}
    if signature == "signed-with-a-wrong-secret":
        signature = sign(body, "not-the-app-secret")
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    response = await post_raw(bot, body, headers)
    assert response.status_code == status
    await assert_no_trace(bot, user)

    # The refused delivery did not even mark the message id as seen: Meta's real one is answered.
    assert (await bot.deliver(payload)).status_code == 200
    assert_curated_first(bot.graph.sent_to(user), bot.engine.curated("job_search", "en", OPEN_TIME))


async def test_the_same_message_posted_three_times_is_answered_once(bot: Bot) -> None:
    once = await bot.say("4915111111111", "how do i find a job here")
    payload = text_message_payload("4915122222222", "how do i find a job here")
    statuses = [(await bot.deliver(payload)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    thrice = bot.graph.sent_to("4915122222222")
    assert len(thrice) == len(once) and read(thrice) == read(once)


# -- Graph API failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"count": 2, "status": 503},
        {"status": 429},
        {"code": 130429},  # throughput limit, answered with HTTP 400 as Meta does
        {"code": 131056},  # pair rate limit
    ],
)
async def test_graph_failures_are_retried_and_the_answer_arrives_once(bot: Bot, failure: JSONDict) -> None:
    user = "33699887766"
    bot.graph.fail_next(**failure)
    sent = await bot.say(user, "how do i find a job here")
    assert_curated_first(sent, bot.engine.curated("job_search", "en", OPEN_TIME))
    refused = [r for r in bot.graph.requests if r["status"] != 200]
    assert len(refused) == failure.get("count", 1)
    assert refused[0]["body"] == sent[0]  # the refused request is the one retried


async def test_a_closed_reply_window_is_reported_not_retried(bot: Bot) -> None:
    bot.graph.fail_next(code=131047)
    with pytest.raises(ReplyWindowClosed):
        await bot.channel.send("32470000000", [OutgoingMessage("Hello from the guichet")])
    assert len(bot.graph.requests) == 1 and bot.graph.sent == []


# -- media, statuses, malformed payloads ----------------------------------------------------------

CAN_ONLY_READ_TEXT = "I can only read text messages. Please write your question in a few words."
CANNOT_LISTEN = (
    "I cannot listen to voice messages or read files. Please write your question in a few words, "
    "or tap the button to talk to a person."
)


@pytest.mark.parametrize(
    ("kind", "msgid", "offers_a_person"),
    [
        ("image", CAN_ONLY_READ_TEXT, False),
        ("sticker", CAN_ONLY_READ_TEXT, False),
        ("contacts", CAN_ONLY_READ_TEXT, False),
        ("unsupported", CAN_ONLY_READ_TEXT, False),
        ("audio", CANNOT_LISTEN, True),
        ("voice", CANNOT_LISTEN, True),
        ("document", CANNOT_LISTEN, True),
        ("video", CANNOT_LISTEN, True),
    ],
)
async def test_media_messages_get_the_polite_reply_in_the_users_language(
    bot: Bot, kind: str, msgid: str, offers_a_person: bool
) -> None:
    user = "33611223344"
    await bot.say(user, "je cherche un appartement a louer")
    before = len(bot.graph.sent_to(user))
    assert (await bot.deliver(media_message_payload(user, kind))).status_code == 200
    [reply] = bot.graph.sent_to(user)[before:]
    assert read([reply]) == words(bot.engine.catalogs.gettext("fr", msgid))
    if offers_a_person:
        [(payload, title)] = choices(reply)
        assert (payload, title) == (HUMAN_PAYLOAD, bot.engine.catalogs.gettext("fr", "Talk to a person"))
        [notice] = await bot.tap(user, payload, title)
        assert read([notice]) == words(bot.engine.handoff_notice("fr", OPEN_TIME))
    else:
        assert reply["type"] == "text"


def _message(payload: JSONDict) -> Message:
    return Message.model_validate(payload["entry"][0]["changes"][0]["value"]["messages"][0])


@pytest.mark.parametrize(
    ("payload", "kind", "fields"),
    [
        (text_message_payload("331", "Bonjour"), Kind.TEXT, {"text": "Bonjour"}),
        (
            interactive_reply_payload("331", "i:housing_search", "Logement"),
            Kind.BUTTON,
            {"payload": "i:housing_search", "text": "Logement"},
        ),
        (
            interactive_reply_payload("331", "l:uk", "Українська", "list_reply"),
            Kind.BUTTON,
            {"payload": "l:uk"},
        ),
        (
            media_message_payload("331", "location", latitude=59.44, longitude=24.74),
            Kind.LOCATION,
            {"location": Location(59.44, 24.74)},
        ),
        (media_message_payload("331", "image"), Kind.IMAGE, {}),
        (media_message_payload("331", "voice"), Kind.AUDIO, {}),
        (media_message_payload("331", "document"), Kind.DOCUMENT, {}),
        (media_message_payload("331", "sticker"), Kind.STICKER, {}),
        (media_message_payload("331", "reaction"), Kind.REACTION, {}),
        (media_message_payload("331", "contacts"), Kind.CONTACT, {}),
        (media_message_payload("331", "unsupported"), Kind.UNSUPPORTED, {}),
        (request_welcome_payload("331"), Kind.COMMAND, {"payload": "start"}),
    ],
)
def test_every_message_type_is_translated(payload: JSONDict, kind: Kind, fields: JSONDict) -> None:
    message = _message(payload)
    incoming = to_incoming(message)
    assert incoming is not None
    assert (incoming.channel, incoming.user_id, incoming.kind) == ("whatsapp", "331", kind)
    assert incoming.message_id == message.id and incoming.message_id.startswith("wamid.")
    assert {name: getattr(incoming, name) for name in fields} == fields


async def test_status_callbacks_are_recorded_and_never_answered(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    user = "37255554444"
    sent = await bot.say(user, "how do i find a job here")
    wamid = bot.graph.responses[-1]["messages"][0]["id"]
    assert bot.channel.deliveries.state(wamid) == "accepted"
    for status in ("sent", "read", "delivered"):  # out of order, as Meta may send them
        assert (await bot.deliver(status_payload(wamid, status, user))).status_code == 200
    assert bot.channel.deliveries.state(wamid) == "read"

    caplog.set_level(logging.WARNING, logger="bot.channels.whatsapp")
    assert (await bot.deliver(status_payload(wamid, "failed", user, error_code=131026))).status_code == 200
    assert bot.channel.deliveries.state(wamid) == "failed"
    assert "131026" in caplog.text
    assert bot.graph.sent_to(user) == sent
    assert await bot.engine.storage.keys_with_incoming() == []


def _without(payload: JSONDict, *path: str | int) -> JSONDict:
    """``payload`` without the field at ``path``."""
    node: Any = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


SECRET_TEXT = "mon titre de séjour expire demain"
_MESSAGE = ("entry", 0, "changes", 0, "value", "messages", 0)


@pytest.mark.parametrize(
    "body",
    [
        b"this is not json " + SECRET_TEXT.encode(),
        encode_webhook_body({**text_message_payload("33600000001", SECRET_TEXT), "object": "page"}),
        encode_webhook_body(_without(text_message_payload("33600000001", SECRET_TEXT), *_MESSAGE, "from")),
        encode_webhook_body(_without(text_message_payload("33600000001", SECRET_TEXT), *_MESSAGE, "id")),
        encode_webhook_body(_without(text_message_payload("33600000001", SECRET_TEXT), *_MESSAGE, "text")),
        encode_webhook_body(
            _without(
                interactive_reply_payload("33600000001", "human", SECRET_TEXT),
                *_MESSAGE,
                "interactive",
                "button_reply",
            )
        ),
        encode_webhook_body(
            _without(
                text_message_payload("33600000001", SECRET_TEXT),
                "entry",
                0,
                "changes",
                0,
                "value",
                "metadata",
            )
        ),
        encode_webhook_body({"object": "whatsapp_business_account", "entry": {"id": SECRET_TEXT}}),
    ],
    ids=[
        "not-json",
        "wrong-object",
        "no-from",
        "no-id",
        "no-text",
        "no-button-reply",
        "no-metadata",
        "entry-not-a-list",
    ],
)
async def test_malformed_payloads_get_400_and_a_log_line_without_their_text(
    bot: Bot, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await post_raw(bot, body, {"X-Hub-Signature-256": sign(body, DEFAULT_APP_SECRET)})
    assert response.status_code == 400
    assert "malformed WhatsApp notification" in caplog.text
    assert "séjour" not in caplog.text and "sejour" not in caplog.text
    await assert_no_trace(bot, "33600000001")


async def test_a_huge_body_is_refused(bot: Bot) -> None:
    body = encode_webhook_body(text_message_payload("33600000002", "x" * 2_000_000))
    response = await post_raw(bot, body, {"X-Hub-Signature-256": sign(body, DEFAULT_APP_SECRET)})
    assert response.status_code == 413
    await assert_no_trace(bot, "33600000002")


async def test_messages_to_another_business_number_are_not_answered(bot: Bot) -> None:
    payload = text_message_payload("33600000003", "how do i find a job here", phone_number_id="999")
    assert (await bot.deliver(payload)).status_code == 200
    await assert_no_trace(bot, "33600000003")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_storage_down_answers_503_so_meta_retries(engine: ConversationEngine, graph: GraphAPI) -> None:
    engine.storage = RedisStorage.from_url(f"redis://127.0.0.1:{closed_port()}/0", retention_seconds=3600)
    async with running(engine, graph) as down:
        response = await down.deliver(text_message_payload("33600000004", "how do i find a job here"))
    assert response.status_code == 503
    assert graph.sent == []


# -- verification handshake -------------------------------------------------------------------------


async def test_the_verification_handshake(bot: Bot) -> None:
    async with httpx.AsyncClient() as client:
        ok = await client.get(bot.webhook, params=verification_params(VERIFY_TOKEN, "1158201444"))
        wrong = await client.get(bot.webhook, params=verification_params("guess", "1158201444"))
        not_subscribe = await client.get(
            bot.webhook, params={**verification_params(VERIFY_TOKEN), "hub.mode": "unsubscribe"}
        )
        bare = await client.get(bot.webhook)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert [r.status_code for r in (wrong, not_subscribe, bare)] == [403, 403, 403]
    assert "1158201444" not in wrong.text


# -- sending --------------------------------------------------------------------------------------


async def test_long_answers_are_split_on_paragraphs_in_order(bot: Bot) -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 700 for n in range(5)]
    message = OutgoingMessage("\n\n".join(paragraphs), (Button("Housing", "i:housing_search"),))
    await bot.channel.send("33600000005", [message])
    sent = bot.graph.sent_to("33600000005")
    texts = [b["text"]["body"] for b in sent[:-1]]
    assert all(len(t) <= 4096 for t in texts) and len(texts) >= 2
    assert all(t.startswith("Paragraph") for t in texts)  # cut between paragraphs only
    assert read(sent) == words(message.text)
    assert len(sent[-1]["interactive"]["body"]["text"]) <= 1024
    assert choices(sent[-1]) == [("i:housing_search", "Housing")]


def test_split_text_keeps_every_character_in_order() -> None:
    text = "\n\n".join(["short", "a" * 5000, "line one\nline two " + "b " * 3000, "end"])
    pieces = split_text(text, TEXT_LIMIT)
    assert all(0 < len(p) <= TEXT_LIMIT for p in pieces)
    assert words(" ".join(pieces)) == words(text).replace("a" * 5000, "a" * 4096 + " " + "a" * 904)
    assert pieces[0] == "short" and pieces[-1].endswith("end")


async def test_many_choices_become_lists_within_whatsapp_limits(bot: Bot) -> None:
    labels = [f"Topic number {n} with a rather long name" for n in range(12)]
    buttons = tuple(Button(label, f"i:topic_{n}") for n, label in enumerate(labels))
    two = (Button("A label longer than twenty", "human"), Button("A label longer than twenty!", "forget:no"))
    await bot.channel.send(
        "33600000006", [OutgoingMessage("Choose a topic", buttons), OutgoingMessage("Two", two)]
    )
    first, second, replies = bot.graph.sent_to("33600000006")
    assert [first["interactive"]["type"], second["interactive"]["type"]] == ["list", "list"]
    rows = choices(first) + choices(second)
    assert [row_id for row_id, _ in rows] == [b.payload for b in buttons]
    assert all(len(title) <= 24 for _, title in rows)
    described = first["interactive"]["action"]["sections"][0]["rows"][0]
    assert described["description"] == labels[0]
    assert first["interactive"]["action"]["button"] == bot.engine.catalogs.gettext("en", "Choose")
    titles = [title for _, title in choices(replies)]
    assert replies["interactive"]["type"] == "button" and all(len(t) <= 20 for t in titles)
    assert len(set(titles)) == 2


async def test_answers_to_one_user_stay_in_order(bot: Bot) -> None:
    user = "33600000007"
    bot.graph.fail_next(2, status=500, to=user)  # the first batch is slowed by retries
    first = [OutgoingMessage(f"first {n}") for n in range(3)]
    second = [OutgoingMessage(f"second {n}") for n in range(3)]
    task = asyncio.create_task(bot.channel.send(user, first))
    await asyncio.sleep(0)
    await asyncio.gather(task, bot.channel.send(user, second))
    assert bot.graph.texts_to(user) == [m.text for m in first + second]


# -- the 24-hour window ---------------------------------------------------------------------------


async def test_templates_reopen_the_window_when_one_is_set_up(
    engine: ConversationEngine, graph: GraphAPI
) -> None:
    template = ReopenTemplate(
        name="guichet_reply_waiting", languages=["en_US", "fr", "uk"], default_language="en_US"
    )
    async with running(engine, graph, WhatsAppSettings(reopen_template=template)) as bot:
        assert await bot.channel.send_template("33600000008", "fr") is True
        assert await bot.channel.send_template("33600000008", "en") is True
        assert await bot.channel.send_template("33600000008", "et") is True
    sent = graph.sent_to("33600000008")
    assert [s["template"]["name"] for s in sent] == ["guichet_reply_waiting"] * 3
    assert [s["template"]["language"]["code"] for s in sent] == ["fr", "en_US", "en_US"]
    assert all(r["messages"][0]["message_status"] == "accepted" for r in graph.responses)


async def test_no_template_means_nothing_is_sent(bot: Bot) -> None:
    assert bot.engine.config.whatsapp.reopen_template is None
    assert await bot.channel.send_template("33600000009", "fr") is False
    assert bot.graph.requests == []


def test_the_reply_window_is_24_hours(engine: ConversationEngine, graph: GraphAPI) -> None:
    channel = WhatsAppChannel(credentials(graph), engine.config.whatsapp, engine)
    now = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
    assert channel.reply_window == dt.timedelta(hours=24)
    assert channel.reply_window_open(now - dt.timedelta(hours=23, minutes=59), now)
    assert not channel.reply_window_open(now - dt.timedelta(hours=24, minutes=1), now)
    assert not channel.reply_window_open(None, now)


# -- set-up -----------------------------------------------------------------------------------------


def test_the_channel_is_added_only_when_configured(
    engine: ConversationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime(engine.config, engine)
    add_whatsapp(runtime)
    assert runtime.channels == {}

    monkeypatch.setenv("GUICHET_WHATSAPP_TOKEN", "EAAtoken")
    monkeypatch.setenv("GUICHET_WHATSAPP_PHONE_NUMBER_ID", "106540352242922")
    with pytest.raises(ValueError, match="GUICHET_WHATSAPP_APP_SECRET, GUICHET_WHATSAPP_VERIFY_TOKEN"):
        add_whatsapp(runtime)

    monkeypatch.setenv("GUICHET_WHATSAPP_APP_SECRET", "secret")
    monkeypatch.setenv("GUICHET_WHATSAPP_VERIFY_TOKEN", "verify")
    add_whatsapp(runtime)
    assert list(runtime.channels) == ["whatsapp"]
