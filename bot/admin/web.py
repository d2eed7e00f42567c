"""The admin pages of the staff console, under ``/staff/admin`` (admin role only), and ``/admin/reload``.

They follow the console's conventions (bot/staff/web.py): the same signed session cookie and
CSRF token, server-rendered pages extending ``staff/base.html``, plain forms (POST, then redirect).
Reloading and teaching take a while (the model retrains), so they run in the background and the
pages refresh themselves until they are done. ``POST /admin/reload`` is for ``guichet content
reload``: it needs ``Authorization: Bearer $GUICHET_ADMIN_TOKEN`` instead of a session.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import deque
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.templating import Jinja2Templates

from bot.admin.inbox import QuestionGroup
from bot.admin.journal import Journal
from bot.admin.reload import ContentReloader
from bot.admin.teach import Lesson, Teacher
from bot.engine import ConversationEngine
from bot.i18n import language_name
from bot.staff import views
from bot.staff.accounts import Accounts, StaffAccount
from bot.staff.auth import CSRF_FIELD, CSRF_HEADER, Session, SessionCookies, csrf_ok
from bot.staff.web import WEB_DIR, _SecurityHeaders

log = logging.getLogger(__name__)

PREFIX = "/staff/admin"
_MAX_FORM_FIELDS = 20
_LESSONS_SHOWN = 10
_AUDIT_ROWS = 200


class AdminWeb:
    """The admin pages; every handler first checks for a signed-in admin."""

    def __init__(
        self,
        reloader: ContentReloader,
        teacher: Teacher,
        journal: Journal,
        accounts: Accounts,
        cookies: SessionCookies,
        admin_token: str | None,
    ) -> None:
        self.reloader = reloader
        self.teacher = teacher
        self.journal = journal
        self.accounts = accounts
        self.cookies = cookies
        self.admin_token = admin_token
        self.templates = Jinja2Templates(directory=WEB_DIR / "templates")
        self.lessons: deque[Lesson] = deque(maxlen=_LESSONS_SHOWN)
        self._jobs: set[asyncio.Task[Any]] = set()

    @property
    def engine(self) -> ConversationEngine:
        return self.reloader.engine

    def routes(self) -> list[BaseRoute]:
        pages = _SecurityHeaders(
            Router(
                routes=[
                    Route("/", self.overview, methods=["GET"]),
                    Route("/reload", self.reload_now, methods=["POST"]),
                    Route("/inbox", self.inbox_page, methods=["GET"]),
                    Route("/inbox/assign", self.assign, methods=["POST"]),
                    Route("/inbox/dismiss", self.dismiss, methods=["POST"]),
                    Route("/ratings", self.ratings_page, methods=["GET"]),
                    Route("/audit", self.audit_page, methods=["GET"]),
                ]
            )
        )
        return [Mount(PREFIX, app=pages), Route("/admin/reload", self.reload_with_token, methods=["POST"])]

    # -- sessions (the console's cookie; admins only) ------------------------------------------

    async def _admin(self, request: Request) -> tuple[Session, StaffAccount] | Response:
        session = self.cookies.load(request)
        account = await self.accounts.get(session.staff) if session and session.staff else None
        if session is None or account is None or account.session_version != session.version:
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/staff/signin", status_code=303)
            return PlainTextResponse("Sign in to the staff console first.", status_code=401)
        if not account.admin:
            return PlainTextResponse("Only admins can open this page.", status_code=403)
        return session, account

    async def _posted(self, request: Request) -> tuple[Session, StaffAccount, FormData] | Response:
        auth = await self._admin(request)
        if isinstance(auth, Response):
            return auth
        form = await request.form(max_fields=_MAX_FORM_FIELDS)
        if not csrf_ok(auth[0], _text(form, CSRF_FIELD) or request.headers.get(CSRF_HEADER)):
            log.warning("admin action refused: missing or wrong CSRF token")
            return PlainTextResponse("Missing or wrong CSRF token.", status_code=403)
        return auth[0], auth[1], form

    def _render(
        self, request: Request, session: Session, me: StaffAccount, template: str, context: dict[str, Any]
    ) -> Response:
        flash, session.flash = session.flash, None
        busy = self.reloader.reloading or any(lesson.state == "learning" for lesson in self.lessons)
        context = {
            "csrf": session.csrf,
            "flash": flash,
            "centre": self.engine.config.organisation,
            "me": me,
            "busy": busy,
            "version": self.reloader.version,
            "lessons": list(reversed(self.lessons)),
            **context,
        }
        response = self.templates.TemplateResponse(request, template, context)
        if flash is not None:
            self.cookies.store(request, response, session)
        return response

    def _redirect(self, request: Request, session: Session, to: str, flash: str) -> Response:
        session.flash = flash
        response = RedirectResponse(to, status_code=303)
        self.cookies.store(request, response, session)
        return response

    def _in_background(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def cancel_jobs(self) -> None:
        """At shutdown: the files on disk are checked and loaded again at the next start."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    # -- overview and reload ------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        auth = await self._admin(request)
        if isinstance(auth, Response):
            return auth
        session, me = auth
        waiting = len(await self.journal.inbox.questions())
        context = {"last": self.reloader.last, "waiting": waiting}
        return self._render(request, session, me, "staff/admin/overview.html", context)

    async def reload_now(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, _, _ = posted
        log.info("content reload asked from the console")
        self._in_background(self.reloader.reload())
        return self._redirect(
            request, session, f"{PREFIX}/", "Checking the files and retraining; this page shows the result."
        )

    async def reload_with_token(self, request: Request) -> Response:
        token = self.admin_token
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            return PlainTextResponse(
                "Reloading over HTTP is off: set GUICHET_ADMIN_TOKEN on the server.", 403
            )
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("Wrong or missing admin token.", 401)
        outcome = await self.reloader.reload()
        return JSONResponse(outcome.as_json(), status_code=200 if outcome.status != "failed" else 500)

    # -- the unanswered-questions inbox ----------------------------------------------------------

    async def inbox_page(self, request: Request) -> Response:
        auth = await self._admin(request)
        if isinstance(auth, Response):
            return auth
        session, me = auth
        groups = await self.journal.inbox.groups()
        context = {"groups": [self._group_view(g) for g in groups]}
        return self._render(request, session, me, "staff/admin/inbox.html", context)

    def _group_view(self, group: QuestionGroup) -> dict[str, Any]:
        guesses = group.guesses()
        guessed = [intent for intent, _ in guesses if intent in self.teacher.topics()]
        topics = guessed + [t for t in self.teacher.topics() if t not in guessed]
        content = self.engine.config.languages.content
        lang = group.lang if group.lang in content else self.engine.config.organisation.language
        return {
            "id": group.id,
            "text": group.text,
            "count": group.count,
            "others": [q.text for q in group.questions[1:6]],
            "languages": ", ".join(group.languages) or "?",
            "outcome": group.questions[0].outcome_label,
            "last": views.clock(group.last_at, self.engine),
            "day": group.last_at.astimezone(self.engine.config.organisation.zone).date().isoformat(),
            "guesses": [f"{views.topic_name(i, self.engine)} {s:.0%}" for i, s in guesses],
            "topics": [(t, views.topic_name(t, self.engine)) for t in topics],
            "lang": lang,
            "langs": [(code, f"{language_name(code)} ({code})") for code in content],
        }

    async def assign(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, _, form = posted
        group = await self.journal.inbox.group(_text(form, "group"))
        if group is None:
            return self._redirect(
                request, session, f"{PREFIX}/inbox", "This question is no longer in the inbox."
            )
        lesson = Lesson(
            text=_text(form, "text") or group.text, intent=_text(form, "intent"), lang=_text(form, "lang")
        )
        self.lessons.append(lesson)
        log.info("admin assigned an inbox question to %s (%s)", lesson.intent, lesson.lang)
        self._in_background(self.teacher.teach(lesson, group.ids))
        return self._redirect(
            request,
            session,
            f"{PREFIX}/inbox",
            f"Teaching the bot this question as {lesson.intent}; it retrains now (this page shows when it is done).",
        )

    async def dismiss(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, _, form = posted
        group = await self.journal.inbox.group(_text(form, "group"))
        if group is not None:
            await self.journal.inbox.remove(group.ids)
        count = group.count if group else 0
        return self._redirect(request, session, f"{PREFIX}/inbox", f"Dismissed {count} question(s).")

    # -- ratings and the audit log ---------------------------------------------------------------

    async def ratings_page(self, request: Request) -> Response:
        auth = await self._admin(request)
        if isinstance(auth, Response):
            return auth
        session, me = auth
        rows = [
            {
                "topic": views.topic_name(row.intent, self.engine),
                "intent": row.intent,
                "lang": row.lang,
                "up": row.up,
                "down": row.down,
                "share": f"{row.helpful_share:.0%}",
                "weak": row.total >= 5 and row.helpful_share < 0.5,
            }
            for row in await self.journal.ratings.table()
        ]
        context = {"rows": rows, "enabled": self.engine.config.feedback.ratings}
        return self._render(request, session, me, "staff/admin/ratings.html", context)

    async def audit_page(self, request: Request) -> Response:
        auth = await self._admin(request)
        if isinstance(auth, Response):
            return auth
        session, me = auth
        key = request.query_params.get("key", "").strip()[:64] or None
        intent = request.query_params.get("intent", "").strip()[:64] or None
        zone = self.engine.config.organisation.zone
        rows = [
            {
                "at": entry.at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                "key": entry.key,
                "topic": views.topic_name(entry.intent, self.engine),
                "intent": entry.intent,
                "lang": entry.lang,
                "by": entry.by,
                "version": entry.version,
            }
            for entry in await self.journal.audit.recent(limit=_AUDIT_ROWS, key=key, intent=intent)
        ]
        context = {"rows": rows, "key": key or "", "intent": intent or "", "limit": _AUDIT_ROWS}
        return self._render(request, session, me, "staff/admin/audit.html", context)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
