"""Handoff events, so staff are alerted (console, Telegram staff group) the moment they happen."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    HANDOFF = "handoff"  # a conversation now waits for a person
    USER_MESSAGE = "user_message"  # the user wrote while handed off
    CLAIMED = "claimed"
    STAFF_MESSAGE = "staff_message"
    CLOSED = "closed"  # handed back to the bot
    FORGOTTEN = "forgotten"  # the user deleted their data


@dataclass(frozen=True)
class Event:
    kind: EventKind
    key: str  # the conversation's pseudonymous key; subscribers read the rest from storage
    urgent: bool = False


Subscriber = Callable[[Event], Awaitable[None]]


class EventBus:
    """Fan-out of events to subscribers; one failing subscriber does not stop the others."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    async def publish(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                await subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s", event.kind)
