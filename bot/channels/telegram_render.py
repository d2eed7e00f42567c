"""Our outgoing messages as Telegram messages: HTML that cannot break, keyboards, 4,096-character parts.

Answers are plain text written by admins (docs/content.md); every character of it is escaped, so
a ``<`` or ``&`` in an answer or a user's name can never make Telegram reject the message.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.messages import Button, Link, OutgoingMessage

TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4,096, counted after the HTML is parsed
CALLBACK_DATA_LIMIT = InlineKeyboardButtonLimit.MAX_CALLBACK_DATA  # 64 bytes
_TOKEN_PREFIX = "#"  # no payload of ours starts with it (bot/messages.py)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# Shorter labels fit two to a row on a phone; longer ones get a row each.
_TWO_COLUMNS_MAX_LABEL = 18

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


@dataclass(frozen=True)
class TelegramMessage:
    """One sendMessage call: HTML text (parse mode HTML) and its keyboard, if any."""

    html: str
    reply_markup: Markup | None = None


@dataclass(frozen=True)
class LocationRequest:
    """The "share my location" keyboard, in the user's language."""

    label: str
    prompt: str  # the text of its own message, when the answer already carries inline buttons


class CallbackData:
    """Button payloads as ``callback_data``, which Telegram limits to 64 bytes.

    A payload that fits is sent as it is, so any worker understands it. A longer one becomes a
    short token derived from the payload: workers that were given the same known payloads
    (every topic and language) decode it the same way, without shared state.
    """

    def __init__(self, known_payloads: Iterable[str] = ()) -> None:
        self._payloads: dict[str, str] = {}
        for payload in known_payloads:
            self.encode(payload)

    def encode(self, payload: str) -> str:
        size = len(payload.encode("utf-8"))
        if 0 < size <= CALLBACK_DATA_LIMIT and not payload.startswith(_TOKEN_PREFIX):
            return payload
        digest = hashlib.sha256(payload.encode("utf-8")).digest()[:15]
        token = _TOKEN_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii")
        self._payloads[token] = payload
        return token

    def decode(self, data: str) -> str:
        """Our payload; an unknown token comes back unchanged (the engine calls it no longer valid)."""
        if data.startswith(_TOKEN_PREFIX):
            return self._payloads.get(data, data)
        return data


def utf16_length(text: str) -> int:
    """Telegram counts text in UTF-16 code units (an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


def render(
    message: OutgoingMessage,
    callback_data: CallbackData,
    location: LocationRequest | None = None,
    limit: int = TEXT_LIMIT,
) -> list[TelegramMessage]:
    """``message`` as one or more Telegram messages, in order; the keyboard goes on the last one."""
    blocks = [
        (html.escape(piece, quote=False), utf16_length(piece)) for piece in _pieces(message.text, limit)
    ]
    if message.links:
        blocks.append(_links_block(message.links))
    texts = _pack(blocks, limit)
    parts = [TelegramMessage(text) for text in texts[:-1]]
    last = texts[-1] if texts else ""
    if message.buttons:
        parts.append(TelegramMessage(last, inline_keyboard(message.buttons, callback_data)))
        if message.request_location and location:
            parts.append(
                TelegramMessage(html.escape(location.prompt, quote=False), location_keyboard(location))
            )
    elif message.request_location and location:
        parts.append(
            TelegramMessage(last or html.escape(location.prompt, quote=False), location_keyboard(location))
        )
    elif last:
        parts.append(TelegramMessage(last))
    return parts


def inline_keyboard(buttons: Sequence[Button], callback_data: CallbackData) -> InlineKeyboardMarkup:
    keys = [InlineKeyboardButton(b.label, callback_data=callback_data.encode(b.payload)) for b in buttons]
    columns = 2 if len(keys) > 3 and max(len(b.label) for b in buttons) <= _TWO_COLUMNS_MAX_LABEL else 1
    return InlineKeyboardMarkup([keys[i : i + columns] for i in range(0, len(keys), columns)])


def location_keyboard(location: LocationRequest) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        [[KeyboardButton(location.label, request_location=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def _links_block(links: Sequence[Link]) -> tuple[str, int]:
    lines = [
        f'<a href="{html.escape(link.url, quote=True)}">{html.escape(link.label or link.url, quote=False)}</a>'
        for link in links
    ]
    visible = sum(utf16_length(link.label or link.url) for link in links) + len(links) - 1
    return "\n".join(lines), visible


def _pack(blocks: Sequence[tuple[str, int]], limit: int) -> list[str]:
    """Join blocks with blank lines into as few texts as fit in ``limit`` visible characters."""
    texts: list[str] = []
    current: list[str] = []
    length = 0
    for block, size in blocks:
        if current and length + 2 + size > limit:
            texts.append("\n\n".join(current))
            current, length = [], 0
        length += size + (2 if current else 0)
        current.append(block)
    if current:
        texts.append("\n\n".join(current))
    return texts


def _pieces(text: str, limit: int) -> list[str]:
    """The paragraphs of ``text``; a paragraph over ``limit`` is cut at lines, then words."""
    pieces: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text.strip()):
        if paragraph.strip():
            pieces.extend(_cut(paragraph.strip("\n"), limit, ("\n", " ")))
    return pieces


def _cut(text: str, limit: int, separators: tuple[str, ...]) -> list[str]:
    if utf16_length(text) <= limit:
        return [text]
    if not separators:
        return _hard_cut(text, limit)
    separator, rest = separators[0], separators[1:]
    pieces: list[str] = []
    current = ""
    for unit in text.split(separator):
        candidate = f"{current}{separator}{unit}" if current else unit
        if utf16_length(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if utf16_length(unit) <= limit:
            current = unit
        else:
            *whole, current = _cut(unit, limit, rest)
            pieces.extend(whole)
    if current:
        pieces.append(current)
    return pieces


def _hard_cut(text: str, limit: int) -> list[str]:
    """Last resort for a "word" longer than a message: cut by characters, never inside one."""
    pieces: list[str] = []
    current: list[str] = []
    length = 0
    for char in text:
        size = utf16_length(char)
        if length + size > limit:
            pieces.append("".join(current))
            current, length = [], 0
        current.append(char)
        length += size
    pieces.append("".join(current))
    return pieces
