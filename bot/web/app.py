"""The Starlette application: every channel's routes plus the bot's own pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.runtime import Runtime


async def healthz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return JSONResponse({"status": "ok", "channels": sorted(runtime.channels)})


def create_app(runtime: Runtime, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The server for ``runtime``; channels start and stop with it."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    routes: list[BaseRoute] = [Route("/healthz", healthz)]
    for channel in runtime.channels.values():
        routes.extend(channel.routes())
    routes.extend(extra_routes or [])
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app
