"""The Telegram channel end to end: python-telegram-bot against the local Bot API stand-in.

Each test runs the real runtime (engine with the embedded NLU, dispatcher, Telegram channel) in
its own event loop, polling the stand-in of tests/standins/ on 127.0.0.1, or serving its webhook
with uvicorn there. Users are simulated by pushing updates into the stand-in; what they read is
what the stand-in stored after parsing the bot's HTML, as Telegram would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from bot.channels.telegram import COMMANDS, TelegramChannel
from bot.channels.telegram_render import CALLBACK_DATA_LIMIT, TEXT_LIMIT, CallbackData
from bot.config import Config, TelegramSettings
from bot.engine import MAIN_TOPICS, ConversationEngine
from bot.messages import Button, Link, OutgoingMessage
from bot.runtime import Runtime
from bot.server import build_runtime
from bot.storage import MemoryStorage, StorageUnavailable
from bot.web.app import create_app
from tests.conftest import CONTENT_LANGUAGES, OPEN_TIME
from tests.standins import TelegramBotAPI, document_content, photo_content, post_webhook, voice_content
from tests.standins.telegram_bot_api import BOT_USERNAME
from tests.test_engine import TYPICAL

JSONDict = dict[str, Any]
WEBHOOK_PATH = "/webhooks/telegram"
WEBHOOK_SECRET = "guichet-webhook-secret_42"

# A typical first question in each content language, and its topic: the first of each language
# among the engine's own typical questions.
QUESTIONS = {lang: (question, intent) for lang, question, intent in reversed(TYPICAL)}


@dataclass
class Bot:
    """The running runtime, its Telegram channel, and the Bot API stand-in it talks to."""

    runtime: Runtime
    channel: TelegramChannel
    telegram: TelegramBotAPI

    @property
    def engine(self) -> ConversationEngine:
        return self.runtime.engine

    def read(self, chat: int) -> list[JSONDict]:
        """The bot's messages in ``chat`` as Telegram stored them (HTML parsed into text + entities)."""
        return [m for m in self.telegram.chat_history(chat) if m["from"]["is_bot"]]

    async def answer(self, chat: int, push: Callable[[], JSONDict], count: int = 1) -> list[JSONDict]:
        """Push a user's update; the bot's messages in answer (at least ``count``), once all are sent."""
        before = len(self.telegram.sent_messages(chat))
        read_before = len(self.read(chat))
        push()
        await self.telegram.wait_for_messages(chat, before + count, timeout=30)
        await self.runtime.dispatcher.idle()
        return self.read(chat)[read_before:]

    async def say(self, chat: int, text: str, lang: str = "en", count: int = 1) -> list[JSONDict]:
        return await self.answer(chat, lambda: self.telegram.push_text(chat, text, language_code=lang), count)

    async def tap(self, chat: int, message: JSONDict, payload: str, lang: str = "en") -> list[JSONDict]:
        """Press the button of ``message`` carrying our ``payload``."""
        data = next(b["callback_data"] for b in buttons(message) if b["callback_data"] == payload)
        return await self.answer(
            chat, lambda: self.telegram.push_callback(chat, data, message["message_id"], language_code=lang)
        )

    async def quiet(self, seconds: float = 1.5) -> None:
        """Give the poller time to fetch what was pushed, then let every reply go out."""
        await asyncio.sleep(seconds)
        await self.runtime.dispatcher.idle()


def buttons(message: JSONDict) -> list[JSONDict]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def payloads(message: JSONDict) -> list[str]:
    return [b["callback_data"] for b in buttons(message)]


def link_urls(message: JSONDict) -> list[str]:
    return [e["url"] for e in message.get("entities", []) if e["type"] == "text_link"]


def assert_curated(message: JSONDict, expected: OutgoingMessage) -> None:
    """The user read the curated answer, its links as links, its follow-ups as inline buttons."""
    reading = expected.text.strip()
    if expected.links:
        reading += "\n\n" + "\n".join(link.label for link in expected.links)
    assert message["text"] == reading
    assert link_urls(message) == [link.url for link in expected.links]
    assert [(b["text"], b["callback_data"]) for b in buttons(message)] == [
        (b.label, b.payload) for b in expected.buttons
    ]


@pytest.fixture
def telegram() -> Iterator[TelegramBotAPI]:
    with TelegramBotAPI() as api:
        yield api


