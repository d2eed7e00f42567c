"""Our messages as WhatsApp Cloud API requests, within the platform's limits.

Buttons become reply buttons (at most 3) or a list message (more choices); links are written
into the text; texts too long for one message are split on paragraph boundaries, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.messages import Button, OutgoingMessage

JSONDict = dict[str, Any]

TEXT_LIMIT = 4096
INTERACTIVE_BODY_LIMIT = 1024
MAX_REPLY_BUTTONS = 3
BUTTON_TITLE_LIMIT = 20
MAX_LIST_ROWS = 10
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
LIST_BUTTON_LIMIT = 20

# Where a long text may be cut, from the most to the least natural place.
_SEPARATORS = ("\n\n", "\n", " ")


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut between paragraphs if possible,
    else between lines, else between words; each piece is a stretch of the original text."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    separator = next((s for s in _SEPARATORS if s in text), None)
    if separator is None:
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    pieces: list[str] = []
    current = ""
    for part in text.split(separator):
        candidate = f"{current}{separator}{part}" if current else part
        if len(candidate) <= limit:
            current = candidate
            continue
        if current.strip():
            pieces.append(current)
        if len(part) <= limit:
            current = part
        else:
            *complete, current = split_text(part, limit) or [""]
            pieces.extend(complete)
    if current.strip():
        pieces.append(current)
    return [piece.strip() for piece in pieces]


def shorten(label: str, limit: int) -> str:
    """``label`` cut to ``limit`` characters, with an ellipsis when cut."""
    label = " ".join(label.split())
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _unique_titles(labels: Sequence[str], limit: int) -> list[str]:
    """Shortened titles, made distinct (WhatsApp rejects two buttons with the same title)."""
    titles: list[str] = []
    for label in labels:
        title = shorten(label, limit) or "…"
        number = 2
        while title in titles:
            suffix = f" {number}"
            title = shorten(label, limit - len(suffix)) + suffix
            number += 1
        titles.append(title)
    return titles


def full_text(message: OutgoingMessage) -> str:
    """The text the user reads, links written out after it."""
    lines = [f"{link.label}: {link.url}" for link in message.links]
    return "\n\n".join([message.text.strip(), "\n".join(lines)]) if lines else message.text.strip()


def _text(to: str, body: str) -> JSONDict:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


def _interactive(to: str, interactive: JSONDict) -> JSONDict:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": interactive,
    }


def _reply_buttons(body: str, buttons: Sequence[Button]) -> JSONDict:
    titles = _unique_titles([b.label for b in buttons], BUTTON_TITLE_LIMIT)
    return {
        "type": "button",
        "body": {"text": body},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": b.payload, "title": title}}
                for b, title in zip(buttons, titles, strict=True)
            ]
        },
    }


def _list(body: str, buttons: Sequence[Button], list_button: str) -> JSONDict:
    titles = _unique_titles([b.label for b in buttons], ROW_TITLE_LIMIT)
    rows: list[JSONDict] = []
    for button, title in zip(buttons, titles, strict=True):
        row: JSONDict = {"id": button.payload, "title": title}
        if title != button.label:  # the whole label stays readable under the cut title
            row["description"] = shorten(button.label, ROW_DESCRIPTION_LIMIT)
        rows.append(row)
    return {
        "type": "list",
        "body": {"text": body},
        "action": {"button": shorten(list_button, LIST_BUTTON_LIMIT), "sections": [{"rows": rows}]},
    }


def _split_for_choices(text: str) -> tuple[list[str], str]:
    """Leading text messages, and the last part of the text, short enough to carry choices."""
    text = text.strip()
    pieces = split_text(text, INTERACTIVE_BODY_LIMIT)
    if len(pieces) <= 1:
        return [], text
    body = pieces[-1]  # a stretch at the very end of the text
    return split_text(text[: text.rfind(body)], TEXT_LIMIT), body


def render(message: OutgoingMessage, to: str, list_button: str) -> list[JSONDict]:
    """The ``/messages`` request bodies for ``message``, in sending order.

    ``list_button`` labels the button that opens a list (in the user's language).
    """
    text = full_text(message)
    buttons = list({b.payload: b for b in message.buttons}.values())  # ids must be unique
    if not buttons and not message.request_location:
        return [_text(to, piece) for piece in split_text(text)]
    leading, body = _split_for_choices(text)
    bodies = [_text(to, piece) for piece in leading]
    body = body or "…"  # an interactive message needs a body
    if not buttons:
        bodies.append(
            _interactive(
                to,
                {
                    "type": "location_request_message",
                    "body": {"text": body},
                    "action": {"name": "send_location"},
                },
            )
        )
    elif len(buttons) <= MAX_REPLY_BUTTONS:
        bodies.append(_interactive(to, _reply_buttons(body, buttons)))
    else:
        for start in range(0, len(buttons), MAX_LIST_ROWS):
            rows = buttons[start : start + MAX_LIST_ROWS]
            bodies.append(_interactive(to, _list(body, rows, list_button)))
    return bodies
