"""Telegram, through python-telegram-bot: updates in by long polling or webhook, answers out by the Bot API.

Updates are translated into :class:`~bot.messages.IncomingMessage` and handed to the dispatcher,
which stores them before anything else happens. We poll ``getUpdates`` ourselves rather than
through PTB's ``Updater``: the offset moves past an update only once the dispatcher has stored it,
so an update that arrives while storage is down is fetched again instead of being lost.

Sending keeps each chat's messages in order and one second apart (Telegram's limit per chat); the
overall limit of 30 messages a second and flood-control answers (429 ``retry_after``) are handled
by PTB's ``AIORateLimiter``; network errors are retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import AIORateLimiter, ExtBot
from telegram.warnings import PTBDeprecationWarning

from bot.channels.telegram_render import CallbackData, LocationRequest, TelegramMessage, render
from bot.i18n import N_
from bot.messages import (
    FORGET_CANCEL,
    FORGET_CONFIRM,
    HUMAN_PAYLOAD,
    INTENT_PAYLOAD,
    LANGUAGE_PAYLOAD,
    IncomingMessage,
    Kind,
    Location,
    OutgoingMessage,
)
from bot.storage import StorageUnavailable

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

CHANNEL = "telegram"
DEFAULT_API_URL = "https://api.telegram.org/bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
# The commands of the menu, with their descriptions (translated in the Babel catalogs).
COMMANDS = {
    "start": N_("What I can help with"),
    "help": N_("How to use this bot"),
    "language": N_("Change the language"),
    "human": N_("Talk to a person"),
    "forget": N_("Delete my data"),
}
POLL_TIMEOUT_SECONDS = 30
PER_CHAT_INTERVAL_SECONDS = 1.0
OVERALL_MESSAGES_PER_SECOND = 30
GROUP_MESSAGES_PER_MINUTE = 20
_RATE_LIMIT_RETRIES = 5
_SEND_ATTEMPTS = 8
_MAX_BACKOFF_SECONDS = 30.0
_MAX_UPDATE_BYTES = 1_000_000


class TelegramEnvironment(BaseSettings):
    """The ``GUICHET_TELEGRAM_*`` environment variables (README, "Telegram")."""

    model_config = SettingsConfigDict(env_prefix="GUICHET_TELEGRAM_", extra="ignore")

    token: str = ""
    api_url: str = ""  # python-telegram-bot's base_url, e.g. http://127.0.0.1:8081/bot
    webhook_url: str = ""
    webhook_secret: str = ""

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: str) -> str:
        # Telegram's own rule for secret_token: 1-256 characters A-Z, a-z, 0-9, _ and -.
        if value and not (len(value) <= 256 and value.replace("_", "").replace("-", "").isalnum()):
            raise ValueError("GUICHET_TELEGRAM_WEBHOOK_SECRET: use 1-256 characters A-Z a-z 0-9 _ -")
        return value


class _UpdateEnvelope(BaseModel):
    """What a webhook body must at least be before PTB parses the rest."""

    model_config = ConfigDict(extra="allow")
    update_id: int = Field(ge=0)


class TelegramChannel:
    """The Telegram bot of the guichet (a ``bot.channels.base.Channel``)."""

    name = CHANNEL
    reply_window: dt.timedelta | None = None

    def __init__(
        self,
        runtime: Runtime,
        token: str,
        *,
        api_url: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
        per_chat_interval: float = PER_CHAT_INTERVAL_SECONDS,
    ) -> None:
        if webhook_url and not webhook_secret:
            raise ValueError("a Telegram webhook needs a secret token (GUICHET_TELEGRAM_WEBHOOK_SECRET)")
        self.runtime = runtime
        self.bot = _build_bot(token, api_url)
        self.webhook_url = webhook_url
        self.ready = asyncio.Event()  # set once the bot is known to Telegram and receiving
        self._secret = (webhook_secret or "").encode()
        self._poll_timeout = poll_timeout
        self._groups = runtime.config.telegram.groups
        self._lanes = _ChatLanes(per_chat_interval)
        self._callback_data = CallbackData(_known_payloads(runtime))
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._offset: int | None = None

    @classmethod
    def from_environment(cls, runtime: Runtime) -> TelegramChannel | None:
        """The channel when ``GUICHET_TELEGRAM_TOKEN`` is set, else None."""
        environment = TelegramEnvironment()
        if not environment.token:
            return None
        return cls(
            runtime,
            environment.token,
            api_url=environment.api_url or None,
            webhook_url=environment.webhook_url or None,
            webhook_secret=environment.webhook_secret or None,
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background: the server starts even while Telegram is unreachable."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="telegram")

    async def stop(self) -> None:
        """Stop receiving, let the replies being computed go out, then disconnect."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.runtime.dispatcher.idle()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.ready.is_set() and self.webhook_url is None and self._offset is not None:
            # Confirm the updates already stored, so that a restart does not fetch them again.
            with contextlib.suppress(TelegramError):
                await self.bot.get_updates(offset=self._offset, timeout=0, limit=1)
        with contextlib.suppress(TelegramError):
            await self.bot.shutdown()
        self.ready.clear()

    async def _run(self) -> None:
        try:
            await self._connect()
            if self.webhook_url is None:
                await self._poll()
        except InvalidToken:
            log.error("Telegram rejected GUICHET_TELEGRAM_TOKEN; the Telegram channel is not running")
        except TelegramError as exc:  # e.g. a webhook URL Telegram refuses
            log.error("Telegram refused to start the channel: %s", exc.message)

    async def _connect(self) -> None:
        """Identify the bot, choose webhook or polling, register the commands; retried until it works."""
        failures = 0
        while True:
            try:
                await self.bot.initialize()
                if self.webhook_url:
                    await self.bot.set_webhook(
                        self.webhook_url,
                        secret_token=self._secret.decode(),
                        allowed_updates=ALLOWED_UPDATES,
                    )
                else:
                    await self.bot.delete_webhook()
                break
            except (NetworkError, RetryAfter) as exc:
                failures += 1
                log.warning("cannot reach Telegram (%s); retrying", type(exc).__name__)
                await asyncio.sleep(_backoff(failures))
        self.ready.set()
        log.info(
            "Telegram bot @%s connected (%s)", self.bot.username, "webhook" if self.webhook_url else "polling"
        )
        await self._register_commands()

    async def _register_commands(self) -> None:
        """The command menu in each content language, plus a default for every other language."""
        catalogs = self.runtime.engine.catalogs
        content = self.runtime.config.languages.content
        default = "en" if "en" in content else content[0]
        for lang in (None, *content):
            commands = [
                BotCommand(command, catalogs.gettext(lang or default, description))
                for command, description in COMMANDS.items()
            ]
            try:
                await self.bot.set_my_commands(commands, language_code=lang)
            except TelegramError as exc:
                log.warning("setMyCommands (%s) failed: %s", lang or "default", type(exc).__name__)

    # -- receiving --------------------------------------------------------------------------

    async def _poll(self) -> None:
        failures = 0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset, timeout=self._poll_timeout, allowed_updates=ALLOWED_UPDATES
                )
            except (NetworkError, Conflict, RetryAfter) as exc:
                failures += 1
                log.warning("getUpdates failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(_backoff(failures))
                continue
            failures = 0
            for update in updates:
                await self._store(update)
                self._offset = update.update_id + 1

    async def _store(self, update: Update) -> None:
        """Hand ``update`` to the dispatcher, waiting for storage to come back if it is down."""
        failures = 0
        while True:
            try:
                await self.handle_update(update)
                return
            except StorageUnavailable:
                failures += 1
                log.warning("storage unavailable; Telegram update %d kept for later", update.update_id)
                await asyncio.sleep(_backoff(failures))
            except Exception:
                # A bug in handling one update must not stop the bot for everyone.
                log.exception("Telegram update %d could not be handled; skipped", update.update_id)
                return

    async def handle_update(self, update: Update) -> None:
        """Translate ``update`` and accept it (raises StorageUnavailable when it cannot be stored)."""
        chat = update.effective_chat
        if chat is None or chat.type == ChatType.CHANNEL:
            return
        if chat.type in (ChatType.GROUP, ChatType.SUPERGROUP) and self._groups == "leave":
            self._in_background(self._leave(update, chat.id))
            return
        if update.callback_query:
            self._in_background(self._answer_callback(update.callback_query))
        message = self.incoming(update)
        if message is None:
            return
        log.debug("Telegram update %d: %s", update.update_id, message.kind.value)
        await self.runtime.dispatcher.accept(message)

    def incoming(self, update: Update) -> IncomingMessage | None:
        """``update`` as our message; None for what the bot does not answer."""
        message_id = str(update.update_id)
        if (query := update.callback_query) is not None:
            chat_id = query.message.chat.id if query.message else query.from_user.id
            payload = self._callback_data.decode(query.data or "")
            return IncomingMessage(
                CHANNEL,
                str(chat_id),
                Kind.BUTTON,
                text=_button_label(query),
                payload=payload,
                message_id=message_id,
                language_hint=query.from_user.language_code,
            )
        edited = update.edited_message is not None
        message = update.edited_message or update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return None
        group = message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
        if group and not self._addressed(message):
            return None
        base: dict[str, Any] = {
            "channel": CHANNEL,
            "user_id": str(message.chat.id),
            "message_id": message_id,
            "language_hint": message.from_user.language_code,
        }
        if edited:
            return IncomingMessage(kind=Kind.EDITED, text=message.text or message.caption or "", **base)
        if message.text:
            command = self._command(message)
            if command is not None:
                return IncomingMessage(kind=Kind.COMMAND, payload=command, **base)
            return IncomingMessage(kind=Kind.TEXT, text=self._without_mention(message.text), **base)
        if message.location:
            where = Location(message.location.latitude, message.location.longitude)
            return IncomingMessage(kind=Kind.LOCATION, location=where, **base)
        return IncomingMessage(kind=_media_kind(message), **base)

    def _command(self, message: Message) -> str | None:
        """``start`` for "/start" or "/start@thisbot"; None for text, or a command for another bot."""
        entities = message.entities
        if not entities or entities[0].type != MessageEntity.BOT_COMMAND or entities[0].offset != 0:
            return None
        name, _, target = message.parse_entity(entities[0])[1:].partition("@")
        if target and target.lower() != (self.bot.username or "").lower():
            return None
        return name.lower()

    def _addressed(self, message: Message) -> bool:
        """In a group: a command, a mention of the bot, or a reply to one of its messages."""
        if self._command(message) is not None:
            return True
        replied = message.reply_to_message
        if replied and replied.from_user and replied.from_user.id == self.bot.id:
            return True
        mention = f"@{self.bot.username}".lower()
        return any(
            (entity.type == MessageEntity.MENTION and text.lower() == mention)
            or (entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == self.bot.id)
            for entity, text in message.parse_entities().items()
        )

    def _without_mention(self, text: str) -> str:
        if not self.bot.username:
            return text
        mention = f"@{self.bot.username}"
        start = text.lower().find(mention.lower())
        if start < 0:
            return text
        return (text[:start] + text[start + len(mention) :]).strip() or text

    async def _answer_callback(self, query: CallbackQuery) -> None:
        """Stop the button's spinner on the user's phone; the answer itself comes as a message."""
        try:
            await query.answer()
        except TelegramError as exc:
            log.info("answerCallbackQuery failed: %s", type(exc).__name__)

    async def _leave(self, update: Update, chat_id: int) -> None:
        member = update.my_chat_member
        if member and member.new_chat_member.status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
            return
        try:
            await self.bot.leave_chat(chat_id)
            log.info("left group chat %d (telegram.groups: leave)", chat_id)
        except TelegramError as exc:
            log.info("leaving group chat %d failed: %s", chat_id, type(exc).__name__)

    def _in_background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- webhook ----------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        if not self.webhook_url:
            return []
        path = urlsplit(self.webhook_url).path or "/"
        return [Route(path, self._webhook, methods=["POST"], name="telegram_webhook")]

    async def _webhook(self, request: Request) -> Response:
        """One update from Telegram: 200 once stored, 503 to make Telegram deliver it again later."""
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), self._secret):
            log.warning("Telegram webhook call without the right secret token refused")
            return Response(status_code=403)
        if not self.ready.is_set():
            return Response(status_code=503)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_UPDATE_BYTES:
                log.warning("Telegram webhook body over %d bytes refused", _MAX_UPDATE_BYTES)
                return Response(status_code=413)
        try:
            envelope = _UpdateEnvelope.model_validate_json(body)
            update = Update.de_json(envelope.model_dump(), self.bot)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # pydantic's ValidationError is a ValueError; PTB raises any of these on fields of the wrong shape.
            log.warning("malformed Telegram update refused (%s, %d bytes)", type(exc).__name__, len(body))
            return Response(status_code=400)
        try:
            await self.handle_update(update)
        except StorageUnavailable:
            log.warning("storage unavailable; Telegram update %d refused with 503", update.update_id)
            return Response(status_code=503)
        return Response(status_code=200)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, address: str, messages: Sequence[OutgoingMessage]) -> None:
        """Send in order, one second apart in this chat; long answers are split into several messages."""
        if self._task is None:
            raise RuntimeError("the Telegram channel is not running")
        chat_id = int(address)
        location = (
            await self._location_request(address) if any(m.request_location for m in messages) else None
        )
        parts = [part for message in messages for part in render(message, self._callback_data, location)]
        async with self._lanes.lane(chat_id) as lane:
            for part in parts:
                await lane.wait_turn()
                chat_id = await self._deliver(chat_id, part)
                lane.sent()

    async def send_template(self, address: str, lang: str) -> bool:
        """Telegram has no reply window, so there is never a template to send."""
        return False

    async def _deliver(self, chat_id: int, part: TelegramMessage) -> int:
        """Send one part, retrying what can succeed later; returns the chat id (groups may migrate)."""
        for attempt in range(1, _SEND_ATTEMPTS + 1):
            try:
                await self.bot.send_message(
                    chat_id,
                    part.html,
                    parse_mode=ParseMode.HTML,
                    reply_markup=part.reply_markup,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                return chat_id
            except RetryAfter as exc:
                # The rate limiter already waited and retried; keep honouring Telegram's delay.
                await asyncio.sleep(_retry_after_seconds(exc))
            except ChatMigrated as exc:
                chat_id = exc.new_chat_id
            except Forbidden as exc:
                log.info("Telegram chat %d cannot receive messages (%s)", chat_id, type(exc).__name__)
                return chat_id
            except BadRequest as exc:
                log.error("Telegram refused a message to chat %d: %s", chat_id, exc.message)
                return chat_id
            except NetworkError as exc:
                if attempt == _SEND_ATTEMPTS:
                    raise
                log.warning(
                    "sending to Telegram failed (%s, attempt %d); retrying", type(exc).__name__, attempt
                )
                await asyncio.sleep(_backoff(attempt))
        raise RuntimeError(f"Telegram kept refusing to deliver to chat {chat_id}")

    async def _location_request(self, address: str) -> LocationRequest:
        engine = self.runtime.engine
        conversation = await self.runtime.storage.get(engine.key_for(CHANNEL, address))
        content = self.runtime.config.languages.content
        lang = (
            conversation.lang
            if conversation and conversation.lang
            else ("en" if "en" in content else content[0])
        )
        return LocationRequest(
            label=engine.catalogs.gettext(lang, "Share my location"),
            prompt=engine.catalogs.gettext(lang, "Tap the button below to share your location."),
        )


class _Lane:
    """One chat's turn: its sends in order, ``interval`` seconds apart."""

    def __init__(self, interval: float) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.last = -interval
        self._interval = interval

    async def wait_turn(self) -> None:
        delay = self.last + self._interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def sent(self) -> None:
        self.last = time.monotonic()


class _ChatLanes:
    """The lanes of the chats being written to; a lane is forgotten once idle for ``interval``."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lanes: dict[int, _Lane] = {}

    @contextlib.asynccontextmanager
    async def lane(self, chat_id: int) -> AsyncIterator[_Lane]:
        lane = self._lanes.setdefault(chat_id, _Lane(self._interval))
        lane.users += 1
        try:
            async with lane.lock:
                yield lane
        finally:
            lane.users -= 1
            asyncio.get_running_loop().call_later(self._interval, self._forget, chat_id, lane)

    def _forget(self, chat_id: int, lane: _Lane) -> None:
        if lane.users == 0 and self._lanes.get(chat_id) is lane:
            del self._lanes[chat_id]


def _build_bot(token: str, api_url: str | None) -> ExtBot[Any]:
    base_url = (api_url or DEFAULT_API_URL).rstrip("/")
    # The Bot API serves files next to the methods: .../bot -> .../file/bot.
    root, _, last = base_url.rpartition("/")
    limiter = AIORateLimiter(
        overall_max_rate=OVERALL_MESSAGES_PER_SECOND,
        overall_time_period=1,
        group_max_rate=GROUP_MESSAGES_PER_MINUTE,
        group_time_period=60,
        max_retries=_RATE_LIMIT_RETRIES,
    )
    return ExtBot(token, base_url=base_url, base_file_url=f"{root}/file/{last}", rate_limiter=limiter)


def _known_payloads(runtime: Runtime) -> list[str]:
    """Every payload the engine can put on a button, so long ones decode the same on every worker."""
    intents = [INTENT_PAYLOAD + intent for intent in runtime.engine.answers.intents]
    languages = [LANGUAGE_PAYLOAD + lang for lang in runtime.config.languages.content]
    return [*intents, *languages, HUMAN_PAYLOAD, FORGET_CONFIRM, FORGET_CANCEL]


def _button_label(query: CallbackQuery) -> str:
    """The label of the pressed button, for the transcript staff read."""
    message = query.message
    markup = message.reply_markup if isinstance(message, Message) else None
    if isinstance(markup, InlineKeyboardMarkup):
        for row in markup.inline_keyboard:
            for button in row:
                if button.callback_data == query.data:
                    return button.text
    return ""


def _media_kind(message: Message) -> Kind:
    if message.photo:
        return Kind.IMAGE
    if message.voice or message.audio or message.video_note:
        return Kind.AUDIO
    if message.document:
        return Kind.DOCUMENT
    if message.sticker:
        return Kind.STICKER
    if message.contact:
        return Kind.CONTACT
    return Kind.UNSUPPORTED


def _backoff(failures: int) -> float:
    return float(min(_MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1)))


def _retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)  # int today, timedelta in PTB 23
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