@asynccontextmanager
async def polling(
    engine: ConversationEngine, telegram: TelegramBotAPI, config: Config | None = None
) -> AsyncIterator[Bot]:
    runtime = Runtime(config or engine.config, engine)
    channel = TelegramChannel(runtime, telegram.token or "", api_url=telegram.base_url)
    runtime.add_channel(channel)
    await runtime.start()
    try:
        await asyncio.wait_for(channel.ready.wait(), 10)
        yield Bot(runtime, channel, telegram)
    finally:
        await runtime.stop()


@pytest.fixture
async def bot(engine: ConversationEngine, telegram: TelegramBotAPI) -> AsyncIterator[Bot]:
    async with polling(engine, telegram) as running:
        yield running


@asynccontextmanager
async def serving(app_for: Callable[[str], ASGIApp]) -> AsyncIterator[str]:
    """Serve the app built for its own base URL with uvicorn (lifespan on) on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app_for(base_url), lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield base_url
    finally:
        server.should_exit = True
        await task
        sock.close()


# -- a whole conversation -------------------------------------------------------------------------


async def test_a_question_in_each_language_gets_its_curated_answer(bot: Bot) -> None:
    chats = {lang: 1000 + number for number, lang in enumerate(CONTENT_LANGUAGES)}
    for lang, (question, _) in QUESTIONS.items():
        bot.telegram.push_text(chats[lang], question, language_code=lang)
    for chat in chats.values():
        await bot.telegram.wait_for_messages(chat, 1, timeout=30)
    await bot.runtime.dispatcher.idle()
    for lang, (_, intent) in QUESTIONS.items():
        first = bot.read(chats[lang])[0]
        assert_curated(first, bot.engine.curated(intent, lang, OPEN_TIME))


async def test_start_greets_in_the_users_language_with_the_main_topics(bot: Bot) -> None:
    for chat, lang in ((2001, "ar"), (2002, "uk"), (2003, "uk-UA")):
        [greeting] = await bot.say(chat, "/start", lang)
        expected = bot.engine.welcome(lang[:2])
        assert greeting["text"] == expected.text
        assert payloads(greeting) == [f"i:{topic}" for topic in MAIN_TOPICS if bot.engine.answers.has(topic)]
        assert [b["text"] for b in buttons(greeting)] == [b.label for b in expected.buttons]


async def test_pressing_a_topic_button_answers_that_topic(bot: Bot) -> None:
    [greeting] = await bot.say(3001, "/start", "fr")
    answer, *_ = await bot.tap(3001, greeting, "i:housing_search", "fr")
    assert_curated(answer, bot.engine.curated("housing_search", "fr", OPEN_TIME))
    # The spinner on the user's button is stopped.
    [call] = await bot.telegram.wait_for_calls("answerCallbackQuery")
    assert bot.telegram.callback_answered(call["callback_query_id"])


async def test_choosing_ukrainian_in_the_language_menu(bot: Bot) -> None:
    catalogs = bot.engine.catalogs
    [menu] = await bot.say(4001, "/language", "ru")
    assert menu["text"] == catalogs.gettext("ru", "Choose your language:")
    assert payloads(menu) == [f"l:{lang}" for lang in bot.engine.config.languages.content]
    [confirmation] = await bot.tap(4001, menu, "l:uk", "ru")
    assert confirmation["text"] == catalogs.gettext("uk", "OK, I will write to you in English.")
    # From now on, Ukrainian, although the Telegram app is in Russian.
    [greeting] = await bot.say(4001, "/start", "ru")
    assert greeting["text"] == bot.engine.welcome("uk").text


async def test_human_command_puts_the_conversation_in_the_staff_queue(bot: Bot) -> None:
    [notice] = await bot.say(5001, "/human", "nl")
    assert notice["text"] == bot.engine.handoff_notice("nl", OPEN_TIME)
    key = bot.engine.key_for("telegram", "5001")
    queue = await bot.runtime.storage.handoff_queue()
    assert [c.key for c in queue] == [key]
    assert queue[0].address == "5001" and queue[0].handoff and queue[0].handoff.reason == "requested"
    # While a person has the conversation, the bot keeps quiet.
    bot.telegram.push_text(5001, "hallo, is daar iemand?", language_code="nl")
    await bot.quiet()
    assert len(bot.read(5001)) == 1


async def test_forget_deletes_the_conversation_after_confirmation(bot: Bot) -> None:
    await bot.say(6001, "how do i find a job here")
    key = bot.engine.key_for("telegram", "6001")
    assert await bot.runtime.storage.get(key) is not None
    [question] = await bot.say(6001, "/forget")
    assert payloads(question) == ["forget:yes", "forget:no"]
    assert await bot.runtime.storage.get(key) is not None  # nothing deleted before the confirmation
    [done] = await bot.tap(6001, question, "forget:yes")
    assert done["text"] == bot.engine.catalogs.gettext(
        "en", "Done. Everything stored about you has been deleted."
    )
    assert await bot.runtime.storage.get(key) is None


# -- media, groups, commands ----------------------------------------------------------------------


async def test_photo_and_voice_note_get_a_polite_reply(bot: Bot) -> None:
    catalogs = bot.engine.catalogs
    [photo] = await bot.answer(
        7001, lambda: bot.telegram.push_message(7001, photo=photo_content(), language_code="fr")
    )
    assert photo["text"] == catalogs.gettext(
        "fr", "I can only read text messages. Please write your question in a few words."
    )
    assert buttons(photo) == []
    [voice] = await bot.answer(
        7002, lambda: bot.telegram.push_message(7002, voice=voice_content(), language_code="uk")
    )
    assert voice["text"] == catalogs.gettext(
        "uk",
        "I cannot listen to voice messages or read files. Please write your question in a few "
        "words, or tap the button to talk to a person.",
    )
    assert [(b["text"], b["callback_data"]) for b in buttons(voice)] == [
        (catalogs.gettext("uk", "Talk to a person"), "human")
    ]
    [document] = await bot.answer(
        7002, lambda: bot.telegram.push_message(7002, document=document_content(), language_code="uk")
    )
    assert payloads(document) == ["human"]


async def test_an_edited_message_is_answered_politely(bot: Bot) -> None:
    original = bot.telegram.push_text(7101, "hello", language_code="en")["message"]["message_id"]
    await bot.telegram.wait_for_messages(7101, 1)
    [edited] = await bot.answer(
        7101,
        lambda: bot.telegram.push_update(
            bot.telegram.message_update(7101, text="hello again", edited=True, message_id=original)
        ),
    )
    assert edited["text"] == bot.engine.catalogs.gettext(
        "en", "I only read new messages. Please send your question again."
    )


async def test_commands_are_registered_in_each_content_language(bot: Bot) -> None:
    await bot.telegram.wait_for_calls("setMyCommands", 1 + len(CONTENT_LANGUAGES))
    catalogs = bot.engine.catalogs
    for lang in CONTENT_LANGUAGES:
        registered = bot.telegram.commands(language_code=lang)
        assert registered == [
            {"command": name, "description": catalogs.gettext(lang, description)}
            for name, description in COMMANDS.items()
        ]
    assert [c["command"] for c in bot.telegram.commands()] == list(COMMANDS)
    assert bot.telegram.commands(language_code="uk")[2]["description"] == "Змінити мову"


async def test_in_a_group_the_bot_answers_only_when_addressed(bot: Bot) -> None:
    group, mention = -1001234567, f"@{BOT_USERNAME}"

    def write(text: str, user: int, **kw: Any) -> JSONDict:
        return bot.telegram.push_text(group, text, user_id=user, chat_type="supergroup", **kw)

    write("how do i find a job here", 8001)
    await bot.quiet()
    assert bot.read(group) == []
    mentioned = [{"type": "mention", "offset": 0, "length": len(mention)}]
    answer, *_ = await bot.answer(
        group, lambda: write(f"{mention} how do i find a job here", 8001, entities=mentioned)
    )
    assert_curated(answer, bot.engine.curated("job_search", "en", OPEN_TIME))
    reply, *_ = await bot.answer(
        group, lambda: write("i need to see a doctor", 8002, reply_to_message_id=answer["message_id"])
    )
    assert_curated(reply, bot.engine.curated("health_care", "en", OPEN_TIME))
    [greeting] = await bot.answer(group, lambda: write(f"/start{mention}", 8003))
    assert greeting["text"] == bot.engine.welcome("en").text
    write("/start@some_other_bot", 8003)
    await bot.quiet()
    assert bot.read(group)[-1] == greeting


async def test_the_bot_leaves_groups_when_configured_to(
    engine: ConversationEngine, telegram: TelegramBotAPI
) -> None:
    config = engine.config.model_copy(update={"telegram": TelegramSettings(groups="leave")})
    async with polling(engine, telegram, config) as leaving:
        telegram.push_text(-1009876, f"@{BOT_USERNAME} hello", user_id=8101, chat_type="supergroup")
        [left] = await telegram.wait_for_calls("leaveChat")
        await leaving.quiet()
        # A private chat is still answered.
        answer, *_ = await leaving.say(8101, "how do i find a job here")
    assert left["chat_id"] == -1009876
    assert telegram.sent_messages(-1009876) == []
    assert_curated(answer, engine.curated("job_search", "en", OPEN_TIME))


# -- sending: formatting, length, limits ------------------------------------------------------------


async def test_a_10000_character_answer_arrives_split_on_paragraphs_in_order(bot: Bot) -> None:
    paragraphs = [f"Paragraph {n}: " + ("word " * 60).strip() + "." for n in range(1, 33)]
    text = "\n\n".join(paragraphs)
    assert len(text) >= 10_000
    await bot.channel.send("9001", [OutgoingMessage(text, (Button("Housing", "i:housing_search"),))])
    parts = bot.read(9001)
    assert len(parts) == 3
    assert all(len(part["text"]) <= TEXT_LIMIT for part in parts)
    assert "\n\n".join(part["text"] for part in parts) == text
    # Every part ends at a paragraph; the buttons come with the last one.
    assert all(part["text"].endswith(".") for part in parts)
    assert [payloads(part) for part in parts] == [[], [], ["i:housing_search"]]


async def test_one_paragraph_longer_than_a_message_is_cut_between_words(bot: Bot) -> None:
    text = " ".join(f"w{n}" for n in range(3000))  # about 15,000 characters, no paragraph break
    await bot.channel.send("9002", [OutgoingMessage(text)])
    parts = bot.read(9002)
    assert len(parts) >= 4
    assert all(len(part["text"]) <= TEXT_LIMIT for part in parts)
    assert " ".join(part["text"] for part in parts) == text


async def test_content_and_links_cannot_break_the_formatting(bot: Bot) -> None:
    text = 'Bring <your> papers & a <b>copy</b>; 5 < 7 > 3 & "quotes" stay.\n\nNext step: come.'
    link = Link("Rights & <duties>", 'https://example.org/a?b=1&c="2"')
    await bot.channel.send("9003", [OutgoingMessage(text, links=(link,))])
    [message] = bot.read(9003)
    assert message["text"] == text + "\n\n" + link.label
    assert link_urls(message) == [link.url]
    assert not [e for e in message.get("entities", []) if e["type"] != "text_link"]


async def test_flood_control_is_honoured_and_nothing_is_lost(bot: Bot) -> None:
    bot.telegram.fail_next("sendMessage", count=1, status=429, retry_after=2)
    started = time.monotonic()
    await bot.channel.send("9004", [OutgoingMessage("message 1"), OutgoingMessage("message 2")])
    elapsed = time.monotonic() - started
    assert [m["text"] for m in bot.read(9004)] == ["message 1", "message 2"]
    assert len(bot.telegram.calls_to("sendMessage")) == 3  # the refused one was sent again
    # 2 s of retry_after before the first, then the chat's 1 s between the two.
    assert elapsed >= 3.0
    # A real answer through the whole pipeline survives a flood-control answer too.
    bot.telegram.fail_next("sendMessage", count=1, status=429, retry_after=1)
    answer, *_ = await bot.say(9005, "how do i find a job here")
    assert_curated(answer, bot.engine.curated("job_search", "en", OPEN_TIME))


async def test_network_errors_are_retried(bot: Bot) -> None:
    bot.telegram.fail_next("sendMessage", count=2, status=502)
    answer, *_ = await bot.say(9006, "i need to see a doctor")
    assert_curated(answer, bot.engine.curated("health_care", "en", OPEN_TIME))
    assert len(bot.telegram.calls_to("sendMessage")) == len(bot.read(9006)) + 2


async def test_messages_to_one_chat_stay_in_order_and_one_second_apart(bot: Bot) -> None:
    started = time.monotonic()
    await asyncio.gather(
        bot.channel.send("9007", [OutgoingMessage("a1"), OutgoingMessage("a2")]),
        bot.channel.send("9007", [OutgoingMessage("b1"), OutgoingMessage("b2")]),
    )
    elapsed = time.monotonic() - started
    assert [m["text"] for m in bot.read(9007)] == ["a1", "a2", "b1", "b2"]
    assert elapsed >= 3.0


async def test_the_share_location_button_is_in_the_users_language(bot: Bot) -> None:
    await bot.say(9008, "/start", "ar")
    await bot.channel.send("9008", [OutgoingMessage("?", request_location=True)])
    sent = bot.telegram.sent_messages(9008)[-1]
    [[button]] = sent["reply_markup"]["keyboard"]
    assert button == {
        "text": bot.engine.catalogs.gettext("ar", "Share my location"),
        "request_location": True,
    }


def test_long_payloads_become_short_callback_data_that_every_worker_decodes() -> None:
    known = ["i:" + "a_very_long_topic_identifier_" * 4, "i:housing_search"]
    worker, other_worker = CallbackData(known), CallbackData(known)
    for payload in known:
        data = worker.encode(payload)
        assert 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT
        assert other_worker.decode(data) == payload
    assert worker.encode("i:housing_search") == "i:housing_search"
    assert other_worker.decode("#unknown-token") == "#unknown-token"


async def test_a_long_payload_survives_the_round_trip_through_telegram(bot: Bot) -> None:
    payload = "l:" + "uk" * 40
    await bot.channel.send("9009", [OutgoingMessage("Choose", (Button("Українська", payload),))])
    [message] = bot.read(9009)
    [data] = payloads(message)
    assert len(data.encode()) <= CALLBACK_DATA_LIMIT and data != payload
    # The engine gets the original payload back: an unknown language shows the language menu.
    [menu] = await bot.answer(9009, lambda: bot.telegram.push_callback(9009, data, message["message_id"]))
    assert payloads(menu) == [f"l:{lang}" for lang in bot.engine.config.languages.content]


# -- storage outages --------------------------------------------------------------------------------


class FlakyStorage(MemoryStorage):
    """A store that can be down (as Redis is during an outage): nothing can be written then."""

    down = False

    async def first_delivery(self, message_id: str) -> bool:
        if self.down:
            raise StorageUnavailable("down")
        return await super().first_delivery(message_id)


async def test_an_update_received_while_storage_is_down_is_kept_until_it_is_back(
    engine: ConversationEngine, telegram: TelegramBotAPI
) -> None:
    storage = FlakyStorage(3600)
    storage.down = True
    engine.storage = storage
    async with polling(engine, telegram) as flaky:
        update = telegram.push_text(9101, "how do i find a job here")
        await flaky.quiet(2.0)
        assert flaky.read(9101) == []
        storage.down = False
        await telegram.wait_for_messages(9101, 1, timeout=30)
        await flaky.runtime.dispatcher.idle()
        assert_curated(flaky.read(9101)[0], engine.curated("job_search", "en", OPEN_TIME))
    assert update not in telegram.pending_updates  # confirmed once stored, not before


async def test_an_update_not_yet_stored_at_shutdown_is_answered_after_a_restart(
    engine: ConversationEngine, telegram: TelegramBotAPI
) -> None:
    storage = FlakyStorage(3600)
    storage.down = True
    engine.storage = storage
    async with polling(engine, telegram) as flaky:
        answered_first = telegram.push_text(9102, "hello")
        await flaky.quiet(1.0)
    # The bot stopped during the outage: the update is still waiting at Telegram.
    assert [u["update_id"] for u in telegram.pending_updates] == [answered_first["update_id"]]
    engine.storage = MemoryStorage(3600)
    async with polling(engine, telegram) as restarted:
        telegram.push_text(9102, "how do i find a job here")
        await telegram.wait_for_messages(9102, 2, timeout=30)
        await restarted.runtime.dispatcher.idle()
    texts = [m["text"] for m in restarted.read(9102)]
    assert texts[0] == engine.curated("greet", "en", OPEN_TIME).text.strip()
    assert texts[1].startswith(engine.curated("job_search", "en", OPEN_TIME).text.strip())


# -- webhook mode -----------------------------------------------------------------------------------


@asynccontextmanager
async def webhook_bot(engine: ConversationEngine, telegram: TelegramBotAPI) -> AsyncIterator[tuple[Bot, str]]:
    channels: list[TelegramChannel] = []

    def app_for(base_url: str) -> ASGIApp:
        runtime = Runtime(engine.config, engine)
        channel = TelegramChannel(
            runtime,
            telegram.token or "",
            api_url=telegram.base_url,
            webhook_url=base_url + WEBHOOK_PATH,
            webhook_secret=WEBHOOK_SECRET,
        )
        runtime.add_channel(channel)
        channels.append(channel)
        return create_app(runtime)

    async with serving(app_for) as base_url:
        [channel] = channels
        await asyncio.wait_for(channel.ready.wait(), 10)
        yield Bot(channel.runtime, channel, telegram), base_url + WEBHOOK_PATH


async def test_webhook_mode_checks_the_secret_token(
    engine: ConversationEngine, telegram: TelegramBotAPI
) -> None:
    async with webhook_bot(engine, telegram) as (bot, url):
        assert telegram.webhook is not None
        assert telegram.webhook["url"] == url and telegram.webhook["secret_token"] == WEBHOOK_SECRET
        update = telegram.text_update(9201, "how do i find a job here")
        for secret in ("wrong-secret", None):
            refused = await post_webhook(url, update, secret)
            assert refused.status_code == 403
        await bot.runtime.dispatcher.idle()
        assert telegram.sent_messages() == []
        assert await engine.storage.get(engine.key_for("telegram", "9201")) is None

        accepted = await post_webhook(url, update, WEBHOOK_SECRET)
        assert accepted.status_code == 200
        again = await post_webhook(url, update, WEBHOOK_SECRET)  # Telegram redelivers
        assert again.status_code == 200
        await telegram.wait_for_messages(9201, 1)
        await bot.runtime.dispatcher.idle()
        answer, *_ = bot.read(9201)
        assert_curated(answer, engine.curated("job_search", "en", OPEN_TIME))

        start = await post_webhook(
            url, telegram.text_update(9202, "/start", language_code="ru"), WEBHOOK_SECRET
        )
        assert start.status_code == 200
        await telegram.wait_for_messages(9202, 1)
        await bot.runtime.dispatcher.idle()
        assert [m["text"] for m in bot.read(9202)] == [engine.welcome("ru").text]
        # Polling is off: the webhook is the only way in.
        assert telegram.calls_to("getUpdates") == []


async def test_webhook_refuses_malformed_updates(
    engine: ConversationEngine, telegram: TelegramBotAPI
) -> None:
    async with webhook_bot(engine, telegram) as (bot, url):
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET, "Content-Type": "application/json"}
        async with httpx.AsyncClient() as client:
            malformed: list[Any] = [
                {"message": {"text": "hi"}},  # no update_id
                {"update_id": -3},
                {"update_id": 5, "message": "hi"},
                {"update_id": 6, "message": {"text": "hi"}},  # no message_id, date, chat
                {"update_id": 7, "callback_query": {"id": "1"}},
                [1, 2],
            ]
            for body in [b"{not json", *(json.dumps(update).encode() for update in malformed)]:
                response = await client.post(url, content=body, headers=headers)
                assert response.status_code == 400
            huge = json.dumps({"update_id": 1, "padding": "x" * 2_000_000}).encode()
            assert (await client.post(url, content=huge, headers=headers)).status_code == 413
        await bot.runtime.dispatcher.idle()
        assert telegram.sent_messages() == []


async def test_webhook_answers_503_while_storage_is_down(
    engine: ConversationEngine, telegram: TelegramBotAPI
) -> None:
    storage = FlakyStorage(3600)
    storage.down = True
    engine.storage = storage
    async with webhook_bot(engine, telegram) as (bot, url):
        update = telegram.text_update(9301, "how do i find a job here")
        assert (await post_webhook(url, update, WEBHOOK_SECRET)).status_code == 503
        storage.down = False
        assert (await post_webhook(url, update, WEBHOOK_SECRET)).status_code == 200
        await telegram.wait_for_messages(9301, 1)
        await bot.runtime.dispatcher.idle()
        assert_curated(bot.read(9301)[0], engine.curated("job_search", "en", OPEN_TIME))


# -- guichet serve ----------------------------------------------------------------------------------


async def test_serve_runs_telegram_when_the_token_is_set(
    config: Config, telegram: TelegramBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUICHET_TELEGRAM_TOKEN", telegram.token or "")
    monkeypatch.setenv("GUICHET_TELEGRAM_API_URL", telegram.base_url)
    runtime = build_runtime(config)
    async with serving(lambda _: create_app(runtime)) as base_url:
        async with httpx.AsyncClient() as client:
            health = (await client.get(base_url + "/healthz")).json()
        assert "telegram" in health["channels"]
        telegram.push_text(9401, "/start", language_code="et")
        [greeting] = await telegram.wait_for_messages(9401, 1, timeout=30)
    assert greeting["parse_mode"] == "HTML"
    assert telegram.chat_history(9401)[-1]["text"] == runtime.engine.welcome("et").text
