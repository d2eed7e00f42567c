"""``guichet services list``: the directory in the terminal, as a newcomer would be shown it now."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.config import Config
from bot.conversation import utcnow


def register(commands: Any) -> None:
    """Add ``guichet services ...`` to the main parser's sub-commands."""
    services = commands.add_parser("services", help="the local services directory (responses/services)")
    actions = services.add_subparsers(dest="services_command", required=True)
    listing = actions.add_parser("list", help="list services, best first, and check the files")
    listing.add_argument("--topic", help="only services for this topic id (e.g. housing_search)")
    listing.add_argument("--lang", help="only services where this language is spoken; text in it if we can")
    listing.add_argument("--open-now", action="store_true", help="only services open right now")
    listing.add_argument("--near", help="order by distance from a district or postcode of the gazetteer")
    listing.set_defaults(func=_list)


def _list(args: argparse.Namespace, config: Config) -> int:
    from bot.content import AnswerBook, ContentError
    from bot.i18n import Catalogs
    from bot.services import ServiceGuide, ServicesError
    from bot.services.describe import cost_text, distance_text, language_list, localized, status_text

    catalogs = Catalogs(config.languages.content)
    try:
        answers = AnswerBook.from_config(config, catalogs)
        guide = ServiceGuide.from_config(config, answers, catalogs)
    except (ServicesError, ContentError) as exc:
        print(exc, file=sys.stderr)
        return 2
    directory = guide.directory
    if args.topic and not directory.covers(args.topic):
        known = ", ".join(sorted(directory.topics))
        print(
            f"guichet: no service for topic {args.topic!r} (topics with services: {known})", file=sys.stderr
        )
        return 2
    near = None
    if args.near:
        found = guide.place_in(args.near)
        if found is None or found.point is None:
            print(f"guichet: {args.near!r} is not in the gazetteer of config.yml", file=sys.stderr)
            return 2
        near = found.point
    lang = args.lang if args.lang in config.languages.content else "en"
    now = utcnow()
    matches = directory.find(now=now, topic=args.topic, spoken=args.lang, near=near, open_now=args.open_now)
    chain = config.languages.chain(lang)
    for match in matches:
        service = match.service
        distance = f"  ({distance_text(match.distance_m, lang)})" if match.distance_m is not None else ""
        print(f"{service.id}  {localized(service.name, chain)}{distance}")
        print(f"  topics: {', '.join(service.topics)}")
        status = status_text(match.status, lang, directory.zone, now, catalogs)
        print(f"  {status} · {cost_text(service.cost, lang, catalogs)}")
        print(f"  {language_list(service.languages, lang)}")
        print(f"  {' · '.join(part for part in (service.address, service.phone) if part)}")
    print(f"{len(matches)} of {len(directory.services)} services", file=sys.stderr)
    return 0
