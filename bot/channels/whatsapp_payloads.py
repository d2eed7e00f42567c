"""The webhook notifications Meta POSTs for a WhatsApp Business number, validated with pydantic.

Only what the bot reads is modelled; unknown fields are ignored, so Meta adding fields never
breaks the webhook, while a notification missing what we need is rejected as malformed.
See https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class TextContent(_Payload):
    body: str


class ReplyChoice(_Payload):
    """The reply button or list row a user tapped; ``id`` is the payload we sent with it."""

    id: str = Field(min_length=1)
    title: str = ""


class InteractiveContent(_Payload):
    type: str
    button_reply: ReplyChoice | None = None
    list_reply: ReplyChoice | None = None

    @property
    def choice(self) -> ReplyChoice | None:
        return self.button_reply or self.list_reply

    @model_validator(mode="after")
    def _reply_present(self) -> InteractiveContent:
        if self.type in ("button_reply", "list_reply") and getattr(self, self.type) is None:
            raise ValueError(f"interactive {self.type} without its {self.type} object")
        return self


class TemplateButtonContent(_Payload):
    """A tap on a quick-reply button of a template message."""

    text: str = ""
    payload: str = ""


class LocationContent(_Payload):
    latitude: float
    longitude: float


# Message types whose content object the bot reads, so it must be present.
_REQUIRED_CONTENT = ("text", "interactive", "button", "location")


class Message(_Payload):
    """One message a user sent to the business number."""

    from_: str = Field(alias="from", min_length=1)  # the user's WhatsApp id (phone number)
    id: str = Field(min_length=1)  # the wamid: the same message redelivered keeps it
    type: str
    text: TextContent | None = None
    interactive: InteractiveContent | None = None
    button: TemplateButtonContent | None = None
    location: LocationContent | None = None

    @model_validator(mode="after")
    def _content_present(self) -> Message:
        if self.type in _REQUIRED_CONTENT and getattr(self, self.type) is None:
            raise ValueError(f"{self.type} message without its {self.type} object")
        return self


class StatusError(_Payload):
    code: int
    title: str = ""


class Status(_Payload):
    """What happened to a message the business sent: sent, delivered, read or failed."""

    id: str = Field(min_length=1)  # wamid of our message
    status: str
    recipient_id: str = ""
    errors: list[StatusError] = Field(default_factory=list)


class Metadata(_Payload):
    phone_number_id: str
    display_phone_number: str = ""


class MessagesValue(_Payload):
    """The ``value`` of a change of field ``messages``: incoming messages and delivery statuses."""

    messaging_product: Literal["whatsapp"]
    metadata: Metadata
    messages: list[Message] = Field(default_factory=list)
    statuses: list[Status] = Field(default_factory=list)


class Change(_Payload):
    field: str
    value: dict[str, Any]


class Entry(_Payload):
    id: str
    changes: list[Change]


class Notification(_Payload):
    """The body of one webhook POST."""

    object: Literal["whatsapp_business_account"]
    entry: list[Entry]

    def messages_values(self) -> list[MessagesValue]:
        """Every ``messages`` change, validated (other subscribed fields are not for the bot).

        Raises :class:`pydantic.ValidationError` when one of them is malformed.
        """
        return [
            MessagesValue.model_validate(change.value)
            for entry in self.entry
            for change in entry.changes
            if change.field == "messages"
        ]
