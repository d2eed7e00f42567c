"""The dispatcher: each message processed once, each user's messages in order, nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.dispatcher import Dispatcher
from bot.engine import ConversationEngine
from bot.messages import IncomingMessage, Kind, OutgoingMessage


class Outbox:
    """Records what would be sent; can fail the first sends like a dead network."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, str]] = []
        self.failures = failures

    async def __call__(self, channel: str, address: str, messages: Sequence[OutgoingMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("network down")
        await asyncio.sleep(0.001)
        self.sent.extend((address, m.text) for m in messages)


def message(user: str, text: str, message_id: str) -> IncomingMessage:
    return IncomingMessage("test", user, Kind.TEXT, text=text, message_id=message_id, language_hint="en")


async def test_redeliveries_are_processed_once(engine: ConversationEngine) -> None:
    outbox = Outbox()
    dispatcher = Dispatcher(engine, engine.storage, outbox)
    accepted = [await dispatcher.accept(message("a", "hello", "m1")) for _ in range(3)]
    await dispatcher.idle()
    assert accepted == [True, False, False]
    assert len(outbox.sent) == 1


async def test_each_users_messages_are_answered_in_order(engine: ConversationEngine) -> None:
    outbox = Outbox()
    dispatcher = Dispatcher(engine, engine.storage, outbox)
    questions = ["how do i find a job here", "i need to see a doctor", "how to open a bank account"]
    for user in ("u1", "u2"):
        for number, question in enumerate(questions):
            await dispatcher.accept(message(user, question, f"{user}-{number}"))
    await dispatcher.idle()
    for user in ("u1", "u2"):
        expected = [engine.curated(i, "en").text for i in ("job_search", "health_care", "bank_account")]
        answers = [text for address, text in outbox.sent if address == user and text in expected]
        assert answers == expected


async def test_messages_left_by_a_dead_worker_are_recovered(engine: ConversationEngine) -> None:
    key = engine.key_for("test", "orphan")
    await engine.storage.push_incoming(key, message("orphan", "hello", "o1"))
    outbox = Outbox()
    dispatcher = Dispatcher(engine, engine.storage, outbox)
    await dispatcher.recover()
    await dispatcher.idle()
    assert [address for address, _ in outbox.sent] == ["orphan"]
    assert await engine.storage.keys_with_incoming() == []


async def test_a_failed_send_is_retried_and_arrives_once(engine: ConversationEngine) -> None:
    outbox = Outbox(failures=2)
    dispatcher = Dispatcher(engine, engine.storage, outbox)
    await dispatcher.accept(message("net", "hello", "n1"))
    await dispatcher.idle()
    assert len(outbox.sent) == 1
