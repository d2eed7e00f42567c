"""The Starlette application: every channel's routes plus the bot's own pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.runtime import Runtime
from bot.web.rasa_api import rasa_api_routes
from bot.web.services import services_routes

if TYPE_CHECKING:
    from bot.admin.console import AdminConsole
    from bot.staff.console import StaffConsole


async def healthz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return JSONResponse({"status": "ok", "channels": sorted(runtime.channels)})


def create_app(
    runtime: Runtime,
    extra_routes: list[BaseRoute] | None = None,
    *,
    staff: StaffConsole | None = None,
    admin: AdminConsole | None = None,
) -> Starlette:
    """The server for ``runtime``; channels (and the staff console, at ``/staff``, with its admin
    pages at ``/staff/admin``) start and stop with it."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        if staff:
            await staff.start()
        if admin:
            await admin.start()
        try:
            yield
        finally:
            if admin:
                await admin.stop()
            if staff:
                await staff.stop()
            await runtime.stop()

    routes: list[BaseRoute] = [Route("/healthz", healthz)]
    for channel in runtime.channels.values():
        routes.extend(channel.routes())
    routes.extend(extra_routes or [])
    routes.extend(services_routes(runtime.engine))
    routes.extend(rasa_api_routes(runtime.engine))
    if admin:  # before the console's own routes: /staff/admin would otherwise fall under /staff
        routes.extend(admin.routes())
    if staff:
        routes.extend(staff.routes())
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app
