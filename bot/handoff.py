"""Human handoff: staff claim, answer, annotate, transfer and close handed-off conversations.

Channel-agnostic: the staff console and the Telegram staff group both act through this service,
so the same rules hold everywhere. One staff member holds a conversation at a time; staff
messages go out through the user's own channel, in order with the bot's replies (under the
user's lock); WhatsApp's 24-hour window is respected; closing tells the user, in their language,
that they are back with the bot. Every change is published on the :class:`~bot.events.EventBus`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.config import HandoffSettings
from bot.conversation import Conversation, Role, Turn, utcnow
from bot.events import Event, EventKind
from bot.hours import format_moment
from bot.messages import OutgoingMessage
from bot.runtime import Runtime

log = logging.getLogger(__name__)

# Staff messages longer than this are refused (Telegram's limit is 4096 characters).
MAX_STAFF_TEXT = 4000
_REMIND_EVERY_SECONDS = 30.0
_TEMPLATE_SENT = "reply window closed: template sent"


@dataclass(frozen=True)
class Staff:
    """Who is acting: a console account or a member of the Telegram staff group."""

    name: str
    admin: bool = False  # admins may take over a conversation a colleague holds


class HandoffError(Exception):
    """A staff action that cannot be done; the message tells the staff member why."""


class ConversationGone(HandoffError):
    def __init__(self) -> None:
        super().__init__("This conversation no longer exists: the user deleted their data, or it expired.")


class NotHandedOff(HandoffError):
    def __init__(self) -> None:
        super().__init__("This conversation is back with the bot; nothing was changed.")


class ClaimedByOther(HandoffError):
    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(f"{holder} has claimed this conversation; ask them to transfer it to you.")


class NotDelivered(HandoffError):
    """The message did not reach the user; it is not in the transcript as sent."""


class WindowClosed(NotDelivered):
    """WhatsApp-style reply window: free text is refused more than 24 hours after the user wrote."""

    def __init__(self, hours: float, template_sent: bool) -> None:
        self.template_sent = template_sent
        window = f"{hours:g} hours"
        if template_sent:
            text = (
                f"Not sent: this channel allows free messages only within {window} of the user's last "
                "message. An invitation to reply was sent to the user; send your message again once "
                "they answer."
            )
        else:
            text = (
                f"Not sent: the user's last message is more than {window} old and this channel allows "
                "free messages only within that window. No reply template is set up, so the user cannot "
                "be reached until they write again."
            )
        super().__init__(text)


class HandoffService:
    """The staff side of handed-off conversations, for every channel and every staff interface."""

    def __init__(
        self,
        runtime: Runtime,
        settings: HandoffSettings,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.storage = runtime.storage
        self.events = runtime.events
        self.settings = settings
        self.clock = clock
        self._reminders: asyncio.Task[None] | None = None

    # -- reading --------------------------------------------------------------------------------

    async def queue(self) -> list[Conversation]:
        """Handed-off conversations, emergencies first, then the longest waiting."""
        return await self.storage.handoff_queue()

    async def get(self, key: str) -> Conversation:
        conversation = await self.storage.get(key)
        if conversation is None:
            raise ConversationGone
        return conversation

    def lang_of(self, conversation: Conversation) -> str:
        """The language the bot answers this user in (English when nothing is known yet, as the engine)."""
        content = self.engine.config.languages.content
        return conversation.lang or ("en" if "en" in content else content[0])

    def opening_status(self, locale: str = "en") -> str:
        """``open until 17:00`` or ``closed, opens Monday 09:00``, in the centre's time zone."""
        org = self.engine.config.organisation
        now = self.clock()
        closes = org.hours.closes_at(now)
        if closes is not None:
            return f"open until {format_moment(closes, locale, org.zone, now)}"
        opening = org.hours.next_opening(now)
        if opening is None:
            return "closed"
        return f"closed, opens {format_moment(opening, locale, org.zone, now)}"

    # -- staff actions ----------------------------------------------------------------------------

    async def claim(self, key: str, staff: Staff, *, take_over: bool = False) -> Conversation:
        """Take the conversation; colleagues see who holds it. Admins may ``take_over``."""
        async with self._editing(key) as (conversation, events):
            handoff = conversation.handoff
            assert handoff is not None
            if handoff.claimed_by == staff.name:
                return conversation
            if handoff.claimed_by and not (take_over and staff.admin):
                raise ClaimedByOther(handoff.claimed_by)
            self._assign(conversation, staff.name, f"claimed by {staff.name}", events)
        return conversation

    async def reply(self, key: str, staff: Staff, text: str) -> Conversation:
        """Send ``text`` to the user through their channel; claims the conversation if nobody has."""
        text = text.strip()
        if not text:
            raise HandoffError("Write a message first.")
        if len(text) > MAX_STAFF_TEXT:
            raise HandoffError(f"The message is too long (at most {MAX_STAFF_TEXT} characters).")
        return await self._send(key, staff, OutgoingMessage(text), intent=None)

    async def send_curated(self, key: str, staff: Staff, intent: str) -> Conversation:
        """Send the curated answer for ``intent`` in the user's language (whatever staff speak)."""
        if not self.engine.answers.has(intent):
            raise HandoffError(f"There is no curated answer for {intent!r}.")
        conversation = await self.get(key)
        answer = self.engine.curated(intent, self.lang_of(conversation), self.clock())
        # Follow-up buttons would ask the bot, which is not listening while staff hold the chat.
        message = OutgoingMessage(answer.text, links=answer.links, urgent=answer.urgent)
        return await self._send(key, staff, message, intent=intent)

    async def note(self, key: str, staff: Staff, text: str) -> Conversation:
        """A private note for colleagues; never sent to the user."""
        text = text.strip()
        if not text:
            raise HandoffError("Write a note first.")
        if len(text) > MAX_STAFF_TEXT:
            raise HandoffError(f"The note is too long (at most {MAX_STAFF_TEXT} characters).")
        async with self._editing(key) as (conversation, events):
            conversation.add(Turn(role=Role.NOTE, text=text, at=self.clock(), author=staff.name))
            events.append(Event(EventKind.STAFF_MESSAGE, key))
        return conversation

    async def transfer(self, key: str, staff: Staff, colleague: str) -> Conversation:
        """Hand the conversation to ``colleague`` (e.g. someone who speaks the user's language)."""
        async with self._editing(key) as (conversation, events):
            handoff = conversation.handoff
            assert handoff is not None
            self._check_holder(handoff.claimed_by, staff)
            if colleague == handoff.claimed_by:
                return conversation
            self._assign(conversation, colleague, f"transferred by {staff.name} to {colleague}", events)
        return conversation

    async def close(self, key: str, staff: Staff) -> str | None:
        """Hand the user back to the bot and tell them so; returns why they could not be told, if so."""
        problem: str | None = None
        async with self._editing(key) as (conversation, events):
            handoff = conversation.handoff
            assert handoff is not None
            self._check_holder(handoff.claimed_by, staff)
            now = self.clock()
            lang = self.lang_of(conversation)
            text = self.engine.catalogs.gettext(
                lang,
                "This conversation with %(centre)s is closed. You are back with the assistant: "
                "write your question any time.",
                centre=self.engine.config.organisation.centre_name,
            )
            try:
                await self._deliver(conversation, [OutgoingMessage(text)], now, invite=False)
                conversation.add(Turn(role=Role.BOT, text=text, at=now))
            except NotDelivered as exc:
                problem = f"Closed, but the user could not be told: {exc}"
            conversation.handoff = None
            conversation.pending_options = []
            conversation.add(Turn(role=Role.EVENT, text=f"closed by {staff.name}", at=now))
            events.append(Event(EventKind.CLOSED, key))
        return problem

    # -- reminders --------------------------------------------------------------------------------

    async def remind_waiting(self) -> int:
        """Tell users nobody claimed within ``remind_after_minutes`` (of opening hours) that they are
        not forgotten; each waiting user hears it once. Returns how many were reminded."""
        now = self.clock()
        hours = self.engine.config.organisation.hours
        if not hours.is_open(now):
            return 0
        reminded = 0
        for waiting in await self.storage.handoff_queue():
            if not self._reminder_due(waiting, now):
                continue
            try:
                async with self._editing(waiting.key) as (conversation, _):
                    if not self._reminder_due(conversation, now):
                        continue
                    assert conversation.handoff is not None
                    conversation.handoff.reminded = True
                    if await self._remind(conversation, now):
                        reminded += 1
            except HandoffError:
                continue  # closed or deleted meanwhile
        return reminded

    def _reminder_due(self, conversation: Conversation, now: dt.datetime) -> bool:
        handoff = conversation.handoff
        if handoff is None or handoff.claimed_by or handoff.reminded:
            return False
        hours = self.engine.config.organisation.hours
        # Waiting starts counting when the guichet is open: a night message is not "late" at 9:01.
        start = handoff.since if hours.is_open(handoff.since) else hours.next_opening(handoff.since)
        after = dt.timedelta(minutes=self.settings.remind_after_minutes)
        return start is not None and now >= start + after

    async def _remind(self, conversation: Conversation, now: dt.datetime) -> bool:
        text = self.engine.catalogs.gettext(
            self.lang_of(conversation),
            "Everyone at %(centre)s is busy at the moment. You have not been forgotten: a person will "
            "answer you here as soon as possible.",
            centre=self.engine.config.organisation.centre_name,
        )
        try:
            await self._deliver(conversation, [OutgoingMessage(text)], now, invite=False)
        except NotDelivered as exc:
            log.info("waiting user not reminded on %s: %s", conversation.channel, type(exc).__name__)
            conversation.add(Turn(role=Role.EVENT, text="reminder not delivered", at=now))
            return False
        conversation.add(Turn(role=Role.BOT, text=text, at=now))
        conversation.add(Turn(role=Role.EVENT, text="reminded: nobody has claimed yet", at=now))
        return True

    async def start(self) -> None:
        async def periodically() -> None:
            while True:
                await asyncio.sleep(_REMIND_EVERY_SECONDS)
                try:
                    await self.remind_waiting()
                except Exception:
                    log.exception("sending reminders failed; retrying later")

        self._reminders = asyncio.get_running_loop().create_task(periodically())

    async def stop(self) -> None:
        if self._reminders:
            self._reminders.cancel()
            self._reminders = None

    # -- internals ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _editing(self, key: str) -> AsyncIterator[tuple[Conversation, list[Event]]]:
        """The handed-off conversation under the user's lock; saved, then its events published.

        Holding the lock while sending keeps staff messages in order with the bot's own replies.
        """
        events: list[Event] = []
        async with self.storage.user_lock(key):
            conversation = await self.storage.get(key)
            if conversation is None:
                raise ConversationGone
            if conversation.handoff is None:
                raise NotHandedOff
            try:
                yield conversation, events
            finally:
                await self.storage.put(conversation)
        for event in events:
            await self.events.publish(event)

    def _assign(self, conversation: Conversation, name: str, what: str, events: list[Event]) -> None:
        assert conversation.handoff is not None
        conversation.handoff.claimed_by = name
        conversation.add(Turn(role=Role.EVENT, text=what, at=self.clock()))
        events.append(Event(EventKind.CLAIMED, conversation.key, urgent=conversation.handoff.urgent))

    @staticmethod
    def _check_holder(holder: str | None, staff: Staff) -> None:
        if holder and holder != staff.name and not staff.admin:
            raise ClaimedByOther(holder)

    async def _send(
        self, key: str, staff: Staff, message: OutgoingMessage, intent: str | None
    ) -> Conversation:
        failure: NotDelivered | None = None
        async with self._editing(key) as (conversation, events):
            handoff = conversation.handoff
            assert handoff is not None
            if handoff.claimed_by is None:
                self._assign(conversation, staff.name, f"claimed by {staff.name}", events)
            elif handoff.claimed_by != staff.name:
                raise ClaimedByOther(handoff.claimed_by)
            now = self.clock()
            try:
                await self._deliver(conversation, [message], now, invite=True)
            except NotDelivered as exc:
                failure = exc
                conversation.add(Turn(role=Role.EVENT, text=f"not delivered: {type(exc).__name__}", at=now))
            else:
                conversation.add(
                    Turn(role=Role.STAFF, text=message.text, at=now, intent=intent, author=staff.name)
                )
                events.append(Event(EventKind.STAFF_MESSAGE, key))
        if failure is not None:
            raise failure
        return conversation

    async def _deliver(
        self,
        conversation: Conversation,
        messages: Sequence[OutgoingMessage],
        now: dt.datetime,
        *,
        invite: bool,
    ) -> None:
        """Send through the user's channel, or raise :class:`NotDelivered` saying why not.

        Outside the channel's reply window no free text is sent; with ``invite`` the channel's
        reply template is sent instead (once per closed window) so the user can re-open it.
        """
        channel = self.runtime.channels.get(conversation.channel)
        if channel is None:
            raise NotDelivered(
                f"The {conversation.channel} channel is not running on this server; nothing was sent."
            )
        window: dt.timedelta | None = getattr(channel, "reply_window", None)
        last = conversation.last_user_at
        if window is not None and (last is None or now - last > window):
            hours = window.total_seconds() / 3600
            if not invite:
                raise WindowClosed(hours, template_sent=False)
            if self._template_sent_since(conversation, last):
                raise WindowClosed(hours, template_sent=True)
            sent = await channel.send_template(conversation.address, self.lang_of(conversation))
            if sent:
                conversation.add(Turn(role=Role.EVENT, text=_TEMPLATE_SENT, at=now))
            raise WindowClosed(hours, template_sent=sent)
        try:
            await self.runtime.send(conversation.channel, conversation.address, messages)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("staff message on %s not delivered: %s", conversation.channel, type(exc).__name__)
            raise NotDelivered(
                f"The message could not be delivered on {conversation.channel} ({type(exc).__name__}); "
                "please try again."
            ) from exc

    @staticmethod
    def _template_sent_since(conversation: Conversation, last: dt.datetime | None) -> bool:
        return any(
            turn.role is Role.EVENT and turn.text == _TEMPLATE_SENT and (last is None or turn.at > last)
            for turn in conversation.transcript
        )
