"""The staff console under ``/staff``: sign-in, the live queue, and one page per conversation.

Pages are server-rendered (Starlette + Jinja2); actions are plain forms (POST, then redirect),
so the console works on a phone and without JavaScript. With JavaScript, the queue and the
transcript update live from a server-sent event stream fed by the :class:`~bot.events.EventBus`.
Nothing but the sign-in page and the style sheet answers without a signed-in staff member, and
every POST needs the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.events import Event, EventKind
from bot.handoff import HandoffError, HandoffService, Staff
from bot.i18n import language_name
from bot.staff import views
from bot.staff.accounts import Accounts, StaffAccount
from bot.staff.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionCookies,
    client_address,
    csrf_ok,
    signin_allowed,
)
from bot.storage import StorageUnavailable

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PREFIX = "/staff"
# Live pages refresh at least this often, so they stay right when another worker made the change.
TICK_SECONDS = 20.0
_MAX_FORM_FIELDS = 20
_ACTIONS = ("claim", "takeover", "reply", "curated", "note", "transfer", "close")
# Answers that only make sense from the bot itself; staff write these in their own words.
_BOT_ONLY_ANSWERS = frozenset({"change_language", "human_handoff", "greet", "goodbye", "thanks"})
_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class _SecurityHeaders:
    """No framing, no foreign scripts, no caching of pages that show conversations."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                if not scope["path"].startswith(f"{PREFIX}/static/"):
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


