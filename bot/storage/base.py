"""The storage interface the engine and the staff console use."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager

from bot.conversation import Conversation
from bot.messages import IncomingMessage


class StorageUnavailable(RuntimeError):
    """The store cannot be reached: the webhook answers 503 so the platform retries later."""


class Lease:
    """A held user lock. In one process it lasts until released; a lock shared between workers
    (Redis) is a lease that can be lost, when a worker stalls for longer than the lease."""

    async def held(self) -> bool:
        """Whether the lock is still ours: checked before answering, so that a message taken
        over by another worker is not answered twice."""
        return True


class Storage(ABC):
    """Conversations, processed-message ids, per-user locks, rate limits and the handoff queue."""

    @abstractmethod
    async def get(self, key: str) -> Conversation | None: ...

    @abstractmethod
    async def put(self, conversation: Conversation) -> None:
        """Save, refreshing the retention period; a handed-off conversation joins the queue."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget everything stored about this user, queue entry included."""

    @abstractmethod
    async def first_delivery(self, message_id: str) -> bool:
        """True the first time a platform message id is seen, False for every redelivery."""

    @abstractmethod
    def user_lock(self, key: str) -> AbstractAsyncContextManager[Lease]:
        """Exclusive access to one user's conversation, so their messages are handled one at a time."""

    @abstractmethod
    async def within_rate_limit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one message; False once the user sent more than ``limit`` in the window."""

    @abstractmethod
    async def handoff_queue(self) -> list[Conversation]:
        """Handed-off conversations, urgent first, then oldest first."""

    # -- the durable inbox: accepted messages wait here until they are processed ----------

    async def accept_incoming(self, key: str, message: IncomingMessage, delivery_id: str | None) -> bool:
        """Store ``message`` in the user's inbox unless ``delivery_id`` was accepted before.

        One step where the store allows it (Redis): a message is never marked as seen without
        being stored, so a delivery refused half-way (503) is accepted when it comes again.
        """
        if delivery_id and not await self.first_delivery(delivery_id):
            return False
        await self.push_incoming(key, message)
        return True

    @abstractmethod
    async def push_incoming(self, key: str, message: IncomingMessage) -> None:
        """Append an accepted message to the user's inbox (durably, before the webhook says 200)."""

    @abstractmethod
    async def peek_incoming(self, key: str) -> IncomingMessage | None:
        """The user's oldest unprocessed message, left in place until acknowledged."""

    @abstractmethod
    async def ack_incoming(self, key: str, message: IncomingMessage) -> None:
        """Remove ``message``, processed and answered, if it is still the user's oldest one.

        It may not be: ``/forget`` empties the inbox while its own message is being processed.
        """

    @abstractmethod
    async def keys_with_incoming(self) -> list[str]:
        """Users with unprocessed messages (e.g. left behind by a worker that died)."""

    async def close(self) -> None:
        """Release connections."""
        return None
