"""The staff Telegram group end to end: two Bot API stand-ins, one for newcomers, one for staff.

The newcomer talks to the guichet's Telegram bot (the real Telegram channel); staff answer from
a forum topic of their supergroup, through the staff bot (the real relay, python-telegram-bot).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.channels.telegram import TelegramChannel
from bot.channels.telegram_staff import TelegramStaffGroup
from bot.config import Config, HandoffSettings
from bot.engine import ConversationEngine
from bot.handoff import ClaimedByOther, HandoffService, Staff
from bot.runtime import Runtime
from bot.staff.records import FileRecords
from tests.conftest import OPEN_TIME
from tests.standins import TelegramBotAPI, photo_content
from tests.test_handoff import HOUSING_AR, UNSURE_AR

GROUP = -1001234567890
STAFF_TOKEN = "987654321:STAFF-standin-token_for-guichet-tests"
USER_CHAT = 8001
AMAL, KARIM = 501, 502


@dataclass
class Setup:
    users: TelegramBotAPI  # the newcomers' side
    staff_api: TelegramBotAPI  # the staff supergroup's side
    runtime: Runtime
    service: HandoffService
    relay: TelegramStaffGroup

    @property
    def engine(self) -> ConversationEngine:
        return self.runtime.engine

    def user_reads(self) -> list[str]:
        return [m["text"] for m in self.users.chat_history(USER_CHAT) if m["from"]["is_bot"]]

    def topic_posts(self, thread: int) -> list[str]:
        return [
            m.get("text", "")
            for m in self.staff_api.chat_history(GROUP)
            if m["from"]["is_bot"] and m.get("message_thread_id") == thread and "text" in m
        ]

    async def wait_posts(self, thread: int, count: int, timeout: float = 15.0) -> list[str]:
        """The bot's posts in the topic, once there are at least ``count``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(posts := self.topic_posts(thread)) < count:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(posts)} posts: {posts}"
            await asyncio.sleep(0.02)
        return posts

    async def settle(self) -> None:
        await asyncio.sleep(0.3)
        await self.runtime.dispatcher.idle()
        await self.relay.idle()

    def staff_writes(self, thread: int, text: str, user_id: int = AMAL, name: str = "Amal") -> None:
        self.staff_api.push_text(GROUP, text, user_id=user_id, first_name=name, message_thread_id=thread)


@asynccontextmanager
async def running(engine: ConversationEngine, config: Config, tmp_path: Path) -> AsyncIterator[Setup]:
    with TelegramBotAPI() as users, TelegramBotAPI(token=STAFF_TOKEN) as staff_api:
        runtime = Runtime(config, engine)
        channel = TelegramChannel(runtime, users.token or "", api_url=users.base_url, per_chat_interval=0.05)
        runtime.add_channel(channel)
        service = HandoffService(runtime, HandoffSettings(), clock=lambda: OPEN_TIME)
        relay = TelegramStaffGroup(
            service,
            chat_id=GROUP,
            token=STAFF_TOKEN,
            topics=FileRecords(tmp_path / "telegram_topics.json"),
            base_url=staff_api.base_url,
        )
        await runtime.start()
        await relay.start()
        try:
            await asyncio.wait_for(channel.ready.wait(), 10)
            yield Setup(users, staff_api, runtime, service, relay)
        finally:
            await relay.stop()
            await runtime.stop()


@pytest.fixture
async def setup(engine: ConversationEngine, config: Config, tmp_path: Path) -> AsyncIterator[Setup]:
    async with running(engine, config, tmp_path) as started:
        yield started


async def handed_off(setup: Setup) -> tuple[str, int]:
    """A newcomer's unsure question opens a topic; returns the conversation key and the topic."""
    setup.users.push_text(USER_CHAT, UNSURE_AR, language_code="ar")
    await setup.users.wait_for_messages(USER_CHAT, 1, timeout=30)
    [created] = await setup.staff_api.wait_for_calls("createForumTopic", 1, timeout=15)
    await setup.settle()
    key = setup.engine.key_for("telegram", str(USER_CHAT))
    thread = next(
        m["message_thread_id"] for m in setup.staff_api.chat_history(GROUP) if "forum_topic_created" in m
    )
    assert created["name"].startswith("ar · Bot unsure · telegram")
    return key, thread


def forget_button(message: dict[str, Any]) -> str:
    rows = message["reply_markup"]["inline_keyboard"]
    return next(b["callback_data"] for row in rows for b in row if b["callback_data"] == "forget:yes")


