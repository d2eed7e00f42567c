"""What the engine notes for admins while it answers: missed questions, answers shown, ratings.

The engine notes synchronously, in the middle of computing a reply, and :meth:`Journal.flush`
writes the notes once the reply is saved. Writing them must never cost a newcomer their answer:
a failure is logged and the notes are kept for the next flush.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.admin.audit import AuditLog, Shown
from bot.admin.inbox import Inbox
from bot.admin.ratings import Ratings
from bot.admin.store import AdminStore
from bot.config import FeedbackSettings
from bot.events import Event, EventKind
from bot.policy import Action, Decision

log = logging.getLogger(__name__)

# Notes kept while the store cannot be written (oldest dropped beyond this).
_MAX_PENDING = 10_000
# Topics whose answers are not worth a 👍/👎 (small talk, the language menu, handoffs, emergencies).
NOT_RATED = frozenset({"greet", "goodbye", "thanks", "change_language", "human_handoff", "emergency"})

Note = Callable[[], Awaitable[object]]


class Journal:
    """The engine's notes for admins; ``version`` is the live content version (set on reload)."""

    def __init__(self, store: AdminStore, settings: FeedbackSettings, version: str = "") -> None:
        self.store = store
        self.settings = settings
        self.version = version
        self.inbox = Inbox(store)
        self.audit = AuditLog(store)
        self.ratings = Ratings(store)
        self._pending: list[tuple[str | None, Note]] = []  # (the user's key, if any; the note)

    def rates(self, intent: str) -> bool:
        """Whether the answer for ``intent`` gets 👍/👎 buttons."""
        return self.settings.ratings and intent not in NOT_RATED

    def note_understood(
        self,
        key: str,
        text: str,
        lang: str,
        decision: Decision,
        guesses: Sequence[tuple[str, float]],
        at: dt.datetime,
    ) -> None:
        """A text message the NLU read: kept for the inbox when the bot could not answer it surely."""
        outcome = _missed(decision, guesses, self.settings.inbox_below)
        if outcome is None:
            return
        self._note(
            key,
            lambda: self.inbox.add(key=key, text=text, lang=lang, outcome=outcome, guesses=guesses, at=at),
        )

    def note_shown(self, key: str, intent: str, lang: str, at: dt.datetime, by: str = "bot") -> None:
        shown = Shown(key=key, intent=intent, lang=lang, version=self.version, by=by, at=at)
        self._note(key, lambda: self.audit.add(shown))

    def note_rating(self, intent: str, lang: str, helpful: bool) -> None:
        self._note(None, lambda: self.ratings.add(intent, lang, helpful))

    def _note(self, key: str | None, note: Note) -> None:
        self._pending.append((key, note))
        del self._pending[:-_MAX_PENDING]

    async def flush(self) -> None:
        """Write the notes taken so far (of every conversation)."""
        while self._pending:
            entry = self._pending.pop(0)  # taken first: a concurrent flush must not write it twice
            try:
                await entry[1]()
            except Exception:
                self._pending.insert(0, entry)
                log.warning("admin notes could not be written; %d kept for later", len(self._pending))
                return

    async def on_event(self, event: Event) -> None:
        """``/forget``: the user's inbox questions and audit entries go too."""
        if event.kind is EventKind.FORGOTTEN:
            self._pending = [(key, note) for key, note in self._pending if key != event.key]
            await self.inbox.forget(event.key)
            await self.audit.forget(event.key)

    async def close(self) -> None:
        await self.flush()
        await self.store.close()


def _missed(decision: Decision, guesses: Sequence[tuple[str, float]], below: float) -> str | None:
    """Why this message belongs in the inbox (a key of :data:`bot.admin.inbox.OUTCOMES`), if it does."""
    if decision.emergency:
        return None
    confidence = guesses[0][1] if guesses else 0.0
    if decision.action is Action.HANDOFF:
        # Asking for a person is no miss, unless the model only half-thought so.
        return "handoff" if decision.intent != "human_handoff" or confidence < below else None
    if decision.action is Action.CLARIFY:
        return "clarify"
    return "unsure" if confidence < below else None
