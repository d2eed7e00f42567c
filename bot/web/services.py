"""The public ``/services`` page: the directory for newcomers, and the centre's printable brochure.

Server-rendered (Starlette + Jinja2), no JavaScript: filters are a GET form, so the page works
on a cheap phone and every filtered view has its own address. ``/services/brochure`` prints one
page per content language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot.config import Config
from bot.content import AnswerBook
from bot.conversation import utcnow
from bot.engine import ConversationEngine
from bot.i18n import N_, Catalogs, language_name, negotiate
from bot.services import Match, Point, ServiceGuide, map_url
from bot.services.describe import (
    cost_text,
    distance_text,
    language_list,
    localized,
    status_text,
    week_text,
)
from bot.services.describe import language_name as language_name_in

WEB_DIR = Path(__file__).resolve().parent
_HEADERS = {
    "cache-control": "public, max-age=60",  # "open now" changes; a minute is close enough
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
# A brochure page has room for the descriptions only when it lists this many services or fewer.
BROCHURE_DESCRIPTIONS_UP_TO = 8

# The page's own words, translated through the catalogs.
UI = {
    "title": N_("Local services"),
    "intro": N_(
        "Where to go in %(city)s: services for newcomers, when they are open and which languages "
        "are spoken there."
    ),
    "page_language": N_("Language of this page"),
    "topic": N_("Topic"),
    "all_topics": N_("All topics"),
    "spoken": N_("Language spoken"),
    "all_languages": N_("All languages"),
    "near": N_("Near (postcode or district)"),
    "show": N_("Show"),
    "brochure": N_("Print as a brochure"),
    "none": N_("No service matches these filters."),
    "hours": N_("Opening hours"),
    "map": N_("Map"),
    "address": N_("Address"),
    "cost": N_("Cost"),
    "website": N_("Website"),
    "ask_us": N_("Questions? Ask us: %(centre)s, %(address)s, %(phone)s"),
}


@dataclass(frozen=True)
class ServiceView:
    """One service as a page shows it, every text already in the reader's language."""

    id: str
    name: str
    status: str
    open: bool
    cost: str
    cost_note: str
    audience: str
    description: str
    languages: str
    week: str
    address: str
    map_url: str
    phone: str | None
    website: str | None
    email: str | None
    distance: str | None
    topics: str


