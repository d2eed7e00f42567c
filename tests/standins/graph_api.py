"""A local stand-in for Meta's Graph API (https://graph.facebook.com), WhatsApp Cloud API part.

Outbound: ``POST /{version}/{phone_number_id}/messages`` with a bearer token, validated like
the real endpoint for the mistakes a bot makes (missing ``messaging_product``, too many or
too long reply buttons, list rows over the limits, text over 4096 characters...), answered
with the real success body or the real Graph error shape::

    {"error": {"message": "(#131009) Parameter value is not valid", "type": "OAuthException",
               "code": 131009, "error_data": {"messaging_product": "whatsapp", "details": "..."},
               "fbtrace_id": "..."}}

Inbound: module-level builders of the webhook payloads Meta POSTs to the bot
(``text_message_payload``, ``interactive_reply_payload``, ``media_message_payload``,
``status_payload``), ``sign`` for X-Hub-Signature-256 and ``deliver_webhook`` to post them
byte-for-byte the way Meta does (non-ASCII escaped as \\uXXXX, "/" as "\\/": a receiver that
re-serializes the JSON before checking the signature fails, as it would in production).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .server import StandIn

JSONDict = dict[str, Any]

DEFAULT_VERSION = "v21.0"
DEFAULT_ACCESS_TOKEN = "EAAGstandinTESTaccessTOKENforGUICHET0123456789"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_PHONE_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"
DEFAULT_APP_SECRET = "standin-app-secret-0123456789abcdef"
DEFAULT_WA_ID = "16505551234"
ERROR_CODES_URL = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

MESSAGE_TYPES = (
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
)
MEDIA_TYPES = frozenset({"audio", "document", "image", "sticker", "video"})
INTERACTIVE_TYPES = (
    "button",
    "cta_url",
    "list",
    "product",
    "product_list",
    "catalog_message",
    "flow",
    "location_request_message",
    "address_message",
)
# Rate limits (throughput, pair rate, WABA, app) come back with these codes; Meta documents
# them by code, and the HTTP status is not a reliable signal, hence 400 unless told otherwise.
RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131048, 131056})

# code -> (message, error_data.details); the titles and details Meta uses.
KNOWN_ERRORS: dict[int, tuple[str, str | None]] = {
    4: ("(#4) Application request limit reached", None),
    100: ("(#100) Invalid parameter", None),
    190: ("Invalid OAuth access token - Cannot parse access token", None),
    80007: ("(#80007) Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
    130429: ("(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
    131000: ("(#131000) Something went wrong", "Message failed to send due to an unknown error."),
    131005: ("(#131005) Access denied", "Permission is either not granted or has been removed."),
    131008: ("(#131008) Required parameter is missing", "A required parameter is missing."),
    131009: ("(#131009) Parameter value is not valid", "One or more parameter values are invalid."),
    131016: ("(#131016) Service unavailable", "A service is temporarily unavailable."),
    131026: ("(#131026) Message undeliverable", "Message Undeliverable."),
    131030: (
        "(#131030) Recipient phone number not in allowed list",
        "Recipient phone number not in allowed list: Add recipient phone number to recipient list and"
        " try again.",
    ),
    131047: (
        "(#131047) Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to"
        " this number.",
    ),
    131048: (
        "(#131048) Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be sent from this"
        " phone number. This may be because too many previous messages were blocked or flagged as spam.",
    ),
    131056: (
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number to the same"
        " phone number in a short period of time.",
    ),
}
_DEFAULT_CODE_FOR_STATUS = {400: 131009, 401: 190, 429: 130429, 500: 131000, 503: 131016}


def _fbtrace_id() -> str:
    return base64.b64encode(secrets.token_bytes(8)).decode().rstrip("=").replace("+", "A").replace("/", "B")


def graph_error(
    code: int,
    message: str | None = None,
    *,
    details: str | None = None,
    error_type: str = "OAuthException",
    subcode: int | None = None,
) -> JSONDict:
    """A Graph API error body; `message`/`details` default to Meta's wording for the code."""
    known_message, known_details = KNOWN_ERRORS.get(code, (f"(#{code}) Error", None))
    error: JSONDict = {"message": message or known_message, "type": error_type, "code": code}
    details = details or known_details
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = _fbtrace_id()
    return {"error": error}


