"""A local stand-in for the Telegram Bot API (https://api.telegram.org), for tests.

It speaks the real wire format so python-telegram-bot runs unmodified against it:

* requests: ``/bot<token>/<method>`` by GET or POST, parameters in the query string, a JSON
  body, a form (``application/x-www-form-urlencoded``, what PTB 22 sends: every non-string
  value JSON-encoded, e.g. ``reply_markup``) or ``multipart/form-data`` (uploads, with
  ``attach://`` references); method names are case-insensitive, as on Telegram;
* responses: ``{"ok": true, "result": ...}`` with real objects (Message, User, ChatFullInfo,
  ForumTopic...), or ``{"ok": false, "error_code": N, "description": "...",
  "parameters": {...}}`` with Telegram's own descriptions for the mistakes it checks
  (HTML/MarkdownV2 that Telegram would reject, callback_data over 64 bytes, too long
  text, unknown message to edit, expired callback query, getUpdates while a webhook is set...).

The test side pushes updates (``push_text``, ``push_callback``, ``push_message``,
``push_update``) which a bot receives by long polling, inspects what the bot sent
(``calls``, ``sent_messages``, ``chat_history``) and injects failures (``fail_next``).
"""

from __future__ import annotations

import asyncio
import copy
import html
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .server import StandIn

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "123456789:TEST-standin-token_for-guichet-tests0"
BOT_USERNAME = "guichet_test_bot"

# Parameters whose value is a JSON-serialized object in form-encoded requests.
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "allowed_updates",
        "link_preview_options",
        "reply_parameters",
        "media",
        "results",
        "permissions",
        "reaction",
        "options",
        "menu_button",
        "rights",
        "input_message_content",
    }
)
# Parameters that are strings whatever they look like ("123" as a message text stays text).
STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "data",
        "title",
        "name",
        "description",
        "short_description",
        "url",
        "secret_token",
        "parse_mode",
        "action",
        "callback_query_id",
        "inline_message_id",
        "language_code",
        "emoji",
        "icon_custom_emoji_id",
        "ip_address",
        "address",
        "file_id",
        "phone_number",
        "first_name",
        "last_name",
        "business_connection_id",
    }
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
# What Telegram sends when allowed_updates was never set (or set to []).
DEFAULT_ALLOWED_UPDATES = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}
# Real methods the stand-in accepts without modelling their effect.
NOOP_TRUE_METHODS = frozenset(
    {
        "setmydescription",
        "setmyshortdescription",
        "setmyname",
        "setchatmenubutton",
        "setmydefaultadministratorrights",
        "setmessagereaction",
        "pinchatmessage",
        "unpinchatmessage",
        "unpinallchatmessages",
    }
)
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
DEFAULT_TOPIC_COLOR = 7322096

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are"
    " exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"

_NGINX_PAGE = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)


class ApiError(Exception):
    """A Bot API error answer: raised by method handlers, turned into the JSON error reply."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _cant_parse(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


# --------------------------------------------------------------------------------------------
# Text formatting: Telegram parses HTML / MarkdownV2 / Markdown server-side and answers with
# plain text plus entities, or rejects the message. Bots that build formatted answers from
# user content break exactly here, so the stand-in parses like Telegram does.
# --------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Entity offsets and lengths are counted in UTF-16 code units, as in the Bot API."""
    return len(text.encode("utf-16-le")) // 2


class _EntityBuilder:
    """Accumulates plain text and the entities opened/closed over it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length16 = 0
        self.entities: list[JSONDict] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length16 += utf16_len(text)

    def close(self, entity: JSONDict, start16: int) -> None:
        length = self.length16 - start16
        if length > 0:
            self.entities.append({**entity, "offset": start16, "length": length})

    def result(self) -> tuple[str, list[JSONDict]]:
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ATTR = re.compile(r"""([A-Za-z_][\w-]*)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _unescape_html(chunk: str) -> str:
    return _HTML_ENTITY.sub(lambda m: html.unescape(m.group(0)), chunk)


def parse_html(text: str) -> tuple[str, list[JSONDict]]:
    """Parse Telegram's HTML subset; raise ApiError with Telegram's wording when it would."""
    out = _EntityBuilder()
    stack: list[tuple[str, JSONDict | None, int]] = []
    i, n = 0, len(text)
    while i < n:
        lt = text.find("<", i)
        if lt == -1:
            out.add(_unescape_html(text[i:]))
            break
        if lt > i:
            out.add(_unescape_html(text[i:lt]))
        offset = _byte_offset(text, lt)
        gt = text.find(">", lt)
        if text.startswith("</", lt):
            if gt == -1:
                raise _cant_parse(f"Unclosed end tag at byte offset {offset}")
            name = text[lt + 2 : gt].strip().lower()
            if not stack:
                raise _cant_parse(f"Unexpected end tag at byte offset {offset}")
            tag, entity, start16 = stack.pop()
            if name != tag:
                raise _cant_parse(
                    f'Unmatched end tag at byte offset {offset}, expected "</{tag}>", found "</{name}>"'
                )
            if entity is not None:
                out.close(entity, start16)
            i = gt + 1
            continue
        match = re.match(r"[A-Za-z][A-Za-z0-9-]*", text[lt + 1 :])
        name = match.group(0).lower() if match else ""
        if name not in _HTML_TAGS:
            raise bad_request(
                f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {offset}'
            )
        if gt == -1:
            raise _cant_parse(f"Unclosed start tag at byte offset {offset}")
        attrs = {
            m.group(1).lower(): _unescape_html(m.group(2) or m.group(3) or m.group(4) or "")
            for m in _HTML_ATTR.finditer(text[lt + 1 + len(name) : gt])
        }
        entity: JSONDict | None = {"type": _HTML_TAGS[name]}
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise bad_request(
                f'can\'t parse entities: Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        if name == "a":
            entity = {"type": "text_link", "url": attrs["href"]} if attrs.get("href") else None
        elif name == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attrs.get("emoji-id", "")}
        elif name == "blockquote" and "expandable" in attrs:
            entity = {"type": "expandable_blockquote"}
        elif (
            name == "code"
            and stack
            and stack[-1][0] == "pre"
            and attrs.get("class", "").startswith("language-")
        ):
            pre = stack[-1][1]
            if pre is not None:
                pre["language"] = attrs["class"].removeprefix("language-")
            entity = None
        stack.append((name, entity, out.length16))
        i = gt + 1
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
}


