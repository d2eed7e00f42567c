"""Pseudonymous user keys: storage never holds a raw phone number or chat id as a key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from bot.config import PROJECT_ROOT

_SECRET_FILE = PROJECT_ROOT / ".cache" / "pseudonym.key"


def pseudonym_secret() -> bytes:
    """``GUICHET_SECRET_KEY`` (shared by every worker), else a key created once on this machine."""
    if value := os.environ.get("GUICHET_SECRET_KEY"):
        return value.encode()
    if not _SECRET_FILE.exists():
        _SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
        temp = _SECRET_FILE.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(secrets.token_hex(32))
        temp.replace(_SECRET_FILE)
    return Path(_SECRET_FILE).read_text().strip().encode()


def pseudonym(channel: str, user_id: str, secret: bytes) -> str:
    """A stable keyed hash of the user's platform identity."""
    digest = hmac.new(secret, f"{channel}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"{channel[:2]}{digest[:30]}"