class GraphError(Exception):
    """An error answer of the stand-in: HTTP status plus Graph error body."""

    def __init__(self, status: int, body: JSONDict):
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body


def _invalid(details: str) -> GraphError:
    return GraphError(400, graph_error(131009, details=details))


def _param_error(message: str) -> GraphError:
    return GraphError(400, graph_error(100, f"(#100) {message}"))


_wamid_counter = itertools.count(1)


def new_wamid(wa_id: str = DEFAULT_WA_ID) -> str:
    """A unique message id in Meta's shape (wamid. + base64)."""
    raw = f"\x18\x0b{wa_id}\x15\x02\x00\x11\x18\x12{next(_wamid_counter):06d}{secrets.token_hex(7).upper()}"
    return "wamid." + base64.b64encode(raw.encode()).decode()


def normalize_wa_id(to: str) -> str:
    """The wa_id Meta answers for a `to`: digits only (no +, spaces, dashes)."""
    return re.sub(r"\D", "", str(to))


@dataclass
class _Injection:
    remaining: int
    status: int
    body_args: JSONDict
    to: str | None = None


class GraphAPI(StandIn):
    """Stand-in for https://graph.facebook.com: `base_url` replaces that root URL.

    `sent` holds the accepted message request bodies in order (read receipts go to
    `read_receipts`, everything including rejected requests to `requests`).
    """

    name = "graph-standin"

    def __init__(
        self,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        *,
        display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
        waba_id: str = DEFAULT_WABA_ID,
        app_secret: str = DEFAULT_APP_SECRET,
    ):
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.waba_id = waba_id
        self.app_secret = app_secret
        self._lock = threading.RLock()
        self.reset()
        super().__init__()

    def reset(self) -> None:
        """Forget recorded requests and pending failures."""
        with self._lock:
            self.sent: list[JSONDict] = []
            self.responses: list[JSONDict] = []
            self.read_receipts: list[JSONDict] = []
            self.requests: list[JSONDict] = []
            self._injections: list[_Injection] = []

    @property
    def base_url(self) -> str:
        """Root URL standing for https://graph.facebook.com (no version, no trailing slash)."""
        return self.url

    def messages_url(self, version: str = DEFAULT_VERSION) -> str:
        return f"{self.url}/{version}/{self.phone_number_id}/messages"

    def build_app(self) -> ASGIApp:
        return Starlette(
            routes=[
                Route("/{version}/{phone_number_id}/messages", self._messages, methods=["POST"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "DELETE"]),
            ]
        )

    # ----------------------------------------------------------------------------------------
    # Test API
    # ----------------------------------------------------------------------------------------

    def sent_to(self, wa_id: str) -> list[JSONDict]:
        """Accepted message bodies addressed to `wa_id` (compared digits-only)."""
        wanted = normalize_wa_id(wa_id)
        with self._lock:
            return [body for body in self.sent if normalize_wa_id(body.get("to", "")) == wanted]

    def texts_to(self, wa_id: str) -> list[str]:
        """What the user reads: text bodies, interactive bodies, template names."""
        texts = []
        for body in self.sent_to(wa_id):
            kind = body.get("type", "text")
            if kind == "text":
                texts.append(body["text"]["body"])
            elif kind == "interactive":
                texts.append(body["interactive"].get("body", {}).get("text", ""))
            elif kind == "template":
                texts.append(f"template:{body['template']['name']}")
            else:
                texts.append(f"{kind}")
        return texts

    async def wait_for(self, count: int, to: str | None = None, timeout: float = 10.0) -> list[JSONDict]:
        """Wait (without blocking the test's loop) until `count` messages were accepted."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = self.sent_to(to) if to is not None else list(self.sent)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                with self._lock:
                    recent = [(r["status"], r["body"]) for r in self.requests[-5:]]
                raise AssertionError(
                    f"expected {count} message(s){f' to {to}' if to else ''} within {timeout}s,"
                    f" got {len(found)}; last requests: {recent}"
                )
            await asyncio.sleep(0.01)

    def fail_next(
        self,
        count: int = 1,
        status: int | None = None,
        code: int | None = None,
        *,
        to: str | None = None,
        message: str | None = None,
        details: str | None = None,
    ) -> None:
        """Reject the next `count` valid message requests (only those to `to`, if given).

        `code` defaults from `status` (429 -> 130429 throughput, 500 -> 131000, 503 -> 131016)
        and `status` from `code` (400 for rate-limit and other codes, as Meta mostly answers);
        with neither, 500/131000. The body is Meta's: message "(#code) Title",
        error_data.details, fbtrace_id.
        """
        if code is None:
            code = _DEFAULT_CODE_FOR_STATUS.get(status or 500, 131000)
        if status is None:
            status = {190: 401, 131000: 500, 131016: 503}.get(code, 400)
        with self._lock:
            self._injections.append(
                _Injection(count, status, {"code": code, "message": message, "details": details}, to)
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._injections.clear()

    async def deliver(self, url: str, payload: JSONDict, *, app_secret: str | None = None) -> httpx.Response:
        """Post a webhook payload to the bot, signed with this app's secret (see deliver_webhook)."""
        return await deliver_webhook(url, payload, app_secret or self.app_secret)

    # ----------------------------------------------------------------------------------------
    # HTTP layer
    # ----------------------------------------------------------------------------------------

    def _record(self, request: Request, body: Any, status: int, answer: JSONDict) -> None:
        with self._lock:
            self.requests.append(
                {
                    "path": request.url.path,
                    "headers": dict(request.headers),
                    "body": body,
                    "status": status,
                    "response": answer,
                }
            )

    def _take_injection(self, to: str) -> _Injection | None:
        with self._lock:
            for injection in self._injections:
                if injection.to is None or normalize_wa_id(injection.to) == normalize_wa_id(to):
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                    return injection
        return None

    def _check_token(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = (
            header[7:].strip()
            if header.lower().startswith("bearer ")
            else request.query_params.get("access_token")
        )
        if token != self.access_token:
            raise GraphError(401, graph_error(190, error_type="OAuthException"))

    async def _messages(self, request: Request) -> Response:
        body: Any = None
        try:
            self._check_token(request)
            if not re.fullmatch(r"v\d+\.\d+", request.path_params["version"]):
                raise GraphError(400, graph_error(2500, f"Unknown path components: {request.url.path}"))
            if request.path_params["phone_number_id"] != self.phone_number_id:
                object_id = request.path_params["phone_number_id"]
                raise GraphError(
                    400,
                    graph_error(
                        100,
                        f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be"
                        " loaded due to missing permissions, or does not support this operation. Please read"
                        " the Graph"
                        " API documentation at https://developers.facebook.com/docs/graph-api",
                        error_type="GraphMethodException",
                        subcode=33,
                    ),
                )
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
                raise _param_error("The parameter messaging_product is required.") from None
            if not isinstance(body, dict):
                raise _param_error("The parameter messaging_product is required.")
            if body.get("status") == "read" or "typing_indicator" in body:
                answer = self._read_receipt(body)
            else:
                validate_message(body)
                injection = self._take_injection(str(body["to"]))
                if injection is not None:
                    raise GraphError(injection.status, graph_error(**injection.body_args))
                answer = self._accept(body)
        except GraphError as exc:
            self._record(request, body, exc.status, exc.body)
            return JSONResponse(exc.body, status_code=exc.status)
        self._record(request, body, 200, answer)
        return JSONResponse(answer)

    def _accept(self, body: JSONDict) -> JSONDict:
        to = str(body["to"])
        wa_id = normalize_wa_id(to)
        message: JSONDict = {"id": new_wamid(wa_id)}
        if body.get("type") == "template":
            message["message_status"] = "accepted"
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
            "messages": [message],
        }
        with self._lock:
            self.sent.append(body)
            self.responses.append(answer)
        return answer

    def _read_receipt(self, body: JSONDict) -> JSONDict:
        _check_product(body)
        if body.get("status") != "read":
            raise _param_error("The parameter status is required.")
        if not str(body.get("message_id") or "").startswith("wamid."):
            raise _param_error("Param message_id must be a valid WhatsApp message id.")
        with self._lock:
            self.read_receipts.append(body)
        return {"success": True}

    async def _unknown(self, request: Request) -> Response:
        body = graph_error(2500, f"Unknown path components: {request.url.path}")
        self._record(request, None, 400, body)
        return JSONResponse(body, status_code=400)


