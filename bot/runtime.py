"""The running bot: the engine, the dispatcher in front of it, and the channels it speaks through."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.channels.base import Channel
from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.engine import ConversationEngine
from bot.messages import OutgoingMessage

log = logging.getLogger(__name__)


class UnknownChannel(LookupError):
    """A conversation belongs to a channel that is not running in this process."""


class Runtime:
    """What ``guichet serve`` runs. Channels hand incoming messages to ``dispatcher.accept``."""

    def __init__(self, config: Config, engine: ConversationEngine) -> None:
        self.config = config
        self.engine = engine
        self.storage = engine.storage
        self.events = engine.events
        self.channels: dict[str, Channel] = {}
        self.dispatcher = Dispatcher(engine, engine.storage, self.send)

    def add_channel(self, channel: Channel) -> None:
        self.channels[channel.name] = channel

    async def send(self, channel: str, address: str, messages: Sequence[OutgoingMessage]) -> None:
        """Send through the user's own channel (replies, staff messages, reminders)."""
        if channel not in self.channels:
            raise UnknownChannel(channel)
        await self.channels[channel].send(address, messages)

    async def start(self) -> None:
        for channel in self.channels.values():
            await channel.start()
            log.info("channel %s started", channel.name)
        await self.dispatcher.start()

    async def stop(self) -> None:
        # Finish the queued messages first: their answers still need the channels.
        await self.dispatcher.stop()
        for channel in reversed(list(self.channels.values())):
            await channel.stop()
        await self.engine.storage.close()
