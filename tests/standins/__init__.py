"""Local stand-ins for the Telegram Bot API and Meta's Graph API (WhatsApp Cloud API).

Telegram and WhatsApp are unreachable from the test machines, so tests point the real
clients (python-telegram-bot, httpx) at these small servers through their base URL::

    with TelegramBotAPI() as telegram, GraphAPI() as graph:
        app = Application.builder().token(telegram.token).base_url(telegram.base_url).build()
        ...  # WhatsApp channel configured with graph.base_url / graph.access_token

Each runs in its own thread (see server.py), so async tests can await the bot and the
stand-in's `wait_for...` helpers in the same event loop.
"""

from .graph_api import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_APP_SECRET,
    DEFAULT_DISPLAY_PHONE_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_VERSION,
    DEFAULT_WA_ID,
    DEFAULT_WABA_ID,
    GraphAPI,
    deliver_webhook,
    encode_webhook_body,
    graph_error,
    interactive_reply_payload,
    media_message_payload,
    sign,
    status_payload,
    text_message_payload,
    verification_params,
)
from .server import BackgroundServer, StandIn
from .telegram_bot_api import (
    DEFAULT_TOKEN,
    TelegramBotAPI,
    audio_content,
    contact_content,
    document_content,
    location_content,
    photo_content,
    post_webhook,
    sticker_content,
    voice_content,
)

__all__ = [
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_APP_SECRET",
    "DEFAULT_DISPLAY_PHONE_NUMBER",
    "DEFAULT_PHONE_NUMBER_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_VERSION",
    "DEFAULT_WABA_ID",
    "DEFAULT_WA_ID",
    "BackgroundServer",
    "GraphAPI",
    "StandIn",
    "TelegramBotAPI",
    "audio_content",
    "contact_content",
    "deliver_webhook",
    "document_content",
    "encode_webhook_body",
    "graph_error",
    "interactive_reply_payload",
    "location_content",
    "media_message_payload",
    "photo_content",
    "post_webhook",
    "sign",
    "status_payload",
    "sticker_content",
    "text_message_payload",
    "verification_params",
    "voice_content",
]