def parse_markdown_v2(text: str) -> tuple[str, list[JSONDict]]:
    """Parse MarkdownV2: unescaped reserved characters are rejected, as Telegram does."""
    out = _EntityBuilder()
    stack: list[tuple[str, int, int]] = []  # kind, start16, byte offset of the opening mark
    quote_start: int | None = None
    i, n = 0, len(text)

    def toggle(kind: str, width: int) -> None:
        opened = [entry for entry in stack if entry[0] == kind]
        if not opened:
            stack.append((kind, out.length16, _byte_offset(text, i)))
            return
        top_kind, start16, byte_off = stack[-1]
        if top_kind != kind:
            raise _cant_parse(f"Can't find end of {_MDV2_NAMES[top_kind]} entity at byte offset {byte_off}")
        stack.pop()
        out.close({"type": kind}, start16)

    while i < n:
        c = text[i]
        in_code = bool(stack) and stack[-1][0] in ("code", "pre")
        if c == "\\" and i + 1 < n:
            out.add(text[i + 1])
            i += 2
            continue
        if in_code:
            kind, start16, _ = stack[-1]
            if kind == "pre" and text.startswith("```", i):
                stack.pop()
                out.close({"type": "pre"}, start16)
                i += 3
            elif kind == "code" and c == "`":
                stack.pop()
                out.close({"type": "code"}, start16)
                i += 1
            else:
                out.add(c)
                i += 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            if quote_start is None:
                quote_start = out.length16
            i += 1
            continue
        if c == "\n" and quote_start is not None and not text.startswith(">", i + 1):
            out.close({"type": "blockquote"}, quote_start)
            quote_start = None
        if text.startswith("```", i):
            newline = text.find("\n", i + 3)
            stack.append(("pre", out.length16, _byte_offset(text, i)))
            i = newline + 1 if newline != -1 and re.fullmatch(r"[\w+-]*", text[i + 3 : newline]) else i + 3
            continue
        if c == "`":
            stack.append(("code", out.length16, _byte_offset(text, i)))
            i += 1
            continue
        if text.startswith("||", i):
            toggle("spoiler", 2)
            i += 2
            continue
        if text.startswith("__", i):
            toggle("underline", 2)
            i += 2
            continue
        if c in "*_~":
            toggle({"*": "bold", "_": "italic", "~": "strikethrough"}[c], 1)
            i += 1
            continue
        if c == "[":
            stack.append(("text_link", out.length16, _byte_offset(text, i)))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "text_link" and text.startswith("(", i + 1):
            close = i + 2
            url_chars: list[str] = []
            while close < n and text[close] != ")":
                if text[close] == "\\" and close + 1 < n:
                    close += 1
                url_chars.append(text[close])
                close += 1
            if close >= n:
                raise _cant_parse(f"Can't find end of a url at byte offset {_byte_offset(text, i + 1)}")
            _, start16, _ = stack.pop()
            out.close({"type": "text_link", "url": "".join(url_chars)}, start16)
            i = close + 1
            continue
        if c in _MDV2_RESERVED:
            raise _cant_parse(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        out.add(c)
        i += 1
    if quote_start is not None:
        out.close({"type": "blockquote"}, quote_start)
    if stack:
        kind, _, byte_off = stack[-1]
        raise _cant_parse(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {byte_off}")
    return out.result()


def parse_markdown(text: str) -> tuple[str, list[JSONDict]]:
    """Parse legacy Markdown (*bold*, _italic_, `code`, ```pre```, [text](url))."""
    out = _EntityBuilder()
    i, n = 0, len(text)
    marks = {"*": "bold", "_": "italic", "`": "code"}
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "*_`[":
            out.add(text[i + 1])
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end == -1:
                raise _cant_parse(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            start16 = out.length16
            out.add(text[i + 3 : end])
            out.close({"type": "pre"}, start16)
            i = end + 3
            continue
        if c in marks or c == "[":
            closing = "]" if c == "[" else c
            end = text.find(closing, i + 1)
            if end == -1 or (c == "[" and not text.startswith("(", end + 1)):
                raise _cant_parse(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            start16 = out.length16
            out.add(text[i + 1 : end])
            if c == "[":
                url_end = text.find(")", end + 2)
                if url_end == -1:
                    raise _cant_parse(
                        f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                    )
                out.close({"type": "text_link", "url": text[end + 2 : url_end]}, start16)
                i = url_end + 1
            else:
                out.close({"type": marks[c]}, start16)
                i = end + 1
            continue
        out.add(c)
        i += 1
    return out.result()


def format_text(
    text: str, parse_mode: str | None, entities: list[JSONDict] | None
) -> tuple[str, list[JSONDict]]:
    """Plain text and entities of a message, as Telegram stores it."""
    if entities:
        return text, entities
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    if mode:
        raise bad_request(f"unsupported parse_mode {parse_mode}")
    return text, []


# --------------------------------------------------------------------------------------------
# Content factories for push_message(): the shapes Telegram sends in incoming updates.
# --------------------------------------------------------------------------------------------

_file_counter = itertools.count(1)


def _file_ids(kind: str) -> JSONDict:
    number = next(_file_counter)
    return {"file_id": f"{kind}-file-{number:06d}", "file_unique_id": f"{kind[:2]}U{number:06d}"}


def photo_content(width: int = 1280, height: int = 960) -> list[JSONDict]:
    """A `photo` field: the PhotoSize list Telegram sends, smallest first."""
    small = {**_file_ids("photo"), "file_size": 1432, "width": 90, "height": round(90 * height / width)}
    large = {**_file_ids("photo"), "file_size": 98112, "width": width, "height": height}
    return [small, large]


def voice_content(duration: int = 3) -> JSONDict:
    return {
        **_file_ids("voice"),
        "duration": duration,
        "mime_type": "audio/ogg",
        "file_size": 9000 * duration,
    }


def audio_content(duration: int = 60, title: str = "Song") -> JSONDict:
    return {
        **_file_ids("audio"),
        "duration": duration,
        "title": title,
        "mime_type": "audio/mpeg",
        "file_size": 960000,
    }


def document_content(file_name: str = "document.pdf", mime_type: str = "application/pdf") -> JSONDict:
    return {**_file_ids("document"), "file_name": file_name, "mime_type": mime_type, "file_size": 24576}


def sticker_content(emoji: str = "👍") -> JSONDict:
    return {
        **_file_ids("sticker"),
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": emoji,
        "set_name": "TestStickers",
        "file_size": 20480,
    }


def location_content(latitude: float = 59.4427, longitude: float = 24.7363) -> JSONDict:
    return {"latitude": latitude, "longitude": longitude}


def contact_content(
    phone_number: str = "+37255512345", first_name: str = "Test", user_id: int | None = None
) -> JSONDict:
    contact: JSONDict = {"phone_number": phone_number, "first_name": first_name}
    if user_id is not None:
        contact["user_id"] = user_id
    return contact


async def post_webhook(
    url: str, update: JSONDict, secret_token: str | None = None, *, timeout: float = 10.0
) -> httpx.Response:
    """Deliver one update to a bot's webhook the way Telegram does (JSON POST + secret header)."""
    headers = {"Content-Type": "application/json"}
    if secret_token:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
    body = json.dumps(update, ensure_ascii=False).encode("utf-8")
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(url, content=body, headers=headers)


# --------------------------------------------------------------------------------------------
# The stand-in server.
# --------------------------------------------------------------------------------------------


@dataclass
class _Injection:
    method: str  # lower-case method name, or "*" for any method but getUpdates
    remaining: int
    status: int = 0
    description: str = ""
    parameters: JSONDict | None = None
    delay: float = 0.0

    def matches(self, method: str) -> bool:
        return self.method == method or (self.method == "*" and method != "getupdates")


@dataclass
class _Result:
    """A method result plus the optional `description` Telegram adds (setWebhook...)."""

    value: Any
    description: str | None = None


@dataclass
class _Topic:
    name: str
    icon_color: int
    closed: bool = False
    icon_custom_emoji_id: str | None = None


@dataclass
class _Poller:
    generation: int = 0


class TelegramBotAPI(StandIn):
    """Stand-in for https://api.telegram.org; point PTB at `base_url` (and `base_file_url`).

    `token` is the only token accepted (401 Unauthorized otherwise); pass `token=None` to
    accept any. With `strict_chats=True` sending to a chat no update came from fails with
    "chat not found" instead of creating a private chat on the fly.
    """

    name = "telegram-standin"

    def __init__(
        self,
        token: str | None = DEFAULT_TOKEN,
        *,
        bot_username: str = BOT_USERNAME,
        bot_first_name: str = "Guichet Test Bot",
        strict_chats: bool = False,
    ):
        self.token = token
        bot_id = int(token.split(":", 1)[0]) if token and token.split(":", 1)[0].isdigit() else 123456789
        self.bot_user: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.strict_chats = strict_chats
        self._lock = threading.RLock()
        self._methods: dict[str, Callable[[JSONDict], Any]] = {
            "getme": self._get_me,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "sendchataction": self._send_chat_action,
            "sendlocation": self._send_location,
            "senddocument": self._send_document,
            "sendphoto": self._send_photo,
            "leavechat": self._leave_chat,
            "getchat": self._get_chat,
            "createforumtopic": self._create_forum_topic,
            "closeforumtopic": self._close_forum_topic,
            "reopenforumtopic": self._reopen_forum_topic,
            "editforumtopic": self._edit_forum_topic,
            "deleteforumtopic": self._delete_forum_topic,
            "getfile": self._get_file,
        }
        self._reset_state()
        super().__init__()

    def _reset_state(self) -> None:
        with self._lock:
            self.calls: list[tuple[str, JSONDict]] = []
            self._sent_messages: list[JSONDict] = []
            self._updates: list[JSONDict] = []
            self._next_update_id = 100_000_001
            self._poller = _Poller()
            self._allowed_updates: list[str] | None = None
            self._webhook: JSONDict | None = None
            self._chats: dict[int, JSONDict] = {}
            self._left: set[int] = set()
            self._blocked: set[int] = set()
            self._message_ids: dict[int, int] = {}
            self._messages: dict[tuple[int, int], JSONDict] = {}
            self._history: dict[int, list[int]] = {}
            self._callback_queries: dict[str, bool] = {}
            self._callback_counter = itertools.count(1)
            self._commands: dict[tuple[str, str], list[JSONDict]] = {}
            self._topics: dict[tuple[int, int], _Topic] = {}
            self._files: dict[str, tuple[JSONDict, bytes]] = {}
            self._injections: list[_Injection] = []

    def reset(self) -> None:
        """Forget everything (updates, chats, calls, failures): for a server shared by tests."""
        self._reset_state()

    # ----------------------------------------------------------------------------------------
    # URLs
    # ----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For `Application.builder().base_url(...)` / `Bot(token, base_url=...)`."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    def build_app(self) -> ASGIApp:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._handle, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._download, methods=["GET"]),
            ]
        )

    # ----------------------------------------------------------------------------------------
    # Test API: incoming updates
    # ----------------------------------------------------------------------------------------

    def _take_update_id(self) -> int:
        with self._lock:
            update_id = self._next_update_id
            self._next_update_id += 1
            return update_id

    def _user(
        self,
        user_id: int,
        *,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def _ensure_chat(
        self,
        chat_id: int,
        *,
        user: JSONDict | None = None,
        chat_type: str | None = None,
        title: str | None = None,
        is_forum: bool | None = None,
    ) -> JSONDict:
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                kind = chat_type or (
                    "private" if chat_id > 0 else "supergroup" if str(chat_id).startswith("-100") else "group"
                )
                chat = {"id": chat_id, "type": kind}
                if kind == "private":
                    source = user or {"first_name": f"User{chat_id}"}
                    for key in ("first_name", "last_name", "username"):
                        if key in source:
                            chat[key] = source[key]
                else:
                    chat["title"] = title or "Test group"
                self._chats[chat_id] = chat
            if is_forum is not None and chat["type"] == "supergroup":
                if is_forum:
                    chat["is_forum"] = True
                else:
                    chat.pop("is_forum", None)
            self._left.discard(chat_id)
            return chat

    def _store_message(self, message: JSONDict) -> JSONDict:
        """Give a message its per-chat id (shared by both sides, as in Telegram) and keep it."""
        with self._lock:
            chat_id = message["chat"]["id"]
            if "message_id" not in message:
                message["message_id"] = self._message_ids.get(chat_id, 0) + 1
            self._message_ids[chat_id] = max(self._message_ids.get(chat_id, 0), message["message_id"])
            message.setdefault("date", int(time.time()))
            self._messages[(chat_id, message["message_id"])] = message
            self._history.setdefault(chat_id, []).append(message["message_id"])
            return message

    def message_update(
        self,
        chat_id: int,
        user_id: int | None = None,
        *,
        language_code: str | None = "en",
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        chat_type: str | None = None,
        title: str | None = None,
        edited: bool = False,
        message_id: int | None = None,
        message_thread_id: int | None = None,
        reply_to_message_id: int | None = None,
        **content: Any,
    ) -> JSONDict:
        """Build (and store, but not queue) an update carrying a user's message.

        `content` holds the message fields: text=..., photo=photo_content(), voice=...,
        location=..., sticker=..., document=..., contact=..., caption=...
        With `edited=True` it is an `edited_message` of `message_id` (required then).
        """
        user = self._user(
            chat_id if user_id is None else user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        chat = self._ensure_chat(chat_id, user=user, chat_type=chat_type, title=title)
        message: JSONDict = {"from": user, "chat": copy.deepcopy(chat), **content}
        text = content.get("text")
        if isinstance(text, str) and text.startswith("/") and "entities" not in content:
            command = text.split()[0] if text.split() else text
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            message["is_topic_message"] = True
        if reply_to_message_id is not None:
            replied = self._messages.get((chat_id, reply_to_message_id))
            if replied is not None:
                message["reply_to_message"] = {k: v for k, v in replied.items() if k != "reply_to_message"}
        if edited:
            if message_id is None:
                raise ValueError("an edited message needs the message_id it edits")
            with self._lock:
                original = self._messages.get((chat_id, message_id), {})
                message["message_id"] = message_id
                message["date"] = original.get("date", int(time.time()))
                message["edit_date"] = int(time.time())
                self._messages[(chat_id, message_id)] = message
            return {"update_id": self._take_update_id(), "edited_message": message}
        if message_id is not None:
            message["message_id"] = message_id
        self._store_message(message)
        return {"update_id": self._take_update_id(), "message": message}

    def text_update(
        self, chat_id: int, text: str, user_id: int | None = None, language_code: str | None = "en", **kw: Any
    ) -> JSONDict:
        """Build (not queue) an update with a text message; commands get a bot_command entity."""
        return self.message_update(chat_id, user_id, language_code=language_code, text=text, **kw)

    def callback_update(
        self,
        chat_id: int,
        data: str,
        message_id: int,
        user_id: int | None = None,
        language_code: str | None = "en",
        *,
        first_name: str = "Test",
        username: str | None = None,
    ) -> JSONDict:
        """Build (not queue) a callback_query update: a tap on an inline button of `message_id`."""
        user = self._user(
            chat_id if user_id is None else user_id,
            first_name=first_name,
            last_name=None,
            username=username,
            language_code=language_code,
        )
        chat = self._ensure_chat(chat_id, user=user)
        with self._lock:
            stored = self._messages.get((chat_id, message_id))
            # An unknown or deleted message comes as an InaccessibleMessage (date 0).
            message = copy.deepcopy(stored) if stored else {"message_id": message_id, "date": 0, "chat": chat}
            query_id = f"{abs(chat_id) % 10**9:09d}{next(self._callback_counter):010d}"
            self._callback_queries[query_id] = False
        query = {
            "id": query_id,
            "from": user,
            "message": message,
            "chat_instance": str(-(abs(chat_id) * 7919 % 10**18)),
            "data": data,
        }
        return {"update_id": self._take_update_id(), "callback_query": query}

    def push_update(self, update: JSONDict) -> JSONDict:
        """Queue a raw update for getUpdates; update_id (and message_id/date) filled if missing."""
        update = dict(update)
        update.setdefault("update_id", self._take_update_id())
        for key in ("message", "edited_message", "channel_post", "edited_channel_post", "business_message"):
            message = update.get(key)
            if isinstance(message, dict) and "chat" in message and "message_id" not in message:
                self._store_message(message)
        with self._lock:
            self._updates.append(update)
            self._updates.sort(key=lambda u: u["update_id"])
        return update

    def push_text(
        self, chat_id: int, text: str, user_id: int | None = None, language_code: str | None = "en", **kw: Any
    ) -> JSONDict:
        """A user writes `text` in `chat_id` (private chat if positive); returns the update."""
        return self.push_update(self.text_update(chat_id, text, user_id, language_code, **kw))

    def push_message(self, chat_id: int, user_id: int | None = None, **kw: Any) -> JSONDict:
        """A user sends any message: push_message(1, photo=photo_content(), caption="..")."""
        return self.push_update(self.message_update(chat_id, user_id, **kw))

    def push_callback(
        self, chat_id: int, data: str, message_id: int, user_id: int | None = None, **kw: Any
    ) -> JSONDict:
        """A user taps the inline button carrying `data` under the bot's message `message_id`."""
        return self.push_update(self.callback_update(chat_id, data, message_id, user_id, **kw))

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._lock:
            return list(self._updates)

    def block(self, chat_id: int) -> None:
        """The user blocks the bot: sends to this chat now fail with 403 Forbidden."""
        with self._lock:
            self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        with self._lock:
            self._blocked.discard(chat_id)

    async def post_webhook(
        self, url: str, update: JSONDict, secret_token: str | None = None
    ) -> httpx.Response:
        """Deliver `update` to a webhook like Telegram (see module-level `post_webhook`)."""
        if secret_token is None and self._webhook is not None:
            secret_token = self._webhook.get("secret_token")
        return await post_webhook(url, update, secret_token)

    # ----------------------------------------------------------------------------------------
    # Test API: what the bot did
    # ----------------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[JSONDict]:
        """Parameters of every call to `method` (case-insensitive), in order, failed ones too."""
        wanted = method.lower()
        with self._lock:
            return [params for name, params in self.calls if name.lower() == wanted]

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSONDict]:
        """Parameters of the sendMessage calls that succeeded, optionally for one chat."""
        with self._lock:
            sent = list(self._sent_messages)
        if chat_id is None:
            return sent
        return [params for params in sent if str(params.get("chat_id")) == str(chat_id)]

    def sent_texts(self, chat_id: int | str | None = None) -> list[str]:
        return [str(params.get("text", "")) for params in self.sent_messages(chat_id)]

    def chat_history(self, chat_id: int) -> list[JSONDict]:
        """Current state (after edits/deletes) of every message of the chat, both sides, in order."""
        with self._lock:
            ids = self._history.get(chat_id, [])
            return [
                copy.deepcopy(self._messages[(chat_id, i)]) for i in ids if (chat_id, i) in self._messages
            ]

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        with self._lock:
            found = self._messages.get((chat_id, message_id))
            return copy.deepcopy(found) if found else None

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        with self._lock:
            return list(self._commands.get((_scope_key(scope), language_code), []))

    @property
    def webhook(self) -> JSONDict | None:
        """Current setWebhook parameters, or None when polling."""
        with self._lock:
            return dict(self._webhook) if self._webhook else None

    def callback_answered(self, query_id: str) -> bool:
        with self._lock:
            return self._callback_queries.get(query_id, False)

    async def wait_for_messages(
        self, chat_id: int | str, count: int, timeout: float = 10.0
    ) -> list[JSONDict]:
        """Wait (without blocking the test's loop) until `count` messages were sent to the chat."""
        deadline = time.monotonic() + timeout
        while True:
            sent = self.sent_messages(chat_id)
            if len(sent) >= count:
                return sent
            if time.monotonic() > deadline:
                recent = [name for name, _ in self.calls[-15:]]
                raise AssertionError(
                    f"expected {count} message(s) to chat {chat_id} within {timeout}s, got {len(sent)}:"
                    f" {[p.get('text') for p in sent]}; last calls: {recent}"
                )
            await asyncio.sleep(0.01)

    async def wait_for_calls(self, method: str, count: int = 1, timeout: float = 10.0) -> list[JSONDict]:
        """Wait until the bot called `method` at least `count` times; returns their parameters."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls_to(method)
            if len(calls) >= count:
                return calls
            if time.monotonic() > deadline:
                recent = [name for name, _ in self.calls[-15:]]
                raise AssertionError(
                    f"expected {count} call(s) to {method} within {timeout}s, got {len(calls)};"
                    f" last calls: {recent}"
                )
            await asyncio.sleep(0.01)

    # ----------------------------------------------------------------------------------------
    # Test API: failure injection
    # ----------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        count: int = 1,
        status: int = 429,
        retry_after: int = 1,
        *,
        description: str | None = None,
        parameters: JSONDict | None = None,
    ) -> None:
        """Answer the next `count` calls to `method` ("*": any but getUpdates) with an error.

        429 is Telegram's flood control (`parameters.retry_after`, which PTB turns into
        RetryAfter); 500 a JSON Internal Server Error; 502/504 nginx's HTML page, as
        api.telegram.org does when its backend is down; other statuses take `description`
        (e.g. 403 "Forbidden: bot was blocked by the user") and `parameters`
        (e.g. {"migrate_to_chat_id": -100123} for ChatMigrated).
        """
        if status == 429:
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after, **(parameters or {})}
        else:
            description = description or {
                400: "Bad Request",
                401: "Unauthorized",
                403: "Forbidden: bot was blocked by the user",
                404: "Not Found",
                409: "Conflict",
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
                504: "Gateway Timeout",
            }.get(status, "Error")
        with self._lock:
            self._injections.append(
                _Injection(
                    method.lower(), count, status=status, description=description, parameters=parameters
                )
            )

    def delay_next(self, method: str, seconds: float, count: int = 1) -> None:
        """Make the next `count` calls to `method` answer only after `seconds` (timeouts)."""
        with self._lock:
            self._injections.append(_Injection(method.lower(), count, delay=seconds))

    def clear_failures(self) -> None:
        with self._lock:
            self._injections.clear()

    def _take_injections(self, method: str) -> tuple[float, _Injection | None]:
        delay, failure = 0.0, None
        with self._lock:
            for injection in list(self._injections):
                if not injection.matches(method):
                    continue
                if injection.delay and not delay:
                    delay = injection.delay
                elif injection.status and failure is None:
                    failure = injection
                else:
                    continue
                injection.remaining -= 1
                if injection.remaining <= 0:
                    self._injections.remove(injection)
        return delay, failure

    # ----------------------------------------------------------------------------------------
    # HTTP layer
    # ----------------------------------------------------------------------------------------

    async def _read_params(self, request: Request) -> JSONDict:
        params: JSONDict = {}
        for key, value in request.query_params.multi_items():
            params[key] = _decode_value(key, value)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            raw = await request.body()
            if raw.strip():
                try:
                    data = json.loads(raw)
                except ValueError:
                    raise bad_request("can't parse JSON object") from None
                if not isinstance(data, dict):
                    raise bad_request("can't parse JSON object")
                for key, value in data.items():
                    params[key] = (
                        _decode_value(key, value) if isinstance(value, str) and key in JSON_FIELDS else value
                    )
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            files: dict[str, JSONDict] = {}
            async with request.form(max_part_size=50 * 1024 * 1024) as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        content = await value.read()
                        files[key] = {
                            "filename": value.filename,
                            "content_type": value.content_type,
                            "size": len(content),
                            "content": content,
                        }
                    else:
                        params[key] = _decode_value(key, value)
            for key, value in list(params.items()):
                if isinstance(value, str) and value.startswith("attach://"):
                    attached = files.pop(value.removeprefix("attach://"), None)
                    if attached is not None:
                        params[key] = attached
            params.update(files)
        return params

    def _check_token(self, token: str) -> ApiError | None:
        if not re.fullmatch(r"\d+:[\w-]+", token):
            return ApiError(404, "Not Found")
        if self.token is not None and token != self.token:
            return ApiError(401, "Unauthorized")
        return None

    async def _handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        key = method.lower()
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        with self._lock:
            self.calls.append((method, params))
        token_error = self._check_token(request.path_params["token"])
        if token_error is not None:
            return JSONResponse(token_error.body(), status_code=token_error.status)
        delay, failure = self._take_injections(key)
        if delay:
            await asyncio.sleep(delay)
        if failure is not None:
            return _error_response(failure)
        try:
            if key == "getupdates":
                result: Any = await self._get_updates(params)
            elif key in self._methods:
                with self._lock:
                    result = self._methods[key](params)
            elif key in NOOP_TRUE_METHODS:
                result = True
            else:
                raise ApiError(404, "Not Found: method not found")
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        body: JSONDict = {"ok": True}
        if isinstance(result, _Result):
            body["result"] = result.value
            if result.description:
                body["description"] = result.description
        else:
            body["result"] = result
        return JSONResponse(body)

    async def _download(self, request: Request) -> Response:
        if self._check_token(request.path_params["token"]) is not None:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)
        file_path = request.path_params["file_path"]
        with self._lock:
            for meta, content in self._files.values():
                if meta.get("file_path") == file_path:
                    return Response(content, media_type="application/octet-stream")
        return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)

    # ----------------------------------------------------------------------------------------
    # Methods
    # ----------------------------------------------------------------------------------------

    def _get_me(self, params: JSONDict) -> JSONDict:
        return dict(self.bot_user)

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        with self._lock:
            if self._webhook is not None:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active;"
                    " use deleteWebhook to delete the webhook first",
                )
            self._poller.generation += 1
            generation = self._poller.generation
            if "allowed_updates" in params and params["allowed_updates"] is not None:
                self._allowed_updates = list(params["allowed_updates"])
            self._confirm(params.get("offset"))
        limit = max(1, min(int(params.get("limit") or 100), 100))
        deadline = time.monotonic() + max(0.0, float(params.get("timeout") or 0))
        while True:
            with self._lock:
                if self._poller.generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request;"
                        " make sure that only one bot instance is running",
                    )
                ready = self._deliverable()
            if ready or time.monotonic() >= deadline or self._closing.is_set():
                return [copy.deepcopy(update) for update in ready[:limit]]
            await asyncio.sleep(0.01)

    def _confirm(self, offset: Any) -> None:
        if offset is None or offset == "":
            return
        offset = int(offset)
        if offset < 0:
            self._updates = self._updates[offset:]
        else:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

    def _deliverable(self) -> list[JSONDict]:
        allowed = set(self._allowed_updates) if self._allowed_updates else DEFAULT_ALLOWED_UPDATES
        kept = [u for u in self._updates if _update_type(u) in allowed or _update_type(u) is None]
        self._updates = kept
        return list(kept)

    def _set_webhook(self, params: JSONDict) -> _Result:
        url = params.get("url") or ""
        if not url:
            return self._delete_webhook(params)
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("secret token contains unallowed characters")
        self._webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": int(params.get("max_connections") or 40),
            "allowed_updates": params.get("allowed_updates"),
            "ip_address": params.get("ip_address"),
        }
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"])
        if params.get("drop_pending_updates"):
            self._updates = []
        return _Result(True, "Webhook was set")

    def _delete_webhook(self, params: JSONDict) -> _Result:
        if params.get("drop_pending_updates"):
            self._updates = []
        if self._webhook is None:
            return _Result(True, "Webhook is already deleted")
        self._webhook = None
        return _Result(True, "Webhook was deleted")

    def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            if self._webhook.get("ip_address"):
                info["ip_address"] = self._webhook["ip_address"]
        if self._allowed_updates is not None:
            info["allowed_updates"] = list(self._allowed_updates)
        return info

    def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request('parameter "commands" is required')
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        self._commands[(_scope_key(params.get("scope")), params.get("language_code") or "")] = cleaned
        return True

    def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return list(
            self._commands.get((_scope_key(params.get("scope")), params.get("language_code") or ""), [])
        )

    def _delete_my_commands(self, params: JSONDict) -> bool:
        self._commands.pop((_scope_key(params.get("scope")), params.get("language_code") or ""), None)
        return True

    # ---- chats ------------------------------------------------------------------------------

    def _resolve_chat_id(self, params: JSONDict) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username", "").lower() == raw[1:].lower():
                    return int(chat["id"])
            raise bad_request("chat not found")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def _chat_for_send(self, params: JSONDict) -> JSONDict:
        chat_id = self._resolve_chat_id(params)
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self._left:
            raise ApiError(403, "Forbidden: bot is not a member of the group chat")
        if chat_id not in self._chats and self.strict_chats:
            raise bad_request("chat not found")
        return self._ensure_chat(chat_id)

    def _get_chat(self, params: JSONDict) -> JSONDict:
        chat_id = self._resolve_chat_id(params)
        chat = self._chats.get(chat_id)
        if chat is None or chat_id in self._left:
            raise bad_request("chat not found")
        return {
            **chat,
            "accent_color_id": chat_id % 7,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _leave_chat(self, params: JSONDict) -> bool:
        chat_id = self._resolve_chat_id(params)
        if chat_id not in self._chats or chat_id in self._left:
            raise bad_request("chat not found")
        if self._chats[chat_id]["type"] == "private":
            raise bad_request("chat member status can't be changed in private chats")
        self._left.add(chat_id)
        return True

    # ---- messages ---------------------------------------------------------------------------

    def _thread(self, chat_id: int, params: JSONDict) -> int | None:
        thread_id = params.get("message_thread_id")
        if thread_id in (None, ""):
            return None
        thread_id = int(thread_id)
        topic = self._topics.get((chat_id, thread_id))
        if topic is None:
            raise bad_request("message thread not found")
        if topic.closed:
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    def _reply_to(self, chat_id: int, params: JSONDict) -> JSONDict | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            target_chat = reply.get("chat_id", chat_id)
            message_id = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply"))
        elif params.get("reply_to_message_id") not in (None, ""):
            target_chat, message_id = chat_id, params["reply_to_message_id"]
            allow_missing = bool(params.get("allow_sending_without_reply"))
        else:
            return None
        found = self._messages.get((int(target_chat), int(message_id)))
        if found is None:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return {k: v for k, v in found.items() if k != "reply_to_message"}

    def _bot_message(self, chat: JSONDict, params: JSONDict, content: JSONDict) -> JSONDict:
        chat_id = chat["id"]
        thread_id = self._thread(chat_id, params)
        reply_to = self._reply_to(chat_id, params)
        markup = _check_reply_markup(params.get("reply_markup"))
        message: JSONDict = {"from": dict(self.bot_user), "chat": copy.deepcopy(chat), **content}
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        if params.get("protect_content"):
            message["has_protected_content"] = True
        return self._store_message(message)

    def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._chat_for_send(params)
        raw = params.get("text")
        if raw is None or str(raw) == "":
            raise bad_request("message text is empty")
        text, entities = format_text(str(raw), params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        preview = params.get("link_preview_options")
        if isinstance(preview, dict) and preview:
            content["link_preview_options"] = preview
        message = self._bot_message(chat, params, content)
        self._sent_messages.append(params)
        return copy.deepcopy(message)

    def _editable(self, params: JSONDict) -> tuple[JSONDict | None, bool]:
        """The stored message an edit targets; (None, True) for inline messages."""
        if params.get("inline_message_id"):
            return None, True
        chat_id = self._resolve_chat_id(params)
        message_id = params.get("message_id")
        if message_id in (None, ""):
            raise bad_request("message identifier is not specified")
        message = self._messages.get((chat_id, int(message_id)))
        if message is None:
            raise bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise bad_request("message can't be edited")
        return message, False

    def _edit_message_text(self, params: JSONDict) -> Any:
        message, inline = self._editable(params)
        raw = params.get("text")
        if raw is None or str(raw) == "":
            raise bad_request("message text is empty")
        text, entities = format_text(str(raw), params.get("parse_mode"), params.get("entities"))
        if len(text) > TEXT_LIMIT:
            raise bad_request("MESSAGE_TOO_LONG")
        markup = _check_reply_markup(params.get("reply_markup"))
        if inline:
            return True
        assert message is not None
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        new_markup = markup if markup and "inline_keyboard" in markup else None
        if (
            message["text"] == text
            and message.get("entities", []) == entities
            and message.get("reply_markup") == new_markup
        ):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message["text"] = text
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
        # Like Telegram: an edit without reply_markup removes the inline keyboard.
        if new_markup:
            message["reply_markup"] = new_markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _edit_message_reply_markup(self, params: JSONDict) -> Any:
        message, inline = self._editable(params)
        markup = _check_reply_markup(params.get("reply_markup"))
        if inline:
            return True
        assert message is not None
        new_markup = markup if markup and "inline_keyboard" in markup and markup["inline_keyboard"] else None
        if message.get("reply_markup") == new_markup:
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        if new_markup:
            message["reply_markup"] = new_markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _delete_message(self, params: JSONDict) -> bool:
        chat_id = self._resolve_chat_id(params)
        key = (chat_id, int(params.get("message_id") or 0))
        if key not in self._messages:
            raise bad_request("message to delete not found")
        del self._messages[key]
        return True

    def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if self._callback_queries.get(query_id, True):  # unknown, or already answered
            raise bad_request(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        if len(str(params.get("text") or "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._callback_queries[query_id] = True
        return True

    def _send_chat_action(self, params: JSONDict) -> bool:
        chat = self._chat_for_send(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._thread(chat["id"], params)
        return True

    def _send_location(self, params: JSONDict) -> JSONDict:
        chat = self._chat_for_send(params)
        try:
            latitude, longitude = float(params["latitude"]), float(params["longitude"])
        except (KeyError, TypeError, ValueError):
            raise bad_request("wrong latitude or longitude specified") from None
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise bad_request("wrong latitude or longitude specified")
        location: JSONDict = {"latitude": latitude, "longitude": longitude}
        for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
            if params.get(key) is not None:
                location[key] = params[key]
        return copy.deepcopy(self._bot_message(chat, params, {"location": location}))

    def _caption(self, params: JSONDict) -> JSONDict:
        if params.get("caption") in (None, ""):
            return {}
        caption, entities = format_text(
            str(params["caption"]), params.get("parse_mode"), params.get("caption_entities")
        )
        if len(caption) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        content: JSONDict = {"caption": caption}
        if entities:
            content["caption_entities"] = entities
        return content

    def _register_file(
        self, kind: str, upload: Any, *, file_name: str | None = None
    ) -> tuple[JSONDict, bytes]:
        """A file_id for an upload, or the stored metadata of a re-sent file_id/URL."""
        if isinstance(upload, dict) and "content" in upload:
            ids = _file_ids(kind)
            content = upload["content"]
            meta = {
                **ids,
                "file_size": len(content),
                "file_name": upload.get("filename") or file_name or kind,
                "mime_type": upload.get("content_type") or "application/octet-stream",
                "file_path": f"{kind}s/file_{ids['file_unique_id']}",
            }
            self._files[ids["file_id"]] = (meta, content)
            return meta, content
        if isinstance(upload, str) and upload:
            if upload in self._files:
                return self._files[upload]
            if re.match(r"https?://", upload):
                ids = _file_ids(kind)
                meta = {**ids, "file_size": 1024, "file_name": upload.rsplit("/", 1)[-1] or kind}
                meta["mime_type"] = "application/octet-stream"
                meta["file_path"] = f"{kind}s/file_{ids['file_unique_id']}"
                self._files[ids["file_id"]] = (meta, b"\0" * 1024)
                return self._files[ids["file_id"]]
            raise bad_request("wrong file identifier/HTTP URL specified")
        raise bad_request(f"there is no {kind} in the request")

    def _send_document(self, params: JSONDict) -> JSONDict:
        chat = self._chat_for_send(params)
        meta, _ = self._register_file("document", params.get("document"))
        document = {k: meta[k] for k in ("file_id", "file_unique_id", "file_name", "mime_type", "file_size")}
        return copy.deepcopy(self._bot_message(chat, params, {"document": document, **self._caption(params)}))

    def _send_photo(self, params: JSONDict) -> JSONDict:
        chat = self._chat_for_send(params)
        meta, _ = self._register_file("photo", params.get("photo"))
        sizes = [
            {
                "file_id": meta["file_id"] + "-s",
                "file_unique_id": meta["file_unique_id"] + "s",
                "file_size": 1300,
                "width": 90,
                "height": 90,
            },
            {
                "file_id": meta["file_id"],
                "file_unique_id": meta["file_unique_id"],
                "file_size": meta["file_size"],
                "width": 800,
                "height": 800,
            },
        ]
        return copy.deepcopy(self._bot_message(chat, params, {"photo": sizes, **self._caption(params)}))

    def _get_file(self, params: JSONDict) -> JSONDict:
        file_id = str(params.get("file_id") or "")
        if file_id not in self._files:
            raise bad_request("invalid file_id")
        meta, _ = self._files[file_id]
        return {k: meta[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    def register_file(self, file_id: str, content: bytes, file_path: str | None = None) -> None:
        """Make a pushed file (e.g. voice_content()["file_id"]) downloadable through getFile."""
        with self._lock:
            unique = f"U{abs(hash(file_id)) % 10**8:08d}"
            meta = {
                "file_id": file_id,
                "file_unique_id": unique,
                "file_size": len(content),
                "file_path": file_path or f"files/{unique}",
            }
            self._files[file_id] = (meta, content)

    # ---- forum topics -----------------------------------------------------------------------

    def _forum_chat(self, params: JSONDict) -> JSONDict:
        chat_id = self._resolve_chat_id(params)
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats:
                raise bad_request("chat not found")
            chat = self._ensure_chat(chat_id, chat_type="supergroup", title="Test forum", is_forum=True)
        if chat["type"] != "supergroup" or not chat.get("is_forum"):
            raise bad_request("the chat is not a forum")
        return chat

    def _create_forum_topic(self, params: JSONDict) -> JSONDict:
        chat = self._forum_chat(params)
        name = str(params.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")
        color = int(params.get("icon_color") or DEFAULT_TOPIC_COLOR)
        # The topic id is the id of its "forum_topic_created" service message, as on Telegram.
        service = self._store_message(
            {
                "from": dict(self.bot_user),
                "chat": copy.deepcopy(chat),
                "forum_topic_created": {"name": name, "icon_color": color},
                "is_topic_message": True,
            }
        )
        thread_id = service["message_id"]
        service["message_thread_id"] = thread_id
        emoji = params.get("icon_custom_emoji_id")
        self._topics[(chat["id"], thread_id)] = _Topic(name, color, icon_custom_emoji_id=emoji)
        topic: JSONDict = {"message_thread_id": thread_id, "name": name, "icon_color": color}
        if emoji:
            topic["icon_custom_emoji_id"] = emoji
        return topic

    def _topic(self, params: JSONDict) -> tuple[tuple[int, int], _Topic]:
        chat = self._forum_chat(params)
        key = (chat["id"], int(params.get("message_thread_id") or 0))
        topic = self._topics.get(key)
        if topic is None:
            raise bad_request("TOPIC_ID_INVALID")
        return key, topic

    def _close_forum_topic(self, params: JSONDict) -> bool:
        _, topic = self._topic(params)
        if topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        return True

    def _reopen_forum_topic(self, params: JSONDict) -> bool:
        _, topic = self._topic(params)
        if not topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = False
        return True

    def _edit_forum_topic(self, params: JSONDict) -> bool:
        _, topic = self._topic(params)
        if params.get("name"):
            topic.name = str(params["name"])
        return True

    def _delete_forum_topic(self, params: JSONDict) -> bool:
        key, _ = self._topic(params)
        del self._topics[key]
        return True

    def topic(self, chat_id: int, message_thread_id: int) -> JSONDict | None:
        """{"name", "icon_color", "closed"} of a topic the bot created, or None."""
        with self._lock:
            found = self._topics.get((chat_id, message_thread_id))
            return (
                None
                if found is None
                else {"name": found.name, "icon_color": found.icon_color, "closed": found.closed}
            )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _decode_value(key: str, value: Any) -> Any:
    """Undo PTB's form encoding: JSON for objects/numbers/booleans, raw for strings."""
    if not isinstance(value, str):
        return value
    if key in STRING_FIELDS:
        return value
    if key in JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            noun = "reply keyboard markup" if key == "reply_markup" else key
            raise bad_request(f"can't parse {noun} JSON object") from None
    if value in ("true", "false") or re.fullmatch(r"-?\d+(\.\d+)?", value):
        try:
            return json.loads(value)
        except ValueError:  # "0612": not a JSON number, so a string
            return value
    return value


def _scope_key(scope: Any) -> str:
    if not scope:
        return json.dumps({"type": "default"})
    return json.dumps(scope, sort_keys=True)


def _update_type(update: JSONDict) -> str | None:
    for key in update:
        if key in UPDATE_TYPES:
            return key
    return None


def _check_reply_markup(markup: Any) -> JSONDict | None:
    """Validate reply_markup like Telegram does for the checks bots most often trip."""
    if markup in (None, "", {}):
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
            )
        if sum(len(row) for row in rows) > 100:
            raise bad_request("reply markup is too long")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                actions = set(button) - {"text", "style", "icon_custom_emoji_id"}
                if not actions:
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode("utf-8")
                    if not 1 <= len(data) <= CALLBACK_DATA_LIMIT:
                        raise bad_request("BUTTON_DATA_INVALID")
                if "url" in button and not re.match(r"(https?|tg)://\S+$", str(button["url"])):
                    raise bad_request(
                        f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL"
                    )
        return markup
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "keyboard" of the ReplyKeyboardMarkup should be an Array of Arrays')
        for row in rows:
            for button in row:
                text = (
                    button
                    if isinstance(button, str)
                    else button.get("text")
                    if isinstance(button, dict)
                    else None
                )
                if not text:
                    raise bad_request("keyboard button text is empty")
        return markup
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise bad_request("can't parse reply keyboard markup JSON object")


def _error_response(failure: _Injection) -> Response:
    if failure.status in (502, 504):
        page = _NGINX_PAGE.format(code=failure.status, phrase=failure.description)
        return HTMLResponse(page, status_code=failure.status)
    error = ApiError(failure.status, failure.description, failure.parameters)
    return JSONResponse(error.body(), status_code=failure.status)
