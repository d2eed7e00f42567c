"""The channel-agnostic message types that flow between channels and the engine."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What the user sent; channels map every platform message type onto one of these."""

    TEXT = "text"
    BUTTON = "button"  # a button press or interactive reply: ``payload`` holds our own payload
    COMMAND = "command"  # /start, /help, ... : ``payload`` holds the command name
    LOCATION = "location"
    IMAGE = "image"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    CONTACT = "contact"
    REACTION = "reaction"
    EDITED = "edited"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class IncomingMessage:
    """One message from a newcomer, as every channel delivers it to the engine.

    ``user_id`` is the channel's own id (Telegram chat id, WhatsApp phone number):
    the engine pseudonymises it before storing anything.
    """

    channel: str
    user_id: str
    kind: Kind
    text: str = ""
    payload: str = ""
    message_id: str | None = None  # platform id, used to process redeliveries once
    language_hint: str | None = None  # e.g. Telegram's language_code
    location: Location | None = None
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form, for durable inboxes."""
        # Field by field: dataclasses.asdict deep-copies every value (a tenth of a worker's time
        # under load, measured with bench/load.py).
        return {
            "channel": self.channel,
            "user_id": self.user_id,
            "kind": self.kind.value,
            "text": self.text,
            "payload": self.payload,
            "message_id": self.message_id,
            "language_hint": self.language_hint,
            "location": asdict(self.location) if self.location else None,
            "received_at": self.received_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IncomingMessage:
        location = data.get("location")
        return cls(
            **{
                **data,
                "kind": Kind(data["kind"]),
                "location": Location(**location) if location else None,
                "received_at": dt.datetime.fromisoformat(data["received_at"]),
            }
        )


@dataclass(frozen=True)
class Button:
    """A choice offered to the user; pressing it sends ``payload`` back."""

    label: str
    payload: str


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to a newcomer. Channels render buttons as keyboards, button lists or lists."""

    text: str
    buttons: tuple[Button, ...] = ()
    links: tuple[Link, ...] = ()
    request_location: bool = False
    urgent: bool = False


# Button payloads understood by the engine. Channels pass them back unchanged.
INTENT_PAYLOAD = "i:"  # i:<intent>      ask about a topic
LANGUAGE_PAYLOAD = "l:"  # l:<code>        switch language
FORGET_CONFIRM = "forget:yes"
FORGET_CANCEL = "forget:no"
HUMAN_PAYLOAD = "human"
