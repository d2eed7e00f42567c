"""Is this a phone number, is this a link a phone can open? Each check says what is wrong, or None."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

# What may appear in a written phone number besides digits.
_PHONE_CHARS = re.compile(r"^\+?[\d ().\-/]+$")
# International numbers written in answers: "+" then digits with spaces, dots, dashes, brackets.
PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+\d[\d ().\-/]{4,}\d(?!\w)")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$", re.I)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCHEMES = ("https", "http", "mailto", "tel")


def phone_problem(number: str) -> str | None:
    """Short numbers (112, 1220) and international ones (+372 600 1234, at most 15 digits) pass."""
    text = number.strip()
    if not text:
        return "the phone number is empty."
    if not _PHONE_CHARS.match(text) or text.count("+") > 1:
        return (
            f"{number!r} is not a phone number: use only digits and spaces, with + in front for the "
            "country code (for example +372 600 1234)."
        )
    digits = sum(char.isdigit() for char in text)
    if text.startswith("+") and not 8 <= digits <= 15:
        return (
            f"{number!r} has {digits} digits; an international number has 8 to 15 digits including the "
            "country code (for example +372 600 1234)."
        )
    if not 3 <= digits <= 15:
        return f"{number!r} has {digits} digits; a phone number has 3 to 15."
    return None


def link_problem(url: str) -> str | None:
    """http(s) links need a real host name; mailto: an address; tel: a phone number."""
    if not url.strip():
        return "the link is empty."
    if url != url.strip() or any(char.isspace() for char in url):
        return f"the link {url!r} contains spaces; remove them (write %20 for a space inside a link)."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"the link {url!r} cannot be read as a web address."
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        return f"the link {url!r} must start with https:// (or http://, mailto:, tel:)."
    if scheme in {"http", "https"}:
        if not _HOST.match(_ascii_host(parts.hostname or "")):
            return f"the link {url!r} has no valid site name after {scheme}:// (for example https://example.org)."
        return None
    target = unquote(parts.path)
    if scheme == "mailto":
        return None if _EMAIL.match(target) else f"the link {url!r} is not a valid e-mail address."
    problem = phone_problem(target)
    return f"the link {url!r}: {problem}" if problem else None


def _ascii_host(host: str) -> str:
    """The host name in ASCII (IDNA), or "" when it cannot be one."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
