"""What every channel offers the rest of the bot: sending, and its web routes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from starlette.routing import BaseRoute

from bot.messages import OutgoingMessage


class Channel(Protocol):
    """A messaging platform. Replies to incoming messages, and staff messages, go out through ``send``."""

    name: str
    # How long after the user's last message free text may still be sent (WhatsApp: 24 hours);
    # None when the platform sets no such limit.
    reply_window: dt.timedelta | None

    async def send(self, address: str, messages: Sequence[OutgoingMessage]) -> None:
        """Deliver ``messages`` to ``address`` in order (retrying transient failures)."""
        ...

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP routes (webhooks) this channel needs on the server; may be empty."""
        ...

    async def send_template(self, address: str, lang: str) -> bool:
        """Re-open a closed reply window with the configured template; False when none is set up."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
