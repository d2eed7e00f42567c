"""The staff Telegram group: every handoff also becomes a topic of a staff supergroup.

The first post of a topic is the summary and the transcript; what the user writes next, and
what staff do in the console, is mirrored there. A staff message in the topic is sent to the
user (through :class:`~bot.handoff.HandoffService`, so the console's rules hold: one holder at a
time, WhatsApp's window, order); ``/claim``, ``/note TEXT`` and ``/close`` work as the console's
buttons. The group needs its own bot (a second BotFather token) that is an admin of the group
with the right to manage topics, so it reads every message and can open and close topics.

Topics of a user who used /forget, or whose data expired, are deleted.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Sequence

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.config import Config
from bot.conversation import Conversation, Role, Turn
from bot.events import Event, EventKind
from bot.handoff import HandoffError, HandoffService, Staff
from bot.i18n import language_name
from bot.staff.records import Records, records_for
from bot.staff.views import REASONS, clock, topic_name

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096
TOPIC_NAME_LIMIT = 128
_SWEEP_EVERY_SECONDS = 3600.0
_ATTEMPTS = 4
# Set while a staff message from the group is being relayed, so it is not mirrored back.
_relaying: contextvars.ContextVar[bool] = contextvars.ContextVar("relaying", default=False)


class TelegramStaffGroup:
    """Mirrors handed-off conversations into forum topics and relays staff answers back."""

    def __init__(
        self,
        service: HandoffService,
        *,
        chat_id: int,
        token: str,
        topics: Records,
        base_url: str = "https://api.telegram.org/bot",
    ) -> None:
        self.service = service
        self.chat_id = chat_id
        self.topics = topics
        self.application = (
            Application.builder()
            .token(token)
            .base_url(base_url)
            .rate_limiter(AIORateLimiter(max_retries=3))
            .build()
        )
        in_group = filters.Chat(chat_id) & filters.IS_TOPIC_MESSAGE
        self.application.add_handler(CommandHandler("close", self._on_close, filters=in_group))
        self.application.add_handler(CommandHandler("claim", self._on_claim, filters=in_group))
        self.application.add_handler(CommandHandler("note", self._on_note, filters=in_group))
        self.application.add_handler(
            MessageHandler(in_group & filters.TEXT & ~filters.COMMAND, self._on_text)
        )
        self.application.add_handler(
            MessageHandler(in_group & ~filters.TEXT & ~filters.StatusUpdate.ALL, self._on_other)
        )
        self.application.add_error_handler(self._on_error)
        self._outbox: asyncio.Queue[tuple[Event, Conversation | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(cls, service: HandoffService, config: Config) -> TelegramStaffGroup | None:
        """The relay when ``handoff.telegram_group`` has a chat id and a token, else None."""
        group = config.handoff.telegram_group
        if group.chat_id is None or not group.token:
            return None
        topics = records_for(config.storage.url, config.handoff.staff_dir, "telegram_topics")
        return cls(service, chat_id=group.chat_id, token=group.token, topics=topics, base_url=group.base_url)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.service.events.subscribe(self._on_event)
        await self.application.initialize()
        await self.application.start()
        assert self.application.updater is not None
        await self.application.updater.start_polling(allowed_updates=["message"])
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._mirror_forever()), loop.create_task(self._sweep_forever())]
        # Conversations that were waiting before the relay started get their topic too.
        for conversation in await self.service.queue():
            if await self._open_thread(conversation.key) is None:
                self._outbox.put_nowait((Event(EventKind.HANDOFF, conversation.key), conversation))

    async def stop(self) -> None:
        self.service.events.unsubscribe(self._on_event)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.application.updater and self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.topics.close()

    async def idle(self) -> None:
        """Wait until every event so far is mirrored (tests, graceful shutdown)."""
        await self._outbox.join()

    # -- bot → group -------------------------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        """Snapshot the conversation now (the event says what changed) and mirror it in order."""
        if event.kind is EventKind.STAFF_MESSAGE and _relaying.get():
            return
        conversation = (
            None if event.kind is EventKind.FORGOTTEN else await self.service.storage.get(event.key)
        )
        self._outbox.put_nowait((event, conversation))

    async def _mirror_forever(self) -> None:
        while True:
            event, conversation = await self._outbox.get()
            try:
                for attempt in range(_ATTEMPTS):
                    try:
                        await self._mirror(event, conversation)
                        break
                    except TelegramError as exc:
                        log.warning("staff group: %s not mirrored (%s)", event.kind, type(exc).__name__)
                        await asyncio.sleep(0.5 * 2**attempt)
            except Exception:
                log.exception("staff group: mirroring %s failed", event.kind)
            finally:
                self._outbox.task_done()

    async def _mirror(self, event: Event, conversation: Conversation | None) -> None:
        key = event.key
        if event.kind is EventKind.FORGOTTEN or conversation is None:
            await self._delete_topics(key)
            return
        thread = await self._open_thread(key)
        if event.kind is EventKind.CLOSED:
            if thread is not None:
                await self._post(
                    thread, f"✅ {_last(conversation, Role.EVENT)}: the user is back with the bot."
                )
                await self.application.bot.close_forum_topic(self.chat_id, thread)
                await self._set_open(key, None)
            return
        if conversation.handoff is None:
            return  # closed meanwhile; its CLOSED event follows
        if thread is None:
            await self._open_topic(conversation)
            return
        if event.kind is EventKind.HANDOFF:
            prefix = "🚨 EMERGENCY. " if event.urgent else ""
            await self._post(thread, f"{prefix}👤 {_last(conversation, Role.USER)}")
        elif event.kind is EventKind.USER_MESSAGE:
            await self._post(thread, f"👤 {_last(conversation, Role.USER)}")
        elif event.kind is EventKind.CLAIMED:
            await self._post(thread, f"✋ {_last(conversation, Role.EVENT)}")
        elif event.kind is EventKind.STAFF_MESSAGE:
            turn = _last_turn(conversation, (Role.STAFF, Role.NOTE))
            if turn is not None:
                await self._post(thread, _staff_line(turn))

    async def _open_topic(self, conversation: Conversation) -> None:
        handoff = conversation.handoff
        assert handoff is not None
        lang = self.service.lang_of(conversation)
        reason = REASONS.get(handoff.reason, handoff.reason)
        name = f"{'🚨 ' if handoff.urgent else ''}{lang} · {reason} · {conversation.channel} · {conversation.key[:6]}"
        topic = await self.application.bot.create_forum_topic(self.chat_id, name[:TOPIC_NAME_LIMIT])
        thread = topic.message_thread_id
        await self._set_open(conversation.key, thread)
        for chunk in _chunks(self._summary(conversation)):
            await self._post(thread, chunk)

    def _summary(self, conversation: Conversation) -> str:
        handoff = conversation.handoff
        assert handoff is not None
        engine = self.service.engine
        lang = self.service.lang_of(conversation)
        guesses = " · ".join(f"{topic_name(i, engine)} {s:.0%}" for i, s in handoff.guesses)
        lines = ["🚨 EMERGENCY: the emergency numbers were sent."] if handoff.urgent else []
        lines.append(f"Waiting for a person: {REASONS.get(handoff.reason, handoff.reason)}")
        lines.append(f"Channel: {conversation.channel} · answers in {language_name(lang)} ({lang})")
        if guesses:
            lines.append(f"Bot's guesses: {guesses}")
        lines.append(f"Claimed by {handoff.claimed_by}" if handoff.claimed_by else "Not claimed yet")
        lines.append(
            "Write in this topic to answer the user; /claim takes the conversation, /note TEXT adds a "
            "private note, /close hands the user back to the bot."
        )
        lines += ["", "Transcript:"]
        lines += [self._transcript_line(t) for t in conversation.transcript if t.role is not Role.EVENT]
        return "\n".join(lines)

    def _transcript_line(self, turn: Turn) -> str:
        who = {Role.USER: "👤 User", Role.BOT: "🤖 Bot"}.get(turn.role)
        if who is None:
            return _staff_line(turn)
        return f"{who} {clock(turn.at, self.service.engine)}: {turn.text}"

    async def _post(self, thread: int, text: str) -> Message:
        return await self.application.bot.send_message(
            self.chat_id, text[:TEXT_LIMIT], message_thread_id=thread, disable_notification=False
        )

    # -- topic records -----------------------------------------------------------------------

    async def _open_thread(self, key: str) -> int | None:
        record = await self.topics.get(f"key:{key}")
        return record.get("open") if record else None

    async def _set_open(self, key: str, thread: int | None) -> None:
        record = await self.topics.get(f"key:{key}") or {"threads": []}
        if thread is not None:
            record["threads"] = [*record["threads"], thread]
            await self.topics.put(f"thread:{thread}", {"key": key})
        record["open"] = thread
        await self.topics.put(f"key:{key}", record)

    async def _delete_topics(self, key: str) -> None:
        record = await self.topics.get(f"key:{key}")
        if not record:
            return
        for thread in record["threads"]:
            try:
                await self.application.bot.delete_forum_topic(self.chat_id, thread)
            except TelegramError as exc:
                log.warning("staff group: topic not deleted (%s)", type(exc).__name__)
            await self.topics.delete(f"thread:{thread}")
        await self.topics.delete(f"key:{key}")

    async def _sweep_forever(self) -> None:
        """Delete the topics of conversations that expired (``privacy.retention_days``)."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("staff group: sweeping expired topics failed")
            await asyncio.sleep(_SWEEP_EVERY_SECONDS)

    async def sweep(self) -> None:
        for name in list(await self.topics.all()):
            key = name.removeprefix("key:")
            if name.startswith("key:") and await self.service.storage.get(key) is None:
                await self._delete_topics(key)

    # -- group → user ------------------------------------------------------------------------

    async def _conversation_key(self, message: Message) -> str | None:
        record = await self.topics.get(f"thread:{message.message_thread_id}")
        return record["key"] if record else None

    async def _act(self, update: Update, action: str, text: str = "") -> None:
        message = update.effective_message
        user = update.effective_user
        if message is None or user is None or user.is_bot:
            return
        key = await self._conversation_key(message)
        if key is None:
            return
        staff = Staff(user.full_name)
        token = _relaying.set(True)
        try:
            if action == "reply":
                await self.service.reply(key, staff, text)
            elif action == "note":
                await self.service.note(key, staff, text)
            elif action == "claim":
                await self.service.claim(key, staff)
            else:
                problem = await self.service.close(key, staff)
                if problem:
                    await message.reply_text(problem)
        except HandoffError as exc:
            await message.reply_text(f"⚠️ {exc}")
        finally:
            _relaying.reset(token)

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.text:
            await self._act(update, "reply", message.text)

    async def _on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Photos, voice notes, files: not relayed (the user's channel may not take them)."""
        message = update.effective_message
        if message is not None and await self._conversation_key(message) is not None:
            await message.reply_text("⚠️ Not sent: only text messages are relayed to the user.")

    async def _on_note(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._act(update, "note", " ".join(context.args or []))

    async def _on_claim(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._act(update, "claim")

    async def _on_close(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._act(update, "close")

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("staff group: handling an update failed", exc_info=context.error)


def _last_turn(conversation: Conversation, roles: Sequence[Role]) -> Turn | None:
    return next((t for t in reversed(conversation.transcript) if t.role in roles), None)


def _last(conversation: Conversation, role: Role) -> str:
    turn = _last_turn(conversation, (role,))
    return turn.text if turn else ""


def _staff_line(turn: Turn) -> str:
    if turn.role is Role.NOTE:
        return f"📝 {turn.author} (note): {turn.text}"
    return f"💬 {turn.author} → user: {turn.text}"


def _chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split at line ends into messages Telegram accepts."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            chunks.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            chunks.append(current)
            current = ""
        current += line
    if current.strip():
        chunks.append(current)
    return chunks
