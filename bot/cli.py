"""The ``guichet`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Config, load_config


def _chat(args: argparse.Namespace, config: Config) -> int:
    from bot.app import build_engine
    from bot.channels.console import chat

    print("Loading the language model (trained once, then cached)...", file=sys.stderr)
    engine = build_engine(config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(chat(engine, lang_hint=args.lang))
    return 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    import uvicorn

    from bot.server import build_runtime
    from bot.web.app import create_app

    try:
        runtime = build_runtime(config)
    except ValueError as exc:  # a channel half set up, e.g. a WhatsApp token without its secrets
        print(f"guichet: {exc}", file=sys.stderr)
        return 2
    from bot.admin.cli import config_path
    from bot.admin.console import AdminConsole
    from bot.staff.console import StaffConsole

    staff = StaffConsole(runtime, config)
    admin = AdminConsole(runtime, config, config_path(args), staff)
    app = create_app(runtime, staff=staff, admin=admin)
    # Open live streams of the staff console must not hold a restart for long.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bot.admin import cli as content_cli
    from bot.services import cli as services_cli
    from bot.staff import cli as staff_cli
    from nlu import cli as nlu_cli

    parser = argparse.ArgumentParser(
        prog="guichet",
        description="Orientation chatbot for newcomers, run by a welcome centre (Telegram, WhatsApp, console).",
    )
    parser.add_argument(
        "--config", type=Path, help="config.yml to use (default: GUICHET_CONFIG or ./config.yml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (may show message text)")
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="chat with the bot in this terminal")
    chat.add_argument("--lang", help="your language code, as a channel would hint it (e.g. uk)")
    chat.set_defaults(func=_chat)

    serve = commands.add_parser("serve", help="start the web server and every configured channel")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.set_defaults(func=_serve)

    nlu_cli.register(commands)
    staff_cli.register(commands)
    services_cli.register(commands)
    content_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "config_optional", False):  # e.g. `content check`, which reports a broken config
        return int(args.func(args, None))
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        print(f"guichet: cannot read the configuration: {exc}", file=sys.stderr)
        return 2
    return int(args.func(args, config))


if __name__ == "__main__":
    sys.exit(main())
