"""``guichet chat``: talk to the bot in a terminal; buttons become numbered choices."""

from __future__ import annotations

import asyncio
import sys
import uuid

from bot.engine import ConversationEngine
from bot.messages import IncomingMessage, Kind, OutgoingMessage

CHANNEL = "console"
_COMMANDS = {
    "/start": "start",
    "/help": "help",
    "/language": "language",
    "/human": "human",
    "/forget": "forget",
}


def render(message: OutgoingMessage) -> str:
    """The message as terminal text, choices numbered from 1."""
    lines = [message.text]
    lines += [f"  {link.label}: {link.url}" for link in message.links]
    lines += [f"  [{number}] {button.label}" for number, button in enumerate(message.buttons, start=1)]
    return "\n".join(lines)


def parse(line: str, offered: list[tuple[str, str]], user_id: str) -> IncomingMessage:
    """A typed line: a choice number, a /command, or text."""
    stripped = line.strip()
    if stripped.isdigit() and 1 <= int(stripped) <= len(offered):
        label, payload = offered[int(stripped) - 1]
        return IncomingMessage(CHANNEL, user_id, Kind.BUTTON, text=label, payload=payload)
    if stripped.lower() in _COMMANDS:
        return IncomingMessage(CHANNEL, user_id, Kind.COMMAND, payload=_COMMANDS[stripped.lower()])
    return IncomingMessage(CHANNEL, user_id, Kind.TEXT, text=line, message_id=uuid.uuid4().hex)


async def chat(engine: ConversationEngine, lang_hint: str | None = None) -> None:
    """Read lines from stdin until EOF or /quit, printing the bot's replies."""
    user_id = "console-" + uuid.uuid4().hex[:8]
    offered: list[tuple[str, str]] = []
    print("guichet chat: write in any language. /language, /human, /forget, /quit. Ctrl-D to leave.")
    start = IncomingMessage(CHANNEL, user_id, Kind.COMMAND, payload="start", language_hint=lang_hint)
    offered = _show(await engine.handle(start))
    loop = asyncio.get_running_loop()
    while True:
        print("> ", end="", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "/quit":
            break
        if not line.strip():
            continue
        offered = _show(await engine.handle(parse(line, offered, user_id))) or offered


def _show(replies: list[OutgoingMessage]) -> list[tuple[str, str]]:
    offered: list[tuple[str, str]] = []
    for reply in replies:
        print(render(reply), end="\n\n")
        offered = [(b.label, b.payload) for b in reply.buttons] or offered
    return offered