# --------------------------------------------------------------------------------------------
# Request validation
# --------------------------------------------------------------------------------------------


def _check_product(body: JSONDict) -> None:
    product = body.get("messaging_product")
    if product is None:
        raise _param_error("The parameter messaging_product is required.")
    if product != "whatsapp":
        raise _param_error(f'Param messaging_product must be one of {{WHATSAPP}} - got "{product}".')


def _text_len(value: Any, path: str, limit: int, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise _param_error(f"The parameter {path} is required.")
        return ""
    if not isinstance(value, str):
        raise _param_error(f"Param {path} must be a string.")
    if len(value) > limit:
        raise _param_error(f"Param {path} must be at most {limit} characters long.")
    return value


def validate_message(body: JSONDict) -> None:
    """Raise GraphError for the request mistakes the real /messages endpoint rejects."""
    _check_product(body)
    if body.get("recipient_type", "individual") not in ("individual", "group"):
        raise _param_error(
            f'Param recipient_type must be one of {{INDIVIDUAL, GROUP}} - got "{body["recipient_type"]}".'
        )
    to = body.get("to")
    if not to:
        raise _param_error("The parameter to is required.")
    if not isinstance(to, str):
        raise _param_error("Param to must be a string.")
    if not normalize_wa_id(to):
        raise GraphError(400, graph_error(100, details="Invalid parameter: to is not a valid phone number"))
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        allowed = ", ".join(t.upper() for t in MESSAGE_TYPES)
        raise _param_error(f'Param type must be one of {{{allowed}}} - got "{kind}".')
    context = body.get("context")
    if context is not None and not (isinstance(context, dict) and isinstance(context.get("message_id"), str)):
        raise _param_error("The parameter context['message_id'] is required.")
    content = body.get(kind)
    if not isinstance(content, (dict, list)):
        raise _param_error(f"The parameter {kind} is required.")
    if kind == "text":
        _text_len(content.get("body"), "text['body']", 4096)
    elif kind == "interactive":
        _validate_interactive(content)
    elif kind == "template":
        if not content.get("name"):
            raise _param_error("The parameter template['name'] is required.")
        if not isinstance(content.get("language"), dict) or not content["language"].get("code"):
            raise _param_error("The parameter template['language']['code'] is required.")
    elif kind in MEDIA_TYPES:
        if bool(content.get("id")) == bool(content.get("link")):
            raise _param_error(f"Param {kind} must contain either 'id' or 'link'.")
        if "caption" in content and kind in ("audio", "sticker"):
            raise _param_error(f"Param {kind}['caption'] is not allowed for this media type.")
        _text_len(content.get("caption"), f"{kind}['caption']", 1024, required=False)
    elif kind == "location":
        for key in ("latitude", "longitude"):
            if not isinstance(content.get(key), (int, float, str)) or content.get(key) == "":
                raise _param_error(f"The parameter location['{key}'] is required.")
    elif kind == "reaction":
        if not str(content.get("message_id") or "").startswith("wamid."):
            raise _param_error("The parameter reaction['message_id'] is required.")
        if "emoji" not in content:
            raise _param_error("The parameter reaction['emoji'] is required.")
    elif kind == "contacts" and (not isinstance(content, list) or not content):
        raise _param_error("The parameter contacts is required.")


def _validate_interactive(interactive: JSONDict) -> None:
    kind = interactive.get("type")
    if kind not in INTERACTIVE_TYPES:
        allowed = ", ".join(t.upper() for t in INTERACTIVE_TYPES)
        raise _param_error(f"Param interactive['type'] must be one of {{{allowed}}} - got \"{kind}\".")
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise _param_error("The parameter interactive['action'] is required.")
    if kind in ("button", "list", "cta_url"):
        body = interactive.get("body")
        _text_len(body.get("text") if isinstance(body, dict) else None, "interactive['body']['text']", 1024)
    footer = interactive.get("footer")
    if isinstance(footer, dict):
        _text_len(footer.get("text"), "interactive['footer']['text']", 60)
    header = interactive.get("header")
    if isinstance(header, dict):
        if kind == "list" and header.get("type") != "text":
            raise _invalid("Header type must be text for list messages")
        if header.get("type") == "text":
            _text_len(header.get("text"), "interactive['header']['text']", 60)
    if kind == "button":
        _validate_buttons(action)
    elif kind == "list":
        _validate_list(action)
    elif kind == "cta_url":
        if action.get("name") != "cta_url":
            raise _param_error("The parameter interactive['action']['name'] is required.")
        parameters = action.get("parameters") or {}
        text = parameters.get("display_text") or ""
        if not 1 <= len(text) <= 20:
            raise _invalid("Display text length invalid. Min length: 1, Max length: 20")
        if not re.match(r"https?://\S+$", str(parameters.get("url") or "")):
            raise _invalid("Invalid URL in parameters['url']")


def _validate_buttons(action: JSONDict) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        raise _param_error("The parameter interactive['action']['buttons'] is required.")
    if len(buttons) > 3:
        raise _invalid("Buttons count invalid. Min allowed buttons: 1, Max allowed buttons: 3")
    ids, titles = set(), set()
    for button in buttons:
        reply = button.get("reply") if isinstance(button, dict) else None
        if not isinstance(button, dict) or button.get("type") != "reply" or not isinstance(reply, dict):
            raise _param_error("Param interactive['action']['buttons'][0]['type'] must be one of {REPLY}.")
        button_id, title = str(reply.get("id") or ""), str(reply.get("title") or "")
        if not 1 <= len(title) <= 20:
            raise _invalid("Button title length invalid. Min length: 1, Max length: 20")
        if not 1 <= len(button_id) <= 256:
            raise _invalid("Button id length invalid. Min length: 1, Max length: 256")
        if button_id in ids:
            raise _invalid("Button id is duplicate. Button ids must be unique")
        if title in titles:
            raise _invalid("Button title is duplicate. Button titles must be unique")
        ids.add(button_id)
        titles.add(title)


def _validate_list(action: JSONDict) -> None:
    button = str(action.get("button") or "")
    if not 1 <= len(button) <= 20:
        raise _invalid("Button text length invalid. Min length: 1, Max length: 20")
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise _param_error("The parameter interactive['action']['sections'] is required.")
    if len(sections) > 10:
        raise _invalid("Sections count invalid. Min allowed sections: 1, Max allowed sections: 10")
    total, ids = 0, set()
    for section in sections:
        rows = section.get("rows") if isinstance(section, dict) else None
        if not isinstance(rows, list) or not rows:
            raise _param_error("The parameter interactive['action']['sections'][0]['rows'] is required.")
        title = section.get("title")
        if len(sections) > 1 and not title:
            raise _invalid("Section title is required when there is more than one section")
        if title and len(str(title)) > 24:
            raise _invalid("Section title length invalid. Min length: 1, Max length: 24")
        for row in rows:
            total += 1
            row_id, row_title = str(row.get("id") or ""), str(row.get("title") or "")
            if not 1 <= len(row_title) <= 24:
                raise _invalid("Row title length invalid. Min length: 1, Max length: 24")
            if not 1 <= len(row_id) <= 200:
                raise _invalid("Row id length invalid. Min length: 1, Max length: 200")
            if len(str(row.get("description") or "")) > 72:
                raise _invalid("Row description length invalid. Max length: 72")
            if row_id in ids:
                raise _invalid("Row id is duplicate. Row ids must be unique")
            ids.add(row_id)
    if total > 10:
        raise _invalid(f"Total row count exceed max allowed count: 10 (got {total})")


# --------------------------------------------------------------------------------------------
# Webhook payloads, as Meta POSTs them to the bot
# --------------------------------------------------------------------------------------------


def _envelope(value: JSONDict, *, phone_number_id: str, display_phone_number: str, waba_id: str) -> JSONDict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_phone_number,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def _inbound(
    wa_id: str,
    kind: str,
    fields: JSONDict,
    *,
    msg_id: str | None,
    name: str,
    timestamp: int | None,
    context_id: str | None,
    phone_number_id: str,
    display_phone_number: str,
    waba_id: str,
) -> JSONDict:
    message: JSONDict = {}
    if context_id:
        message["context"] = {"from": display_phone_number, "id": context_id}
    message.update(
        {"from": wa_id, "id": msg_id or new_wamid(wa_id), "timestamp": str(timestamp or int(time.time()))}
    )
    message.update(fields)
    message["type"] = kind
    value = {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]}
    return _envelope(
        value, phone_number_id=phone_number_id, display_phone_number=display_phone_number, waba_id=waba_id
    )


