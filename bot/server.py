"""Assemble the runtime of ``guichet serve`` from the configuration and the environment."""

from __future__ import annotations

from bot.app import build_engine
from bot.config import Config
from bot.runtime import Runtime


def build_runtime(config: Config) -> Runtime:
    """The engine plus every channel whose settings are present (none is required)."""
    runtime = Runtime(config, build_engine(config))
    add_whatsapp(runtime)
    add_telegram(runtime)
    return runtime


def add_whatsapp(runtime: Runtime) -> None:
    """WhatsApp, when GUICHET_WHATSAPP_TOKEN and GUICHET_WHATSAPP_PHONE_NUMBER_ID are set."""
    from bot.channels.whatsapp import WhatsAppChannel, WhatsAppCredentials

    credentials = WhatsAppCredentials.from_env()
    if credentials is not None:
        runtime.add_channel(WhatsAppChannel(credentials, runtime.config.whatsapp, runtime.engine))


def add_telegram(runtime: Runtime) -> None:
    """Telegram, when GUICHET_TELEGRAM_TOKEN is set (webhook mode with GUICHET_TELEGRAM_WEBHOOK_URL)."""
    from bot.channels.telegram import TelegramChannel

    channel = TelegramChannel.from_environment(runtime)
    if channel is not None:
        runtime.add_channel(channel)