class ServicesPage:
    """The routes of ``/services``; built from the running engine's directory."""

    def __init__(
        self,
        guide: ServiceGuide,
        answers: AnswerBook,
        config: Config,
        catalogs: Catalogs,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.guide = guide
        self.directory = guide.directory
        self.answers = answers
        self.config = config
        self.catalogs = catalogs
        self.clock = clock
        self.templates = Jinja2Templates(directory=WEB_DIR / "templates")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/services", self.page, methods=["GET"]),
            Route("/services/brochure", self.brochure, methods=["GET"]),
            Mount(
                "/services/static",
                StaticFiles(directory=WEB_DIR / "static" / "services"),
                name="services-static",
            ),
        ]

    # -- requests ------------------------------------------------------------------------------

    def _page_lang(self, request: Request) -> str:
        content = self.config.languages.content
        asked = request.query_params.get("lang", "")
        if asked in content:
            return asked
        accepted = [
            part.split(";")[0].strip() for part in request.headers.get("accept-language", "").split(",")
        ]
        return negotiate(accepted, content) or ("en" if "en" in content else content[0])

    def _topic(self, request: Request) -> str | None:
        topic = request.query_params.get("topic", "")
        return topic if self.directory.covers(topic) else None

    async def page(self, request: Request) -> Response:
        lang = self._page_lang(request)
        topic = self._topic(request)
        spoken = request.query_params.get("spoken", "")
        spoken = spoken if spoken in self.directory.spoken else ""
        near_text = request.query_params.get("near", "").strip()[:80]
        found = self.guide.place_in(near_text) if near_text else None
        near = found.point if found else None
        now = self.clock()
        matches = self.directory.find(now=now, topic=topic, lang=lang, spoken=spoken or None, near=near)
        context = {
            **self._common(lang),
            "services": [self._view(m, lang, now) for m in matches],
            "topic": topic or "",
            "spoken": spoken,
            "near": near_text,
            "near_place": found.place.name if found and found.place else "",
            "near_unknown": bool(near_text) and near is None,
            "near_unknown_text": self._t(
                lang,
                "I do not know the place %(place)s. Try a district, for example %(example)s.",
                place=near_text,
                example=self.guide.gazetteer.example,
            ),
            "topics": self._topic_options(lang),
            "spoken_options": [(code, _spoken_option(code, lang)) for code in self.directory.spoken],
            "page_languages": [(code, language_name(code)) for code in self.config.languages.content],
            "brochure": False,
        }
        return self._render(request, "services.html", context)

    async def brochure(self, request: Request) -> Response:
        topic = self._topic(request)
        now = self.clock()
        sheets = []
        for lang in self.config.languages.content:
            matches = self.directory.find(now=now, topic=topic, lang=lang)
            sheets.append(
                {
                    **self._common(lang),
                    "services": sorted((self._view(m, lang, now) for m in matches), key=_by_name),
                    "topic_title": self.answers.title(topic, lang) if topic else "",
                    "with_descriptions": len(matches) <= BROCHURE_DESCRIPTIONS_UP_TO,
                }
            )
        lang = self._page_lang(request)
        context = {**self._common(lang), "sheets": sheets, "brochure": True}
        return self._render(request, "services_brochure.html", context)

    # -- views ---------------------------------------------------------------------------------

    def _t(self, lang: str, msgid: str, **params: object) -> str:
        return self.catalogs.gettext(lang, msgid, **params)

    def _common(self, lang: str) -> dict[str, object]:
        org = self.config.organisation
        params = {"city": org.city, "centre": org.centre_name, "address": org.address, "phone": org.phone}
        ui = {key: self._t(lang, msgid, **params) for key, msgid in UI.items()}
        direction = "rtl" if Locale.parse(lang).character_order == "right-to-left" else "ltr"
        return {"lang": lang, "dir": direction, "ui": ui, "centre": org}

    def _topic_options(self, lang: str) -> list[tuple[str, str]]:
        options = [(topic, self.answers.title(topic, lang)) for topic in self.directory.topics]
        return sorted(options, key=lambda option: option[1].casefold())

    def _view(self, match: Match, lang: str, now: dt.datetime) -> ServiceView:
        service, chain = match.service, self.config.languages.chain(lang)
        return ServiceView(
            id=service.id,
            name=localized(service.name, chain),
            status=status_text(match.status, lang, self.directory.zone, now, self.catalogs),
            open=match.status.open,
            cost=cost_text(service.cost, lang, self.catalogs),
            cost_note=localized(service.cost_note, chain),
            audience=localized(service.audience, chain),
            description=localized(service.description, chain),
            languages=language_list(service.languages, lang),
            week=self._t(lang, "Open day and night")
            if service.always_open
            else week_text(service.weekly, lang),
            address=service.address,
            map_url=map_url(Point(service.latitude, service.longitude)),
            phone=service.phone,
            website=service.website,
            email=service.email,
            distance=distance_text(match.distance_m, lang) if match.distance_m is not None else None,
            topics=" · ".join(self.answers.title(t, lang) for t in service.topics if self.answers.has(t)),
        )

    def _render(self, request: Request, template: str, context: dict[str, object]) -> Response:
        response = self.templates.TemplateResponse(request, template, context)
        response.headers.update(_HEADERS)
        return response


def _spoken_option(code: str, lang: str) -> str:
    """A spoken language named in the page's language, and in its own when that differs."""
    local, own = language_name_in(code, lang), language_name(code)
    return local if local.casefold() == own.casefold() else f"{local} ({own})"


def _by_name(view: ServiceView) -> str:
    return view.name.casefold()


def services_routes(engine: ConversationEngine) -> list[BaseRoute]:
    """The ``/services`` routes for a running engine (none when it has no directory)."""
    if engine.services is None:
        return []
    return ServicesPage(engine.services, engine.answers, engine.config, engine.catalogs).routes()
