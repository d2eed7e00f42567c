"""``guichet content check`` and ``guichet content reload``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.config import DEFAULT_CONFIG, Config

ADMIN_TOKEN_ENV = "GUICHET_ADMIN_TOKEN"


def register(commands: Any) -> None:
    """Add ``guichet content ...`` to the main parser's sub-commands."""
    content = commands.add_parser("content", help="check the answers and examples, reload a running bot")
    actions = content.add_subparsers(dest="content_command", required=True)

    check = actions.add_parser(
        "check", help="find mistakes in intents/, responses/, config.yml and the message catalogs"
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "--no-model", action="store_true", help="skip the (slower) test of which topics the model mixes up"
    )
    check.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="report two topics when this share of their examples is taken for the other (default 0.10)",
    )
    # config.yml is one of the files checked: a broken one is reported, not fatal.
    check.set_defaults(func=_check, config_optional=True)

    reload = actions.add_parser(
        "reload", help="make the running server check, retrain and switch to the content on disk now"
    )
    reload.add_argument(
        "--url", default="http://127.0.0.1:8080", help="the server's address (default http://127.0.0.1:8080)"
    )
    reload.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    reload.set_defaults(func=_reload, config_optional=True)


def config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("GUICHET_CONFIG") or DEFAULT_CONFIG)


def _check(args: argparse.Namespace, config: Config | None) -> int:
    from bot.admin.check import check_content
    from bot.admin.confusion import THRESHOLD

    def progress(done: int, total: int) -> None:
        print(f"Testing which topics the model mixes up: {done} of {total} rounds done.", file=sys.stderr)

    if not args.json and not args.no_model:
        print("Checking the content (the model test takes a few minutes the first time)...", file=sys.stderr)
    report = check_content(
        config_path(args),
        model=not args.no_model,
        threshold=args.threshold if args.threshold is not None else THRESHOLD,
        progress=None if args.json else progress,
    )
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        print(report.as_text())
    return 0 if report.clean else 1


def _reload(args: argparse.Namespace, config: Config | None) -> int:
    import httpx

    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        print(f"guichet content reload: set {ADMIN_TOKEN_ENV} to the server's admin token.", file=sys.stderr)
        return 2
    url = args.url.rstrip("/") + "/admin/reload"
    try:
        response = httpx.post(url, headers={"authorization": f"Bearer {token}"}, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"guichet content reload: cannot reach the server at {args.url} ({exc}).", file=sys.stderr)
        return 2
    if response.status_code in (401, 403, 404):
        print(f"guichet content reload: the server refused: {response.text.strip()}", file=sys.stderr)
        return 2
    try:
        outcome = response.json()
    except ValueError:
        print(f"guichet content reload: unexpected answer ({response.status_code}).", file=sys.stderr)
        return 2
    print(outcome.get("message", ""))
    for problem in outcome.get("problems", []):
        where = f"{problem['path']}:{problem['line']}" if problem.get("line") else problem["path"]
        print(f"{where}: {problem['severity']}: {problem['message']}")
    return 0 if outcome.get("status") in {"reloaded", "unchanged"} else 1
