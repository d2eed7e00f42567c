"""The stand-ins speak the real wire formats: PTB and httpx run unmodified against them."""

from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Bot as PTBBot
from telegram import (
    BotCommand,
    ChatFullInfo,
    ForumTopic,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.standins import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_APP_SECRET,
    DEFAULT_PHONE_NUMBER_ID,
    BackgroundServer,
    GraphAPI,
    TelegramBotAPI,
    contact_content,
    deliver_webhook,
    document_content,
    encode_webhook_body,
    interactive_reply_payload,
    location_content,
    media_message_payload,
    photo_content,
    sign,
    status_payload,
    sticker_content,
    text_message_payload,
    voice_content,
)
from tests.standins.telegram_bot_api import BOT_USERNAME

USER = 4242


@pytest.fixture
def telegram() -> Iterator[TelegramBotAPI]:
    with TelegramBotAPI() as api:
        yield api


@pytest.fixture
async def bot(telegram: TelegramBotAPI) -> AsyncIterator[PTBBot]:
    client = PTBBot(telegram.token or "", base_url=telegram.base_url, base_file_url=telegram.base_file_url)
    async with client:
        yield client


@pytest.fixture
def graph() -> Iterator[GraphAPI]:
    with GraphAPI() as api:
        yield api


class Receiver:
    """A webhook endpoint recording the raw requests it gets, like a bot's would see them."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self.server = BackgroundServer(app, name="receiver")

    async def _hook(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        return Response("ok")

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    with hook.server:
        yield hook


def _seconds(value: int | float | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# ------------------------------------------------------------------------------------------
# Telegram
# ------------------------------------------------------------------------------------------


async def test_get_me_through_ptb(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    me = await bot.get_me()
    assert me.username == BOT_USERNAME and me.is_bot
    assert bot.id == me.id == int((telegram.token or "").split(":")[0])
    assert telegram.calls[0] == ("getMe", {})


async def test_send_message_with_inline_keyboard(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    markup = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Housing", callback_data="intent:housing")],
            [InlineKeyboardButton("Website", url="https://example.org/help")],
        ]
    )
    first = await bot.send_message(USER, "Hello", reply_markup=markup)
    second = await bot.send_message(USER, "Second")

    assert isinstance(first, Message)
    assert first.text == "Hello" and first.chat.id == USER and first.from_user.id == bot.id
    assert first.reply_markup == markup
    assert (first.message_id, second.message_id) == (1, 2)
    assert second.reply_markup is None
    sent = telegram.sent_messages(USER)
    assert [p["text"] for p in sent] == ["Hello", "Second"]
    # PTB form-encodes reply_markup as JSON; the stand-in decodes it back.
    assert sent[0]["reply_markup"] == markup.to_dict()
    assert sent[0]["chat_id"] == USER


async def test_formatting_is_parsed_like_telegram(bot: PTBBot) -> None:
    message = await bot.send_message(USER, "<b>Bonjour</b> &amp; bienvenue", parse_mode="HTML")
    assert message.text == "Bonjour & bienvenue"
    assert message.entities == (MessageEntity(MessageEntity.BOLD, 0, 7),)

    md = await bot.send_message(USER, r"*Rendez\-vous* demain\.", parse_mode="MarkdownV2")
    assert md.text == "Rendez-vous demain."
    assert md.entities[0].type == MessageEntity.BOLD

    with pytest.raises(BadRequest, match=r'(?i)Unsupported start tag "br"'):
        await bot.send_message(USER, "line<br>line", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)Can't find end tag"):
        await bot.send_message(USER, "<b>open", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)Character '.' is reserved"):
        await bot.send_message(USER, "Opening hours: 9-17.", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            USER,
            "hi",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d" * 65)]]),
        )


async def test_set_and_get_my_commands(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    commands = [BotCommand("start", "Start"), BotCommand("language", "Change language")]
    assert await bot.set_my_commands(commands) is True
    assert await bot.set_my_commands([BotCommand("start", "Commencer")], language_code="fr") is True

    assert await bot.get_my_commands() == tuple(commands)
    assert await bot.get_my_commands(language_code="fr") == (BotCommand("start", "Commencer"),)
    assert telegram.calls_to("setMyCommands")[0]["commands"] == [c.to_dict() for c in commands]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start!", "bad")])


async def test_get_updates_after_push_text(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    pushed = telegram.push_text(USER, "bonjour", language_code="fr", first_name="Amina")

    updates = await bot.get_updates(timeout=0)

    assert len(updates) == 1 and isinstance(updates[0], Update)
    update = updates[0]
    assert update.update_id == pushed["update_id"]
    assert update.message.text == "bonjour"
    assert update.effective_user.language_code == "fr"
    assert update.effective_user.first_name == "Amina"
    assert update.effective_chat.type == "private" and update.effective_chat.id == USER
    # Not confirmed yet: served again; an offset past it confirms it.
    assert len(await bot.get_updates(timeout=0)) == 1
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    assert telegram.pending_updates == []


async def test_long_polling_waits_for_a_push(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    async def push_later() -> None:
        await asyncio.sleep(0.3)
        telegram.push_text(USER, "/start")

    pusher = asyncio.create_task(push_later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    elapsed = time.monotonic() - started
    await pusher

    assert 0.25 < elapsed < 3
    assert updates[0].message.text == "/start"
    assert updates[0].message.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
    started = time.monotonic()
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=1) == ()
    assert time.monotonic() - started >= 0.9


async def test_application_polling_end_to_end(telegram: TelegramBotAPI) -> None:
    """PTB's Updater (deleteWebhook, long polling, offsets) drives real handlers."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Housing", callback_data="housing")]])
        await update.effective_message.reply_text("Welcome!", reply_markup=keyboard)

    async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer()
        await query.edit_message_text(f"You chose {query.data}")

    app = Application.builder().token(telegram.token or "").base_url(telegram.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(choose))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=1))
        try:
            telegram.push_text(USER, "/start")
            [welcome] = await telegram.wait_for_messages(USER, 1)
            assert welcome["text"] == "Welcome!"
            assert welcome["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "housing"

            bot_message = telegram.chat_history(USER)[-1]
            update = telegram.push_callback(USER, "housing", bot_message["message_id"])
            await telegram.wait_for_calls("editMessageText")
            assert telegram.callback_answered(update["callback_query"]["id"])
        finally:
            await app.updater.stop()
            await app.stop()

    edited = telegram.message(USER, bot_message["message_id"])
    assert edited is not None
    assert edited["text"] == "You chose housing" and "reply_markup" not in edited
    assert telegram.calls_to("deleteWebhook")
    assert telegram.pending_updates == []  # PTB confirmed everything it handled


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_retry_after_is_seen_by_ptb(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    telegram.fail_next("sendMessage", status=429, retry_after=3)

    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "hello")
    assert _seconds(caught.value.retry_after) == 3
    assert telegram.sent_messages(USER) == []
    await bot.send_message(USER, "hello")  # only the next call failed
    assert len(telegram.sent_messages(USER)) == 1
    assert len(telegram.calls_to("sendMessage")) == 2


async def test_server_errors_and_blocked_user(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    telegram.fail_next("sendMessage", status=500)
    with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
        await bot.send_message(USER, "a")
    telegram.fail_next("*", status=502)  # nginx's HTML page, as api.telegram.org sends it
    with pytest.raises(NetworkError, match=r"(?i)Bad Gateway"):
        await bot.send_chat_action(USER, "typing")
    telegram.block(USER)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(USER, "a")


async def test_raw_wire_format(telegram: TelegramBotAPI) -> None:
    root = f"{telegram.base_url}{telegram.token}"
    async with httpx.AsyncClient() as client:
        unknown = await client.post(f"{root}/fooBar")
        assert unknown.status_code == 404
        assert unknown.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found: method not found",
        }

        me = await client.get(f"{root}/getme")  # GET and any case, as on Telegram
        assert me.json()["ok"] is True and me.json()["result"]["username"] == BOT_USERNAME

        markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        sent = await client.post(
            f"{root}/sendMessage", json={"chat_id": USER, "text": "123", "reply_markup": markup}
        )
        result = sent.json()["result"]
        assert result["text"] == "123" and result["reply_markup"] == markup
        assert {"message_id", "date", "chat", "from"} <= set(result)

        wrong = await client.post(f"{telegram.base_url}1:wrong/getMe")
        assert wrong.status_code == 401 and wrong.json()["description"] == "Unauthorized"


async def test_unknown_method_and_wrong_token_through_ptb(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("fooBar")
    with pytest.raises(InvalidToken):
        await PTBBot("1:wrong-token", base_url=telegram.base_url).get_me()


async def test_callback_query_answer_and_edits(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    sent = await bot.send_message(USER, "Ready?", reply_markup=markup)
    telegram.push_callback(USER, "yes", sent.message_id)

    [update] = await bot.get_updates(timeout=0)
    query = update.callback_query
    assert query.data == "yes" and query.message.message_id == sent.message_id
    assert query.message.reply_markup == markup
    assert await query.answer("Noted") is True
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer()

    edited = await bot.edit_message_text("Done", chat_id=USER, message_id=sent.message_id)
    assert isinstance(edited, Message) and edited.text == "Done" and edited.reply_markup is None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Done", chat_id=USER, message_id=sent.message_id)
    again = await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id, reply_markup=markup)
    assert isinstance(again, Message) and again.reply_markup == markup
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)


async def test_pushed_update_kinds_parse_in_ptb(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    telegram.push_message(USER, photo=photo_content(), caption="my permit")
    telegram.push_message(USER, voice=voice_content())
    telegram.push_message(USER, location=location_content(59.43, 24.75))
    telegram.push_message(USER, sticker=sticker_content())
    telegram.push_message(USER, document=document_content("cv.pdf"))
    telegram.push_message(USER, contact=contact_content(user_id=USER))
    original = telegram.push_text(USER, "helo")
    telegram.push_message(USER, edited=True, message_id=original["message"]["message_id"], text="hello")
    telegram.push_text(-1001234567890, "hi all", user_id=USER, title="Volunteers")
    telegram.push_update(
        {
            "my_chat_member": {
                "chat": {"id": USER, "type": "private", "first_name": "Test"},
                "from": {"id": USER, "is_bot": False, "first_name": "Test"},
                "date": int(time.time()),
                "old_chat_member": {"status": "member", "user": telegram.bot_user},
                "new_chat_member": {"status": "kicked", "user": telegram.bot_user, "until_date": 0},
            }
        }
    )

    updates = await bot.get_updates(timeout=0)

    assert [u.update_id for u in updates] == sorted(u.update_id for u in updates)
    photo, voice, location, sticker, document, contact, text, edited, group, member = updates
    assert photo.message.photo[-1].width == 1280 and photo.message.caption == "my permit"
    assert voice.message.voice.mime_type == "audio/ogg"
    assert location.message.location.latitude == pytest.approx(59.43)
    assert sticker.message.sticker.emoji == "👍"
    assert document.message.document.file_name == "cv.pdf"
    assert contact.message.contact.user_id == USER
    assert edited.edited_message.text == "hello"
    assert edited.edited_message.message_id == text.message.message_id
    assert group.effective_chat.type == "supergroup" and group.effective_chat.title == "Volunteers"
    assert group.effective_user.id == USER
    assert member.my_chat_member.new_chat_member.status == "kicked"


async def test_webhook_mode(telegram: TelegramBotAPI, bot: PTBBot, receiver: Receiver) -> None:
    assert await bot.set_webhook(receiver.url, secret_token="s3cret-token") is True
    info = await bot.get_webhook_info()
    assert info.url == receiver.url
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await bot.get_updates(timeout=0)

    update = telegram.text_update(USER, "via webhook")
    response = await telegram.post_webhook(receiver.url, update)

    assert response.status_code == 200
    headers, body = receiver.requests[0]
    assert headers["x-telegram-bot-api-secret-token"] == "s3cret-token"
    assert headers["content-type"] == "application/json"
    assert Update.de_json(json.loads(body), bot).message.text == "via webhook"
    assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).url == ""


async def test_uploads_and_file_download(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    content = b"%PDF-1.4 guichet guide"
    message = await bot.send_document(
        USER, document=content, filename="guide.pdf", caption="<i>Guide</i>", parse_mode="HTML"
    )
    assert message.document.file_name == "guide.pdf" and message.caption == "Guide"
    upload = telegram.calls_to("sendDocument")[0]["document"]
    assert upload["content"] == content and upload["filename"] == "guide.pdf"

    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == content

    photo = await bot.send_photo(USER, photo=b"\x89PNG fake", caption="map")
    assert photo.photo[-1].file_id and photo.caption == "map"
    resent = await bot.send_document(USER, document=message.document.file_id)
    assert resent.document.file_id == message.document.file_id


async def test_forum_topics_chat_actions_location_and_chats(telegram: TelegramBotAPI, bot: PTBBot) -> None:
    group = -1009876543210
    telegram.push_text(group, "hello", user_id=USER, title="Guichet staff")
    with pytest.raises(BadRequest, match=r"(?i)not a forum"):
        await bot.create_forum_topic(group, "Ticket")

    forum = -1001111111111
    topic = await bot.create_forum_topic(forum, "Ticket 42: Amina")
    assert isinstance(topic, ForumTopic) and topic.name == "Ticket 42: Amina"
    in_topic = await bot.send_message(forum, "New conversation", message_thread_id=topic.message_thread_id)
    assert in_topic.is_topic_message and in_topic.message_thread_id == topic.message_thread_id
    assert await bot.close_forum_topic(forum, topic.message_thread_id) is True
    with pytest.raises(BadRequest, match=r"(?i)TOPIC_CLOSED"):
        await bot.send_message(forum, "late", message_thread_id=topic.message_thread_id)
    with pytest.raises(BadRequest, match=r"(?i)TOPIC_ID_INVALID"):
        await bot.close_forum_topic(forum, 9999)

    assert await bot.send_chat_action(USER, "typing") is True
    with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
        await bot.send_chat_action(USER, "dancing")
    located = await bot.send_location(USER, latitude=59.4427, longitude=24.7363)
    assert located.location.longitude == pytest.approx(24.7363)

    chat = await bot.get_chat(group)
    assert isinstance(chat, ChatFullInfo) and chat.title == "Guichet staff"
    assert await bot.leave_chat(group) is True
    with pytest.raises(Forbidden):
        await bot.send_message(group, "still here?")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.get_chat(group)


# ------------------------------------------------------------------------------------------
# WhatsApp (Graph API)
# ------------------------------------------------------------------------------------------

WA_USER = "33612345678"


def _auth(token: str = DEFAULT_ACCESS_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _text(to: str = WA_USER, body: str = "Bonjour") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


def _buttons(*titles: str) -> dict[str, Any]:
    buttons = [{"type": "reply", "reply": {"id": f"b{i}", "title": t}} for i, t in enumerate(titles)]
    return {
        "messaging_product": "whatsapp",
        "to": WA_USER,
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "Choose"}, "action": {"buttons": buttons}},
    }


def _list(rows: int, title: str = "Row", sections: int = 1) -> dict[str, Any]:
    section_list = [
        {
            "title": f"S{s}",
            "rows": [{"id": f"r{s}-{i}", "title": title, "description": "d"} for i in range(rows)],
        }
        for s in range(sections)
    ]
    return {
        "messaging_product": "whatsapp",
        "to": WA_USER,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Topics"},
            "action": {"button": "See topics", "sections": section_list},
        },
    }