def text_message_payload(
    wa_id: str,
    text: str,
    msg_id: str | None = None,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    name: str = "Test User",
    *,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
    waba_id: str = DEFAULT_WABA_ID,
    timestamp: int | None = None,
    context_id: str | None = None,
) -> JSONDict:
    """A user's text message (with `context_id`: a reply to the business message of that id)."""
    return _inbound(
        wa_id,
        "text",
        {"text": {"body": text}},
        msg_id=msg_id,
        name=name,
        timestamp=timestamp,
        context_id=context_id,
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        waba_id=waba_id,
    )


def interactive_reply_payload(
    wa_id: str,
    button_id: str,
    title: str,
    kind: str = "button_reply",
    *,
    description: str | None = None,
    context_id: str | None = None,
    msg_id: str | None = None,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    name: str = "Test User",
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
    waba_id: str = DEFAULT_WABA_ID,
    timestamp: int | None = None,
) -> JSONDict:
    """A tap on a reply button (`button_reply`) or a list row (`list_reply`)."""
    if kind not in ("button_reply", "list_reply"):
        raise ValueError("kind must be 'button_reply' or 'list_reply'")
    reply: JSONDict = {"id": button_id, "title": title}
    if kind == "list_reply" and description is not None:
        reply["description"] = description
    return _inbound(
        wa_id,
        "interactive",
        {"interactive": {"type": kind, kind: reply}},
        msg_id=msg_id,
        name=name,
        timestamp=timestamp,
        # Replies to interactive messages always carry the context of the message tapped.
        context_id=context_id or new_wamid(wa_id),
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        waba_id=waba_id,
    )


