"""From accepted message to delivered reply: once, in order, and never lost.

Channels call :meth:`Dispatcher.accept` from their webhook or poller. It drops redeliveries
(the same platform message id is processed once, whichever worker receives it), stores the
message durably in the user's inbox, and returns at once, so the webhook can answer 200.
Each user's inbox is then drained in order under the user's lock: the engine answers, the
channel sends, and only then is the message acknowledged. A worker that dies mid-message
leaves it in the inbox; :meth:`Dispatcher.recover` (run at start and periodically) picks it up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.engine import ConversationEngine
from bot.messages import IncomingMessage, OutgoingMessage
from bot.storage import Lease, Storage, StorageUnavailable

log = logging.getLogger(__name__)

Sender = Callable[[str, str, Sequence[OutgoingMessage]], Awaitable[None]]

_SEND_ATTEMPTS = 6
_PROCESSING_AT_ONCE = 8


class Dispatcher:
    """Durable per-user inboxes in front of the engine."""

    def __init__(self, engine: ConversationEngine, storage: Storage, send: Sender) -> None:
        self.engine = engine
        self.storage = storage
        self._send = send
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # users who wrote while their inbox was being drained
        self._recovery: asyncio.Task[None] | None = None
        self._processing = asyncio.Semaphore(_PROCESSING_AT_ONCE)

    async def accept(self, message: IncomingMessage) -> bool:
        """Store ``message`` for processing; False for a redelivery of a message already accepted.

        Raises :class:`StorageUnavailable` when it cannot be stored: the caller must then refuse
        the delivery (HTTP 503) so that the platform retries it later.
        """
        key = self.engine.key_for(message.channel, message.user_id)
        delivery = f"{message.channel}:{message.message_id}" if message.message_id else None
        if not await self.storage.accept_incoming(key, message, delivery):
            log.info("redelivered %s message dropped", message.channel)
            return False
        self._drain_soon(key)
        return True

    def _drain_soon(self, key: str) -> None:
        task = self._draining.get(key)
        if task is not None and not task.done():
            self._again.add(key)  # it may have found the inbox empty just before this message
            return
        self._draining[key] = task = asyncio.get_running_loop().create_task(self._drain(key))
        task.add_done_callback(functools.partial(self._drained, key))

    def _drained(self, key: str, task: asyncio.Task[None]) -> None:
        """Forget a finished drain (one per user ever seen would add up), unless a newer one runs."""
        if self._draining.get(key) is task:
            del self._draining[key]

    async def _drain(self, key: str) -> None:
        """Process the user's inbox in order until it is empty."""
        while True:
            self._again.discard(key)
            try:
                async with self.storage.user_lock(key) as lease:
                    message = await self.storage.peek_incoming(key)
                    if message is not None and await self._process(message, lease):
                        await self.storage.ack_incoming(key, message)
            except StorageUnavailable:
                log.warning("storage unavailable while processing; retrying later")
                await asyncio.sleep(1.0)
                continue
            except Exception:
                log.exception("draining an inbox failed; recovery will try again")
                return
            if message is None and key not in self._again:
                return

    async def _process(self, message: IncomingMessage, lease: Lease) -> bool:
        """Answer ``message``; False when another worker took the user's lock over meanwhile
        (it answers the message instead, so this worker must neither answer nor acknowledge it)."""
        try:
            # Understanding a message is CPU-bound: a few at a time keep the event loop, and with
            # it the renewal of every lease this worker holds, responsive under a burst.
            async with self._processing:
                replies = await self.engine.handle(message)
            if not await lease.held():
                log.warning("a user's lock was lost while processing; the worker holding it answers")
                return False
            if replies:
                await self._deliver(message.channel, message.user_id, replies)
        except (StorageUnavailable, asyncio.CancelledError):
            raise
        except Exception:
            # The message stays in the inbox only if processing can ever succeed; a bug must
            # not block the user's later messages forever.
            log.exception("processing a queued message failed; it is set aside")
        return True

    async def _deliver(self, channel: str, address: str, replies: Sequence[OutgoingMessage]) -> None:
        """Send, retrying with backoff: the answer is computed once and not lost to a network blip."""
        for attempt in range(_SEND_ATTEMPTS):
            try:
                await self._send(channel, address, replies)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == _SEND_ATTEMPTS - 1:
                    raise
                log.warning("sending a reply on %s failed (attempt %d); retrying", channel, attempt + 1)
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))

    async def recover(self) -> None:
        """Drain inboxes left with unprocessed messages (another worker died, or this one restarted)."""
        for key in await self.storage.keys_with_incoming():
            self._drain_soon(key)

    async def idle(self) -> None:
        """Wait until every inbox this worker is draining is empty (tests, graceful shutdown)."""
        while pending := [t for t in self._draining.values() if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def start(self) -> None:
        async def periodically() -> None:
            while True:
                try:
                    await self.recover()
                except StorageUnavailable:
                    log.warning("storage unavailable during recovery")
                await asyncio.sleep(self.engine.config.storage.recover_every_seconds)

        self._recovery = asyncio.get_running_loop().create_task(periodically())

    async def stop(self) -> None:
        if self._recovery:
            self._recovery.cancel()
        await self.idle()