async def test_a_handoff_is_answered_and_closed_from_the_staff_group(setup: Setup) -> None:
    key, thread = await handed_off(setup)
    [summary] = setup.topic_posts(thread)
    assert "Waiting for a person: Bot unsure" in summary and "Transcript:" in summary
    assert UNSURE_AR in summary and "Not claimed yet" in summary

    # A staff message in the topic reaches the user (and is not echoed back into the topic).
    setup.staff_writes(thread, "مرحبا، أنا أمل من المكتب. كيف أساعدك؟")
    await setup.users.wait_for_messages(USER_CHAT, 2, timeout=15)
    assert setup.user_reads()[1] == "مرحبا، أنا أمل من المكتب. كيف أساعدك؟"
    await setup.wait_posts(thread, 2)
    await setup.settle()
    conversation = await setup.service.get(key)
    assert conversation.handoff is not None and conversation.handoff.claimed_by == "Amal"
    assert setup.topic_posts(thread)[1:] == ["✋ claimed by Amal"]

    # What the user writes next, and what happens in the console, is mirrored in the topic.
    setup.users.push_text(USER_CHAT, "أبحث عن طعام مجاني", language_code="ar")
    await setup.wait_posts(thread, 3)
    await setup.service.note(key, Staff("Boris"), "Food bank on Telliskivi.")
    await setup.settle()
    assert setup.topic_posts(thread)[2:] == [
        "👤 أبحث عن طعام مجاني",
        "📝 Boris (note): Food bank on Telliskivi.",
    ]

    # Same rules as the console: a colleague cannot answer a conversation Amal holds.
    with pytest.raises(ClaimedByOther):
        await setup.service.reply(key, Staff("Boris"), "hello")
    setup.staff_writes(thread, "I can take it", user_id=KARIM, name="Karim")
    posts = await setup.wait_posts(thread, 5)
    assert posts[-1].startswith("⚠️ Amal has claimed this conversation")
    assert len(setup.users.sent_messages(USER_CHAT)) == 2

    # /close in the topic hands the user back to the bot, in Arabic.
    setup.staff_writes(thread, "/close")
    await setup.users.wait_for_messages(USER_CHAT, 3, timeout=15)
    await setup.wait_posts(thread, 6)
    await setup.settle()
    closing = setup.engine.catalogs.gettext(
        "ar",
        "This conversation with %(centre)s is closed. You are back with the assistant: "
        "write your question any time.",
        centre=setup.engine.config.organisation.centre_name,
    )
    assert setup.user_reads()[2] == closing
    assert setup.topic_posts(thread)[-1] == "✅ closed by Amal: the user is back with the bot."
    topic = setup.staff_api.topic(GROUP, thread)
    assert topic is not None and topic["closed"]
    assert (await setup.service.get(key)).handoff is None

    setup.users.push_text(USER_CHAT, HOUSING_AR, language_code="ar")
    await setup.users.wait_for_messages(USER_CHAT, 4, timeout=30)
    housing = setup.engine.curated("housing_search", "ar", OPEN_TIME)
    assert setup.user_reads()[3].startswith(housing.text.strip())


async def test_console_replies_are_mirrored_and_forget_deletes_the_topic(setup: Setup) -> None:
    key, thread = await handed_off(setup)
    setup.staff_api.push_message(
        GROUP, AMAL, first_name="Amal", message_thread_id=thread, photo=photo_content()
    )
    posts = await setup.wait_posts(thread, 2)
    assert posts[1] == "⚠️ Not sent: only text messages are relayed to the user."
    await setup.service.send_curated(key, Staff("Amal"), "language_courses")
    await setup.service.reply(key, Staff("Amal"), "Come on Monday at 10.")
    await setup.settle()
    curated = setup.engine.curated("language_courses", "ar", OPEN_TIME)
    assert setup.topic_posts(thread)[2:] == [
        "✋ claimed by Amal",
        f"💬 Amal → user: {curated.text}",
        "💬 Amal → user: Come on Monday at 10.",
    ]
    # The user deletes their data: the topic with their transcript goes too.
    setup.users.push_text(USER_CHAT, "/forget", language_code="ar")
    await setup.users.wait_for_messages(USER_CHAT, 4, timeout=15)
    question = [m for m in setup.users.chat_history(USER_CHAT) if m["from"]["is_bot"]][-1]
    setup.users.push_callback(USER_CHAT, forget_button(question), question["message_id"], language_code="ar")
    await setup.staff_api.wait_for_calls("deleteForumTopic", 1, timeout=15)
    assert setup.staff_api.topic(GROUP, thread) is None
    await setup.settle()
    assert await setup.relay.topics.all() == {}


async def test_topics_of_expired_conversations_are_swept(setup: Setup) -> None:
    key, thread = await handed_off(setup)
    await setup.runtime.storage.delete(key)  # what retention does after privacy.retention_days
    await setup.relay.sweep()
    assert setup.staff_api.topic(GROUP, thread) is None
    assert await setup.relay.topics.all() == {}


async def test_conversations_waiting_before_the_relay_started_get_one_topic(
    engine: ConversationEngine, config: Config, tmp_path: Path
) -> None:
    async with running(engine, config, tmp_path / "first") as setup:
        await handed_off(setup)
    # Restarted with the same topic records: the conversation keeps its topic.
    async with running(engine, config, tmp_path / "first") as again:
        await again.settle()
        assert again.staff_api.calls_to("createForumTopic") == []
    # A relay that never saw it (e.g. just switched on) opens a topic for it at start.
    async with running(engine, config, tmp_path / "fresh") as fresh:
        await fresh.staff_api.wait_for_calls("createForumTopic", 1, timeout=15)
        await fresh.settle()
        thread = next(
            m["message_thread_id"] for m in fresh.staff_api.chat_history(GROUP) if "forum_topic_created" in m
        )
        assert UNSURE_AR in fresh.topic_posts(thread)[0]