class StaffWeb:
    """The console's routes; every handler first checks the session."""

    def __init__(self, service: HandoffService, accounts: Accounts, cookies: SessionCookies) -> None:
        self.service = service
        self.engine = service.engine
        self.accounts = accounts
        self.cookies = cookies
        self.templates = Jinja2Templates(directory=WEB_DIR / "templates")
        self.languages = views.LanguageNotes(service.engine)

    def routes(self) -> list[BaseRoute]:
        app = _SecurityHeaders(
            Router(
                routes=[
                    Route("/", self.queue_page, methods=["GET"]),
                    Route("/signin", self.signin_page, methods=["GET"]),
                    Route("/signin", self.signin, methods=["POST"]),
                    Route("/signout", self.signout, methods=["POST"]),
                    Route("/queue", self.queue_fragment, methods=["GET"]),
                    Route("/events", self.event_stream, methods=["GET"]),
                    Route("/c/{key:str}", self.conversation_page, methods=["GET"]),
                    Route("/c/{key:str}/live", self.conversation_fragment, methods=["GET"]),
                    Route("/c/{key:str}/{action:str}", self.act, methods=["POST"]),
                    Mount("/static", StaticFiles(directory=WEB_DIR / "static" / "staff"), name="static"),
                ],
            )
        )
        return [Mount(PREFIX, app=app)]

    # -- sessions ----------------------------------------------------------------------------

    async def _auth(self, request: Request) -> tuple[Session, StaffAccount] | None:
        session = self.cookies.load(request)
        if session is None or session.staff is None:
            return None
        account = await self.accounts.get(session.staff)
        if account is None or account.session_version != session.version:
            return None
        return session, account

    def _to_signin(self, request: Request) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"{PREFIX}/signin", status_code=303)
        return PlainTextResponse("Sign in to the staff console first.", status_code=401)

    def _render(
        self, request: Request, session: Session, template: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        flash, session.flash = session.flash, None
        context = {"csrf": session.csrf, "flash": flash, "centre": self.engine.config.organisation, **context}
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        if flash is not None:
            self.cookies.store(request, response, session)
        return response

    def _redirect(self, request: Request, session: Session, to: str, flash: str | None = None) -> Response:
        session.flash = flash
        response = RedirectResponse(to, status_code=303)
        self.cookies.store(request, response, session)
        return response

    # -- sign-in -----------------------------------------------------------------------------

    async def signin_page(self, request: Request) -> Response:
        if await self._auth(request) is not None:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        session = self.cookies.load(request) or self.cookies.anonymous()
        response = self._render(request, session, "staff/signin.html", {"name": ""})
        self.cookies.store(request, response, session)
        return response

    async def signin(self, request: Request) -> Response:
        session = self.cookies.load(request)
        form = await request.form(max_fields=_MAX_FORM_FIELDS)
        if session is None or not csrf_ok(session, _text(form, CSRF_FIELD)):
            return PlainTextResponse("The sign-in form expired. Reload the page and try again.", 403)
        name, password = _text(form, "name").strip(), _text(form, "password")
        fresh = self.cookies.anonymous()
        if not await signin_allowed(self.service.storage, name, client_address(request)):
            log.warning("staff sign-in rate limited")
            fresh.flash = "Too many sign-in attempts. Wait 15 minutes and try again."
            return self._render(request, fresh, "staff/signin.html", {"name": name}, status=429)
        account = await self.accounts.authenticate(name, password)
        if account is None:
            fresh.flash = "Wrong name or password."
            return self._render(request, fresh, "staff/signin.html", {"name": name}, status=401)
        log.info("staff member signed in")
        return self._redirect(request, self.cookies.signed_in(account), f"{PREFIX}/")

    async def signout(self, request: Request) -> Response:
        session = self.cookies.load(request)
        form = await request.form(max_fields=_MAX_FORM_FIELDS)
        if session is None or not csrf_ok(session, _text(form, CSRF_FIELD)):
            return PlainTextResponse("Missing or wrong CSRF token.", 403)
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        self.cookies.clear(response)
        return response

    # -- the queue ---------------------------------------------------------------------------

    async def _rows(self, me: StaffAccount) -> list[views.Row]:
        accounts = await self.accounts.all()
        now = self.service.clock()
        rows = []
        for conversation in await self.service.queue():
            written = await self.languages.written_language(conversation)
            lang = self.service.lang_of(conversation)
            rows.append(views.row(conversation, written, lang, self.engine, accounts, me, now))
        return rows

    def _queue_context(self, rows: list[views.Row], me: StaffAccount) -> dict[str, Any]:
        return {
            "me": me,
            "waiting": [r for r in rows if r.claimed_by is None],
            "taken": [r for r in rows if r.claimed_by is not None],
            "opening": self.service.opening_status(views.CONSOLE_LOCALE),
        }

    async def queue_page(self, request: Request) -> Response:
        auth = await self._auth(request)
        if auth is None:
            return self._to_signin(request)
        session, me = auth
        rows = await self._rows(me)
        return self._render(request, session, "staff/queue.html", self._queue_context(rows, me))

    async def queue_fragment(self, request: Request) -> Response:
        auth = await self._auth(request)
        if auth is None:
            return self._to_signin(request)
        session, me = auth
        rows = await self._rows(me)
        return self._render(request, session, "staff/_queue.html", self._queue_context(rows, me))

    # -- one conversation --------------------------------------------------------------------

    async def _conversation_context(self, key: str, me: StaffAccount) -> dict[str, Any] | None:
        conversation = await self.service.storage.get(key)
        if conversation is None:
            return None
        accounts = await self.accounts.all()
        written = await self.languages.written_language(conversation)
        lang = self.service.lang_of(conversation)
        context: dict[str, Any] = {
            "me": me,
            "key": key,
            "handed_off": conversation.handed_off,
            "row": None,
            "turns": views.transcript(conversation.transcript, self.engine),
            "colleagues": [s for s in views.speakers(accounts, written or lang) if s.name != me.name],
            "answer_lang": lang,
            "answer_lang_label": f"{language_name(lang)} ({lang})",
            "opening": self.service.opening_status(views.CONSOLE_LOCALE),
        }
        if conversation.handoff is not None:
            now = self.service.clock()
            context["row"] = views.row(conversation, written, lang, self.engine, accounts, me, now)
            guessed = [intent for intent, _ in conversation.handoff.guesses]
            context["answers"] = self._curated_choices(lang, guessed)
        return context

    def _curated_choices(self, lang: str, guessed: list[str]) -> list[dict[str, Any]]:
        answers = self.engine.answers
        intents = sorted(
            (i for i in answers.intents if i not in _BOT_ONLY_ANSWERS),
            key=lambda i: (i not in guessed, guessed.index(i) if i in guessed else 0, answers.title(i, "en")),
        )
        choices = []
        for intent in intents:
            answer = answers.answer(intent, lang)
            english = answers.answer(intent, views.CONSOLE_LOCALE)
            choices.append(
                {
                    "intent": intent,
                    "title": answers.title(intent, views.CONSOLE_LOCALE),
                    "local_title": answers.title(intent, lang),
                    "lang": answer.lang,
                    "text": answer.text,
                    "english": english.text,
                    "guessed": intent in guessed,
                }
            )
        return choices

    async def conversation_page(self, request: Request) -> Response:
        auth = await self._auth(request)
        if auth is None:
            return self._to_signin(request)
        session, me = auth
        context = await self._conversation_context(request.path_params["key"], me)
        if context is None:
            return self._render(request, session, "staff/gone.html", {"me": me}, status=404)
        return self._render(request, session, "staff/conversation.html", context)

    async def conversation_fragment(self, request: Request) -> Response:
        auth = await self._auth(request)
        if auth is None:
            return self._to_signin(request)
        session, me = auth
        context = await self._conversation_context(request.path_params["key"], me)
        if context is None:
            return PlainTextResponse(
                "This conversation no longer exists: the user deleted their data, or it expired.", 404
            )
        return self._render(request, session, "staff/_conversation_live.html", context)

    async def act(self, request: Request) -> Response:
        auth = await self._auth(request)
        if auth is None:
            return self._to_signin(request)
        session, me = auth
        form = await request.form(max_fields=_MAX_FORM_FIELDS)
        submitted = _text(form, CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not csrf_ok(session, submitted):
            log.warning("staff action refused: missing or wrong CSRF token")
            return PlainTextResponse("Missing or wrong CSRF token.", 403)
        key, action = request.path_params["key"], request.path_params["action"]
        if action not in _ACTIONS:
            return PlainTextResponse("Unknown action.", 404)
        page = f"{PREFIX}/c/{key}"
        staff = Staff(me.name, admin=me.admin)
        try:
            flash, page = await self._perform(action, key, staff, form, page)
        except HandoffError as exc:
            flash = str(exc)
        except StorageUnavailable:
            flash = "The conversation store cannot be reached right now; nothing was changed. Try again."
        return self._redirect(request, session, page, flash)

    async def _perform(
        self, action: str, key: str, staff: Staff, form: FormData, page: str
    ) -> tuple[str | None, str]:
        """Run one action; the flash message and where to go next."""
        service = self.service
        if action == "claim":
            await service.claim(key, staff)
            return "You have claimed this conversation.", page
        if action == "takeover":
            await service.claim(key, staff, take_over=True)
            return "You have taken over this conversation.", page
        if action == "reply":
            await service.reply(key, staff, _text(form, "text"))
            return "Sent.", page
        if action == "curated":
            intent = _text(form, "intent")
            await service.send_curated(key, staff, intent)
            return f"Sent the curated answer “{self.engine.answers.title(intent, 'en')}”.", page
        if action == "note":
            await service.note(key, staff, _text(form, "text"))
            return "Note added (not sent to the user).", page
        if action == "transfer":
            colleague = await self.accounts.get(_text(form, "to"))
            if colleague is None:
                return "Choose a colleague from the list.", page
            await service.transfer(key, staff, colleague.name)
            return f"Transferred to {colleague.name}.", page
        problem = await service.close(key, staff)
        self.languages.forget(key)
        return problem or "Closed: the user is back with the bot.", f"{PREFIX}/"

    # -- live updates ------------------------------------------------------------------------

    async def event_stream(self, request: Request) -> Response:
        if await self._auth(request) is None:
            return self._to_signin(request)
        events: asyncio.Queue[Event] = asyncio.Queue(maxsize=256)

        async def enqueue(event: Event) -> None:
            if not events.full():  # a stalled browser must not hold the bot up; ticks catch it up
                events.put_nowait(event)

        async def stream() -> AsyncIterator[str]:
            self.service.events.subscribe(enqueue)
            try:
                yield "retry: 3000\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(events.get(), timeout=TICK_SECONDS)
                    except TimeoutError:
                        yield "event: tick\ndata: {}\n\n"
                        continue
                    if event.kind is EventKind.FORGOTTEN:
                        self.languages.forget(event.key)
                    data = json.dumps({"kind": event.kind.value, "key": event.key, "urgent": event.urgent})
                    yield f"event: change\ndata: {data}\n\n"
            finally:
                self.service.events.unsubscribe(enqueue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