async def test_graph_text_message_success(graph: GraphAPI) -> None:
    async with httpx.AsyncClient(base_url=graph.base_url) as client:
        first = await client.post(f"/v21.0/{DEFAULT_PHONE_NUMBER_ID}/messages", json=_text(), headers=_auth())
        second = await client.post(
            graph.messages_url("v19.0"), json=_text("+33 6 12-34-56-78"), headers=_auth()
        )

    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"messaging_product", "contacts", "messages"}
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": WA_USER, "wa_id": WA_USER}]
    assert body["messages"][0]["id"].startswith("wamid.")
    assert second.json()["contacts"] == [{"input": "+33 6 12-34-56-78", "wa_id": WA_USER}]
    assert second.json()["messages"][0]["id"] != body["messages"][0]["id"]
    assert graph.sent == [_text(), _text("+33 6 12-34-56-78")]
    assert len(graph.sent_to("+33612345678")) == 2
    assert graph.texts_to(WA_USER) == ["Bonjour", "Bonjour"]


async def test_graph_rejects_a_wrong_token(graph: GraphAPI) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(graph.messages_url(), json=_text(), headers=_auth("EAAwrong"))
        missing = await client.post(graph.messages_url(), json=_text())
    assert response.status_code == 401 and missing.status_code == 401
    error = response.json()["error"]
    assert error["code"] == 190 and error["type"] == "OAuthException"
    assert error["message"].startswith("Invalid OAuth access token") and error["fbtrace_id"]
    assert graph.sent == []