def _media(mime_type: str, **extra: Any) -> JSONDict:
    return {
        "mime_type": mime_type,
        "sha256": base64.b64encode(secrets.token_bytes(32)).decode(),
        "id": str(10**15 + secrets.randbelow(10**15)),
        **extra,
    }


def media_message_payload(
    wa_id: str,
    kind: str,
    *,
    caption: str | None = None,
    filename: str = "document.pdf",
    latitude: float = 59.4427,
    longitude: float = 24.7363,
    emoji: str = "👍",
    reacted_message_id: str | None = None,
    unsupported_type: str = "poll_creation",
    msg_id: str | None = None,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    name: str = "Test User",
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
    waba_id: str = DEFAULT_WABA_ID,
    timestamp: int | None = None,
) -> JSONDict:
    """A non-text message: image, audio, voice (audio with voice=true), video, document,
    sticker, location, contacts, reaction or unsupported (what Meta sends for polls, edits...)."""
    fields: JSONDict
    message_type = kind
    if kind == "image":
        fields = {"image": _media("image/jpeg", **({"caption": caption} if caption else {}))}
    elif kind in ("audio", "voice"):
        message_type = "audio"
        fields = {"audio": _media("audio/ogg; codecs=opus", voice=kind == "voice")}
    elif kind == "video":
        fields = {"video": _media("video/mp4", **({"caption": caption} if caption else {}))}
    elif kind == "document":
        extra = {"filename": filename, **({"caption": caption} if caption else {})}
        fields = {"document": _media("application/pdf", **extra)}
    elif kind == "sticker":
        fields = {"sticker": _media("image/webp", animated=False)}
    elif kind == "location":
        fields = {"location": {"latitude": latitude, "longitude": longitude}}
    elif kind == "contacts":
        fields = {
            "contacts": [
                {
                    "name": {"formatted_name": "Test Contact", "first_name": "Test"},
                    "phones": [{"phone": "+372 5551 2345", "wa_id": "37255512345", "type": "CELL"}],
                }
            ]
        }
    elif kind == "reaction":
        fields = {"reaction": {"message_id": reacted_message_id or new_wamid(wa_id), "emoji": emoji}}
    elif kind == "unsupported":
        fields = {
            "errors": [
                {
                    "code": 131051,
                    "title": "Message type unknown",
                    "message": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ],
            "unsupported": {"type": unsupported_type},
        }
    else:
        raise ValueError(f"unknown media kind {kind!r}")
    return _inbound(
        wa_id,
        message_type,
        fields,
        msg_id=msg_id,
        name=name,
        timestamp=timestamp,
        context_id=None,
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        waba_id=waba_id,
    )


def status_payload(
    wamid: str,
    status: str,
    recipient_id: str = DEFAULT_WA_ID,
    *,
    error_code: int = 131026,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
    waba_id: str = DEFAULT_WABA_ID,
    timestamp: int | None = None,
) -> JSONDict:
    """A delivery status (sent, delivered, read, failed) of a message the business sent."""
    if status not in ("sent", "delivered", "read", "failed"):
        raise ValueError("status must be sent, delivered, read or failed")
    now = timestamp or int(time.time())
    entry: JSONDict = {"id": wamid, "status": status, "timestamp": str(now), "recipient_id": recipient_id}
    if status in ("sent", "delivered"):
        entry["conversation"] = {
            "id": hashlib.md5(recipient_id.encode()).hexdigest(),
            "expiration_timestamp": str(now + 24 * 3600),
            "origin": {"type": "service"},
        }
        entry["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    elif status == "failed":
        message, details = KNOWN_ERRORS.get(error_code, (f"(#{error_code}) Error", None))
        title = re.sub(r"^\(#\d+\)\s*", "", message)
        entry["errors"] = [
            {
                "code": error_code,
                "title": title,
                "message": title,
                "error_data": {"details": details or title},
                "href": ERROR_CODES_URL,
            }
        ]
    return _envelope(
        {"statuses": [entry]},
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        waba_id=waba_id,
    )


def verification_params(verify_token: str, challenge: str = "1158201444") -> dict[str, str]:
    """Query parameters of Meta's GET that verifies a webhook URL (answer: the challenge)."""
    return {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}


def encode_webhook_body(payload: JSONDict) -> bytes:
    """The bytes Meta sends: compact JSON, non-ASCII as \\uXXXX (lowercase hex), "/" as "\\/"."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header value: "sha256=" + HMAC-SHA256(app secret, raw body)."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_headers(body: bytes, app_secret: str) -> dict[str, str]:
    sha1 = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha1).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "facebookexternalua",
        "X-Hub-Signature": f"sha1={sha1}",
        "X-Hub-Signature-256": sign(body, app_secret),
    }


async def deliver_webhook(
    url: str, payload: JSONDict, app_secret: str = DEFAULT_APP_SECRET, *, timeout: float = 10.0
) -> httpx.Response:
    """POST a webhook payload to the bot exactly as Meta does (bytes, signature headers)."""
    body = encode_webhook_body(payload)
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(url, content=body, headers=webhook_headers(body, app_secret))
