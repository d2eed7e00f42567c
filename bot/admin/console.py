"""Everything ``guichet serve`` adds for admins: live reload, the inbox and teaching, the admin pages."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute

from bot.admin.reload import ContentReloader
from bot.admin.teach import Teacher
from bot.admin.web import AdminWeb
from bot.app import build_journal
from bot.config import Config
from bot.conversation import Role
from bot.events import Event, EventKind
from bot.runtime import Runtime
from bot.staff.console import StaffConsole


class AdminConsole:
    """The admin side of a running bot; started and stopped with the web server."""

    def __init__(self, runtime: Runtime, config: Config, config_path: Path, staff: StaffConsole) -> None:
        engine = runtime.engine
        if engine.journal is None:
            engine.journal = build_journal(config)
            engine.events.subscribe(engine.journal.on_event)
        self.journal = engine.journal
        self.storage = runtime.storage
        engine.events.subscribe(self._on_event)
        self.reloader = ContentReloader(engine, config_path, redis_url=config.storage.url)
        self.teacher = Teacher(self.journal.inbox, self.reloader)
        self.web = AdminWeb(
            self.reloader,
            self.teacher,
            self.journal,
            staff.accounts,
            staff.web.cookies,
            config.content.admin_token,
        )

    async def _on_event(self, event: Event) -> None:
        """Curated answers sent by staff go to the audit log too, under the staff member's name."""
        if event.kind is not EventKind.STAFF_MESSAGE:
            return
        conversation = await self.storage.get(event.key)
        last = conversation.transcript[-1] if conversation and conversation.transcript else None
        if conversation is None or last is None or last.role is not Role.STAFF or last.intent is None:
            return
        lang = conversation.lang or self.reloader.engine.config.organisation.language
        self.journal.note_shown(event.key, last.intent, lang, last.at, by=last.author or "staff")
        await self.journal.flush()

    def routes(self) -> list[BaseRoute]:
        return self.web.routes()

    async def start(self) -> None:
        await self.reloader.start()

    async def stop(self) -> None:
        """Background reloads stop with the server; the files on disk are loaded at the next start."""
        await self.web.cancel_jobs()
        await self.reloader.stop()
        await self.journal.close()