@pytest.mark.parametrize(
    ("payload", "code", "needle"),
    [
        (_buttons("A" * 21), 131009, "Button title length invalid"),
        (_buttons("A", "B", "C", "D"), 131009, "Max allowed buttons: 3"),
        (_buttons("Same", "Same"), 131009, "unique"),
        (_list(11), 131009, "Total row count"),
        (_list(6, sections=2), 131009, "Total row count"),
        (_list(2, title="T" * 25), 131009, "Row title length invalid"),
        (_text(body="x" * 4097), 100, "at most 4096"),
        (
            {k: v for k, v in _text().items() if k != "messaging_product"},
            100,
            "messaging_product is required",
        ),
        ({**_text(), "messaging_product": "sms"}, 100, "messaging_product must be one of"),
        ({**_text(), "type": "poll"}, 100, "Param type must be one of"),
        ({k: v for k, v in _text().items() if k != "to"}, 100, "to is required"),
        ({**_text(), "type": "template", "template": {"name": "hello"}}, 100, "language"),
    ],
)
async def test_graph_validates_like_the_real_api(
    graph: GraphAPI, payload: dict[str, Any], code: int, needle: str
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(graph.messages_url(), json=payload, headers=_auth())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert needle in error["message"] + error.get("error_data", {}).get("details", "")
    assert graph.sent == [] and graph.requests[-1]["status"] == 400


async def test_graph_accepts_valid_interactive_and_template(graph: GraphAPI) -> None:
    template = {
        "messaging_product": "whatsapp",
        "to": WA_USER,
        "type": "template",
        "template": {"name": "welcome", "language": {"code": "fr"}},
    }
    async with httpx.AsyncClient() as client:
        for payload in (_buttons("Housing", "Language courses", "Health"), _list(10), template):
            response = await client.post(graph.messages_url(), json=payload, headers=_auth())
            assert response.status_code == 200, response.text
        wrong_number = await client.post(
            graph.messages_url().replace(DEFAULT_PHONE_NUMBER_ID, "999"), json=_text(), headers=_auth()
        )
        read = await client.post(
            graph.messages_url(),
            json={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC="},
            headers=_auth(),
        )
    assert response.json()["messages"][0]["message_status"] == "accepted"
    assert len(graph.sent) == 3
    assert wrong_number.status_code == 400 and wrong_number.json()["error"]["error_subcode"] == 33
    assert read.json() == {"success": True} and len(graph.read_receipts) == 1


async def test_graph_injected_failures(graph: GraphAPI) -> None:
    graph.fail_next(1, status=429)
    graph.fail_next(1, code=131056)
    graph.fail_next(1, status=500)
    graph.fail_next(1, code=131047, to="+32470000000")
    async with httpx.AsyncClient() as client:
        throttled = await client.post(graph.messages_url(), json=_text(), headers=_auth())
        pair = await client.post(graph.messages_url(), json=_text(), headers=_auth())
        broken = await client.post(graph.messages_url(), json=_text(), headers=_auth())
        other = await client.post(graph.messages_url(), json=_text(), headers=_auth())
        reengage = await client.post(graph.messages_url(), json=_text("32470000000"), headers=_auth())

    assert throttled.status_code == 429
    error = throttled.json()["error"]
    assert (error["code"], error["message"], error["type"]) == (
        130429,
        "(#130429) Rate limit hit",
        "OAuthException",
    )
    assert error["error_data"] == {
        "messaging_product": "whatsapp",
        "details": "Cloud API message throughput has been reached.",
    }
    assert pair.status_code == 400 and pair.json()["error"]["code"] == 131056
    assert broken.status_code == 500 and broken.json()["error"]["code"] == 131000
    assert other.status_code == 200
    assert reengage.status_code == 400 and reengage.json()["error"]["code"] == 131047
    assert graph.sent == [_text()]


async def test_graph_wait_for(graph: GraphAPI) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as client:
            await client.post(graph.messages_url(), json=_text(body="late"), headers=_auth())

    task = asyncio.create_task(send_later())
    [body] = await graph.wait_for(1, to=WA_USER, timeout=5)
    await task
    assert body["text"]["body"] == "late"
    with pytest.raises(AssertionError, match="expected 2"):
        await graph.wait_for(2, timeout=0.1)


# ------------------------------------------------------------------------------------------
# WhatsApp webhook payloads
# ------------------------------------------------------------------------------------------


def _value(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["object"] == "whatsapp_business_account"
    [entry] = payload["entry"]
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert set(value["metadata"]) == {"display_phone_number", "phone_number_id"}
    return value


def test_text_message_payload_shape() -> None:
    payload = text_message_payload(WA_USER, "Bonjour", msg_id="wamid.X", name="Amina")
    value = _value(payload)
    assert value["metadata"]["phone_number_id"] == DEFAULT_PHONE_NUMBER_ID
    assert value["contacts"] == [{"profile": {"name": "Amina"}, "wa_id": WA_USER}]
    [message] = value["messages"]
    assert message["from"] == WA_USER and message["id"] == "wamid.X" and message["type"] == "text"
    assert message["text"] == {"body": "Bonjour"}
    assert isinstance(message["timestamp"], str) and message["timestamp"].isdigit()
    assert (
        text_message_payload(WA_USER, "a")["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        != (text_message_payload(WA_USER, "a")["entry"][0]["changes"][0]["value"]["messages"][0]["id"])
    )


def test_interactive_reply_payload_shape() -> None:
    button = _value(interactive_reply_payload(WA_USER, "housing", "Housing", context_id="wamid.SENT"))[
        "messages"
    ][0]
    assert button["type"] == "interactive"
    assert button["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "housing", "title": "Housing"},
    }
    assert button["context"]["id"] == "wamid.SENT"
    row = _value(interactive_reply_payload(WA_USER, "r1", "Row", kind="list_reply", description="d"))[
        "messages"
    ][0]
    assert row["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "r1", "title": "Row", "description": "d"},
    }
    assert row["context"]["id"].startswith("wamid.")


@pytest.mark.parametrize(
    ("kind", "message_type", "field"),
    [
        ("image", "image", "image"),
        ("audio", "audio", "audio"),
        ("voice", "audio", "audio"),
        ("video", "video", "video"),
        ("document", "document", "document"),
        ("sticker", "sticker", "sticker"),
        ("location", "location", "location"),
        ("contacts", "contacts", "contacts"),
        ("reaction", "reaction", "reaction"),
        ("unsupported", "unsupported", "unsupported"),
    ],
)
def test_media_message_payload_shapes(kind: str, message_type: str, field: str) -> None:
    [message] = _value(media_message_payload(WA_USER, kind))["messages"]
    assert message["type"] == message_type and field in message
    if message_type in ("image", "audio", "video", "document", "sticker"):
        assert {"id", "mime_type", "sha256"} <= set(message[field])
    if kind == "voice":
        assert message["audio"]["voice"] is True
    if kind == "reaction":
        assert message["reaction"]["message_id"].startswith("wamid.")
    if kind == "unsupported":
        assert message["errors"][0]["code"] == 131051


def test_status_payload_shapes() -> None:
    [sent] = _value(status_payload("wamid.A", "sent", WA_USER))["statuses"]
    assert (sent["id"], sent["status"], sent["recipient_id"]) == ("wamid.A", "sent", WA_USER)
    assert sent["conversation"]["origin"]["type"] == "service" and "pricing" in sent
    [failed] = _value(status_payload("wamid.A", "failed", error_code=131047))["statuses"]
    assert failed["errors"][0]["code"] == 131047 and failed["errors"][0]["title"] == "Re-engagement message"
    [read] = _value(status_payload("wamid.A", "read"))["statuses"]
    assert "conversation" not in read


def test_sign_matches_an_independent_hmac() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    expected = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert sign(body, "app-secret") == f"sha256={expected}"


async def test_deliver_webhook_bytes_and_signature(receiver: Receiver) -> None:
    payload = text_message_payload(WA_USER, "Je cherche un logement à Tallinn / Harju")
    response = await deliver_webhook(receiver.url, payload, DEFAULT_APP_SECRET)

    assert response.status_code == 200
    headers, raw = receiver.requests[0]
    assert raw == encode_webhook_body(payload)
    assert b"\\u00e0" in raw and b"\\/" in raw  # escaped like Meta: verify on raw bytes only
    assert json.loads(raw) == payload
    digest = hmac.new(DEFAULT_APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-hub-signature-256"], f"sha256={digest}")
    reserialized = json.dumps(payload).encode()
    assert sign(reserialized, DEFAULT_APP_SECRET) != headers["x-hub-signature-256"]
