"""``guichet serve`` starts with no channel configured and answers its health check."""

from __future__ import annotations

import httpx

from bot.engine import ConversationEngine
from bot.runtime import Runtime
from bot.web.app import create_app


async def test_health_check_without_channels(engine: ConversationEngine) -> None:
    app = create_app(Runtime(engine.config, engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guichet") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "channels": []}
