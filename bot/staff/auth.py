"""Console sign-in: signed session cookies, CSRF tokens and sign-in rate limits.

The session lives in a cookie signed with ``GUICHET_SESSION_SECRET`` (itsdangerous): HttpOnly,
SameSite=Lax, Secure whenever the console is served over https, scoped to ``/staff``. Every
session, signed in or not, carries a random CSRF token that each form and POST must echo back
(form field ``csrf`` or header ``X-CSRF-Token``). Signing in starts a fresh session (new token),
and a session ends when its account's password changes or the account is removed.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from bot.staff.accounts import StaffAccount
from bot.storage import Storage

log = logging.getLogger(__name__)

COOKIE = "guichet_staff"
COOKIE_PATH = "/staff"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
# Sign-in attempts allowed per window, per account name and per client address.
SIGNIN_WINDOW_SECONDS = 15 * 60
SIGNIN_PER_ACCOUNT = 8
SIGNIN_PER_ADDRESS = 30


def session_secret(configured: str | None) -> str:
    """The configured secret; without one, a random key (sessions end when the server restarts)."""
    if configured:
        return configured
    log.warning("GUICHET_SESSION_SECRET is not set: staff sessions end when the server restarts")
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    csrf: str
    staff: str | None = None  # account name once signed in
    version: int = 0  # the account's session_version at sign-in
    flash: str | None = None  # the outcome of the last action, shown once


class SessionCookies:
    """Reads and writes the signed session cookie."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="guichet-staff-session")
        self.max_age = max_age_seconds

    def load(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age)
        except BadSignature:  # also raised for expired cookies
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        staff, flash = data.get("staff"), data.get("flash")
        return Session(
            csrf=data["csrf"],
            staff=staff if isinstance(staff, str) else None,
            version=int(data.get("version", 0)),
            flash=flash if isinstance(flash, str) else None,
        )

    @staticmethod
    def anonymous() -> Session:
        return Session(csrf=secrets.token_urlsafe(32))

    @staticmethod
    def signed_in(account: StaffAccount) -> Session:
        return Session(csrf=secrets.token_urlsafe(32), staff=account.name, version=account.session_version)

    def store(self, request: Request, response: Response, session: Session) -> None:
        value = self._serializer.dumps(
            {"csrf": session.csrf, "staff": session.staff, "version": session.version, "flash": session.flash}
        )
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.max_age,
            path=COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )

    @staticmethod
    def clear(response: Response) -> None:
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax")


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    """The submitted token matches the session's (constant-time comparison)."""
    return bool(session and submitted and hmac.compare_digest(session.csrf, submitted))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def signin_allowed(storage: Storage, name: str, address: str) -> bool:
    """Count one attempt; False once this name or this address tried too often recently.

    Counted in the bot's storage, so the limits hold across workers when Redis is used.
    """
    by_name = await storage.within_rate_limit(
        f"staff-signin:name:{name.strip().casefold()[:64]}", SIGNIN_PER_ACCOUNT, SIGNIN_WINDOW_SECONDS
    )
    by_address = await storage.within_rate_limit(
        f"staff-signin:addr:{address}", SIGNIN_PER_ADDRESS, SIGNIN_WINDOW_SECONDS
    )
    return by_name and by_address
