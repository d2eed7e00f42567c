"""Everything ``guichet serve`` adds for staff: the handoff service, the web console under
``/staff`` and, when configured, the staff Telegram group."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from starlette.routing import BaseRoute

from bot.channels.telegram_staff import TelegramStaffGroup
from bot.config import Config
from bot.conversation import utcnow
from bot.handoff import HandoffService
from bot.runtime import Runtime
from bot.staff.accounts import Accounts
from bot.staff.auth import SessionCookies, session_secret
from bot.staff.web import StaffWeb


class StaffConsole:
    """The staff side of a running bot; started and stopped with the web server."""

    def __init__(
        self,
        runtime: Runtime,
        config: Config,
        *,
        accounts: Accounts | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        settings = config.handoff
        self.handoff = HandoffService(runtime, settings, clock=clock)
        self.accounts = accounts or Accounts.from_config(config)
        cookies = SessionCookies(session_secret(settings.session_secret), settings.session_hours * 3600)
        self.web = StaffWeb(self.handoff, self.accounts, cookies)
        self.telegram = TelegramStaffGroup.from_config(self.handoff, config)

    def routes(self) -> list[BaseRoute]:
        return self.web.routes()

    async def start(self) -> None:
        await self.handoff.start()
        if self.telegram:
            await self.telegram.start()

    async def stop(self) -> None:
        if self.telegram:
            await self.telegram.stop()
        await self.handoff.stop()
        await self.accounts.close()
