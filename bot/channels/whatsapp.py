"""The WhatsApp channel, on Meta's WhatsApp Cloud API.

Incoming: Meta POSTs signed notifications to ``/webhooks/whatsapp``. The signature is checked
on the raw body, the payload validated, each message translated into an
:class:`~bot.messages.IncomingMessage` and handed to the dispatcher, which only stores it: the
webhook answers at once, and redeliveries (same wamid) are dropped there. Delivery statuses
are recorded, never answered.

Outgoing: ``POST {api_url}/{version}/{phone_number_id}/messages`` with httpx, one request in
flight per recipient (so answers stay in order), retrying rate limits and server errors with
exponential backoff. WhatsApp lets free text through only within 24 hours of the user's last
message (:attr:`WhatsAppChannel.reply_window`); after that, only an approved template.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels.whatsapp_payloads import Message, Notification, Status
from bot.channels.whatsapp_render import JSONDict, render
from bot.config import WhatsAppSettings
from bot.conversation import utcnow
from bot.engine import ConversationEngine
from bot.messages import IncomingMessage, Kind, Location, OutgoingMessage
from bot.storage import StorageUnavailable

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
WEBHOOK_PATH = "/webhooks/whatsapp"
DEFAULT_API_URL = "https://graph.facebook.com"
_ENV_PREFIX = "GUICHET_WHATSAPP_"
REPLY_WINDOW = dt.timedelta(hours=24)

# Meta's notifications are a few kilobytes; anything far larger is not from Meta.
_MAX_BODY_BYTES = 1024 * 1024
_SEND_ATTEMPTS = 6
_MAX_RETRY_DELAY = 30.0
# Graph error codes worth retrying: throughput, app, account and pair rate limits, and
# Meta's own transient failures. See the Cloud API error codes page.
_RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056})
_REENGAGEMENT_CODE = 131047

# Non-text message types and what the engine is told the user sent.
_KINDS = {
    "image": Kind.IMAGE,
    "audio": Kind.AUDIO,
    "document": Kind.DOCUMENT,
    "video": Kind.DOCUMENT,  # a file the bot cannot read: offered a person, like documents
    "sticker": Kind.STICKER,
    "reaction": Kind.REACTION,
    "contacts": Kind.CONTACT,
}


class WhatsAppCredentials(BaseModel):
    """The business number's secrets and endpoint (``GUICHET_WHATSAPP_*`` variables)."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr = Field(min_length=1)  # system user access token
    phone_number_id: str = Field(min_length=1)
    app_secret: SecretStr = Field(min_length=1)  # signs the webhook notifications
    verify_token: SecretStr = Field(min_length=1)  # chosen by you, typed into the Meta app
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WhatsAppCredentials | None:
        """The credentials, or None when the channel is not set up (no token, no number id).

        Raises :class:`ValueError` naming the variables that are missing.
        """
        values = {
            name: environ[variable]
            for name in cls.model_fields
            if environ.get(variable := f"{_ENV_PREFIX}{name.upper()}")
        }
        if not values.keys() & {"token", "phone_number_id"}:
            return None
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            wrong = sorted({f"{_ENV_PREFIX}{str(error['loc'][0]).upper()}" for error in exc.errors()})
            raise ValueError(
                f"the WhatsApp channel needs {', '.join(wrong)} (see README, WhatsApp)"
            ) from None


class GraphAPIError(Exception):
    """The Graph API refused a request, after retries when the failure was transient."""

    def __init__(self, status: int, code: int | None, title: str) -> None:
        super().__init__(f"Graph API error {code} (HTTP {status}): {title}")
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500 or self.code in _RETRYABLE_CODES

    @classmethod
    def from_response(cls, response: httpx.Response) -> GraphAPIError:
        try:
            error = response.json()["error"]
            code, title = int(error["code"]), str(error.get("message", ""))
        except (ValueError, KeyError, TypeError):
            code, title = None, response.reason_phrase
        kind = ReplyWindowClosed if code == _REENGAGEMENT_CODE else cls
        return kind(response.status_code, code, title)


class ReplyWindowClosed(GraphAPIError):
    """More than 24 hours since the user last wrote: only a template message can reach them."""


class DeliveryLog:
    """The latest known state of each message we sent, by wamid (bounded, in memory)."""

    _ORDER = ("accepted", "sent", "delivered", "read", "failed")

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._states: OrderedDict[str, str] = OrderedDict()

    def state(self, wamid: str) -> str | None:
        """``accepted`` (by the API), ``sent``, ``delivered``, ``read``, ``failed``, or None."""
        return self._states.get(wamid)

    def accepted(self, wamid: str) -> None:
        self._set(wamid, "accepted")

    def record(self, status: Status) -> None:
        """Keep the furthest state: statuses may arrive out of order (read before delivered)."""
        if status.status == "failed":
            codes = ", ".join(f"{e.code} {e.title}" for e in status.errors) or "no error given"
            log.warning("a WhatsApp message was not delivered: %s", codes)
        if status.status not in self._ORDER:
            return
        current = self._states.get(status.id)
        if current is None or self._ORDER.index(status.status) > self._ORDER.index(current):
            self._set(status.id, status.status)

    def _set(self, wamid: str, state: str) -> None:
        self._states[wamid] = state
        self._states.move_to_end(wamid)
        while len(self._states) > self._size:
            self._states.popitem(last=False)


class _RecipientLocks:
    """One lock per recipient, dropped once nobody waits on it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: Counter[str] = Counter()

    @asynccontextmanager
    async def hold(self, address: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(address, asyncio.Lock())
        self._holders[address] += 1
        try:
            async with lock:
                yield
        finally:
            self._holders[address] -= 1
            if not self._holders[address]:
                del self._holders[address], self._locks[address]


def to_incoming(message: Message) -> IncomingMessage | None:
    """Our form of a user's message; None for system notices, which are not the user's words."""

    def incoming(kind: Kind, **fields: Any) -> IncomingMessage:
        return IncomingMessage(CHANNEL, message.from_, kind, message_id=message.id, **fields)

    if message.text is not None and message.type == "text":
        return incoming(Kind.TEXT, text=message.text.body)
    if message.interactive is not None and message.type == "interactive":
        choice = message.interactive.choice
        if choice is None:
            return incoming(Kind.UNSUPPORTED)
        return incoming(Kind.BUTTON, text=choice.title, payload=choice.id)
    if message.button is not None and message.type == "button":  # quick reply of a template
        return incoming(Kind.TEXT, text=message.button.text)
    if message.location is not None and message.type == "location":
        where = Location(message.location.latitude, message.location.longitude)
        return incoming(Kind.LOCATION, location=where)
    if message.type == "request_welcome":  # the user opened the chat for the first time
        return incoming(Kind.COMMAND, payload="start")
    if message.type == "system":
        return None
    return incoming(_KINDS.get(message.type, Kind.UNSUPPORTED))


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error_places(exc: ValidationError) -> str:
    """Where a payload is malformed, without any of its values (they may be message text)."""
    places = [
        ".".join(str(part) for part in error["loc"]) + f" ({error['type']})"
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return "; ".join(places[:5])


class WhatsAppChannel:
    """WhatsApp Cloud API: signed webhook in, Graph API ``/messages`` out."""

    name = CHANNEL
    reply_window: dt.timedelta | None = REPLY_WINDOW

    def __init__(
        self,
        credentials: WhatsAppCredentials,
        settings: WhatsAppSettings,
        engine: ConversationEngine,
        *,
        retry_delay: float = 0.5,
        timeout: float = 15.0,
    ) -> None:
        self.credentials = credentials
        self.settings = settings
        self.engine = engine
        self.deliveries = DeliveryLog()
        self._retry_delay = retry_delay
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._locks = _RecipientLocks()
        self._messages_path = f"/{settings.api_version}/{credentials.phone_number_id}/messages"

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.credentials.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.credentials.token.get_secret_value()}"},
            timeout=self._timeout,
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the 24-hour window --------------------------------------------------------------------

    def reply_window_open(self, last_user_at: dt.datetime | None, now: dt.datetime | None = None) -> bool:
        """Whether free text may still be sent to a user who last wrote at ``last_user_at``."""
        return last_user_at is not None and (now or utcnow()) - last_user_at <= REPLY_WINDOW

    async def send_template(self, address: str, lang: str) -> bool:
        """Send the configured re-open template in the user's language; False when none is set up."""
        template = self.settings.reopen_template
        if template is None:
            return False
        body: JSONDict = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": address,
            "type": "template",
            "template": {"name": template.name, "language": {"code": template.language_for(lang)}},
        }
        async with self._locks.hold(address):
            await self._post(body)
        return True

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, address: str, messages: Sequence[OutgoingMessage]) -> None:
        """Deliver ``messages`` in order; raises :class:`GraphAPIError` once retries are exhausted."""
        list_button = ""
        if any(len(m.buttons) > 3 for m in messages):
            list_button = self.engine.catalogs.gettext(await self._lang_of(address), "Choose")
        async with self._locks.hold(address):
            for message in messages:
                for body in render(message, address, list_button):
                    await self._post(body)

    async def _lang_of(self, address: str) -> str:
        """The user's language, for the words the channel itself adds (the list button)."""
        try:
            conversation = await self.engine.storage.get(self.engine.key_for(self.name, address))
        except StorageUnavailable:
            conversation = None
        if conversation is not None and conversation.lang:
            return conversation.lang
        content = self.engine.config.languages.content
        return "en" if "en" in content else content[0]

    async def _post(self, body: JSONDict) -> str:
        """POST one message, retrying transient failures with backoff; the wamid Meta gives it."""
        if self._client is None:
            raise RuntimeError("the WhatsApp channel is not started")
        attempt = 0
        while True:
            attempt += 1
            last = attempt == _SEND_ATTEMPTS
            delay = min(_MAX_RETRY_DELAY, self._retry_delay * 2 ** (attempt - 1))
            try:
                response = await self._client.post(self._messages_path, json=body)
            except httpx.TransportError as exc:
                if last:
                    raise
                log.warning("WhatsApp send failed (%s), attempt %d; retrying", type(exc).__name__, attempt)
                await asyncio.sleep(delay)
                continue
            if response.is_success:
                wamid = str(response.json()["messages"][0]["id"])
                self.deliveries.accepted(wamid)
                return wamid
            error = GraphAPIError.from_response(response)
            if last or not error.retryable:
                log.warning("WhatsApp send refused: %s", error)
                raise error
            log.warning("WhatsApp send failed: %s, attempt %d; retrying", error, attempt)
            await asyncio.sleep(_retry_after(response) or delay)

    # -- webhook -------------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route(WEBHOOK_PATH, self._verify, methods=["GET"]),
            Route(WEBHOOK_PATH, self._receive, methods=["POST"]),
        ]

    async def _verify(self, request: Request) -> Response:
        """Meta's subscription handshake: echo the challenge if the verify token matches."""
        params = request.query_params
        token = params.get("hub.verify_token", "").encode()
        expected = self.credentials.verify_token.get_secret_value().encode()
        if params.get("hub.mode") != "subscribe" or not hmac.compare_digest(token, expected):
            log.warning("WhatsApp webhook verification refused")
            return PlainTextResponse("Forbidden", status_code=403)
        return PlainTextResponse(params.get("hub.challenge", ""))

    def _signature_ok(self, body: bytes, header: str) -> bool:
        secret = self.credentials.app_secret.get_secret_value().encode()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header.encode(), expected.encode())

    async def _receive(self, request: Request) -> Response:
        """Authenticate, validate, hand messages to the dispatcher, record statuses; answer fast."""
        body = await _read_body(request, _MAX_BODY_BYTES)
        if body is None:
            log.warning("WhatsApp webhook refused: body over %d bytes", _MAX_BODY_BYTES)
            return PlainTextResponse("Payload too large", status_code=413)
        signature = request.headers.get("x-hub-signature-256")
        if not signature:
            log.warning("WhatsApp webhook refused: no X-Hub-Signature-256")
            return PlainTextResponse("Missing signature", status_code=401)
        if not self._signature_ok(body, signature):
            log.warning("WhatsApp webhook refused: wrong signature")
            return PlainTextResponse("Wrong signature", status_code=403)
        try:
            values = Notification.model_validate_json(body).messages_values()
        except ValidationError as exc:
            log.warning("malformed WhatsApp notification refused: %s", _error_places(exc))
            return PlainTextResponse("Malformed notification", status_code=400)

        incoming: list[IncomingMessage] = []
        statuses = 0
        for value in values:
            if value.metadata.phone_number_id != self.credentials.phone_number_id:
                log.warning("WhatsApp notification for another phone number ignored")
                continue
            incoming.extend(m for m in map(to_incoming, value.messages) if m is not None)
            for status in value.statuses:
                self.deliveries.record(status)
            statuses += len(value.statuses)
        runtime: Runtime = request.app.state.runtime
        try:
            for message in incoming:
                await runtime.dispatcher.accept(message)
        except StorageUnavailable:
            log.warning("storage unavailable: WhatsApp notification refused with 503 (Meta retries)")
            return PlainTextResponse("Storage unavailable, retry later", status_code=503)
        log.info("WhatsApp notification: %d message(s), %d status(es)", len(incoming), statuses)
        return PlainTextResponse("OK")


def _retry_after(response: httpx.Response) -> float | None:
    """The server's Retry-After, in seconds (capped), when it gives one."""
    try:
        return min(_MAX_RETRY_DELAY * 2, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
