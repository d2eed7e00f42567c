"""Staff accounts: who may sign in to the console, which languages they speak, their role.

Passwords are hashed with Argon2id (argon2-cffi); hashes with outdated parameters are
upgraded at the next successful sign-in. Changing a password or removing an account ends
every session of that account (``session_version``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field

from bot.config import Config
from bot.staff.records import Records, records_for

Role = Literal["staff", "admin"]
MIN_PASSWORD = 10
_NAME = re.compile(r"^[^\W\d_][\w .'-]{0,39}$")
_LANG = re.compile(r"^[a-z]{2,3}$")


class AccountError(ValueError):
    """A bad name, password or language list; the message says what to change."""


class StaffAccount(BaseModel):
    name: str
    languages: list[str] = Field(default_factory=list)  # ISO 639-1 codes, e.g. ["uk", "ru"]
    role: Role = "staff"
    password_hash: str
    session_version: int = 1

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def speaks(self, lang: str | None) -> bool:
        return lang is not None and lang in self.languages


def parse_languages(text: str) -> list[str]:
    """``"uk, ru"`` → ``["uk", "ru"]``; refuses anything that is not a language code."""
    codes = [code.strip().lower() for code in text.split(",") if code.strip()]
    bad = [code for code in codes if not _LANG.match(code)]
    if bad:
        raise AccountError(f"not language codes: {', '.join(bad)} (use ISO codes such as uk,ru,ar)")
    return list(dict.fromkeys(codes))


class Accounts:
    """The staff accounts of one guichet."""

    def __init__(self, records: Records, hasher: PasswordHasher | None = None) -> None:
        self._records = records
        self._hasher = hasher or PasswordHasher()
        # Verified against when the name is unknown, so a wrong name costs as much time as a wrong password.
        self._dummy_hash = self._hasher.hash("not a password of anyone")

    @classmethod
    def from_config(cls, config: Config) -> Accounts:
        return cls(records_for(config.storage.url, config.handoff.staff_dir, "accounts"))

    @staticmethod
    def _id(name: str) -> str:
        return name.strip().casefold()

    async def get(self, name: str) -> StaffAccount | None:
        record = await self._records.get(self._id(name))
        return StaffAccount.model_validate(record) if record else None

    async def all(self) -> list[StaffAccount]:
        records = await self._records.all()
        return sorted(
            (StaffAccount.model_validate(r) for r in records.values()), key=lambda a: a.name.casefold()
        )

    async def add(self, name: str, languages: Iterable[str], role: Role, password: str) -> StaffAccount:
        name = name.strip()
        if not _NAME.match(name):
            raise AccountError(
                "a name starts with a letter and has at most 40 letters, digits, spaces, . ' -"
            )
        if await self.get(name) is not None:
            raise AccountError(f"there is already an account named {name!r}")
        account = StaffAccount(
            name=name, languages=list(languages), role=role, password_hash=await self._hash(password)
        )
        await self._save(account)
        return account

    async def set_password(self, name: str, password: str) -> StaffAccount:
        """A new password; the account's open sessions end."""
        account = await self._existing(name)
        account.password_hash = await self._hash(password)
        account.session_version += 1
        await self._save(account)
        return account

    async def update(
        self, name: str, *, languages: Iterable[str] | None = None, role: Role | None = None
    ) -> StaffAccount:
        account = await self._existing(name)
        if languages is not None:
            account.languages = list(languages)
        if role is not None:
            account.role = role
        await self._save(account)
        return account

    async def remove(self, name: str) -> None:
        await self._existing(name)
        await self._records.delete(self._id(name))

    async def authenticate(self, name: str, password: str) -> StaffAccount | None:
        """The account if ``password`` is right, else None (same cost for unknown names)."""
        account = await self.get(name)
        hashed = account.password_hash if account else self._dummy_hash
        if not await asyncio.to_thread(self._verify, hashed, password) or account is None:
            return None
        if self._hasher.check_needs_rehash(account.password_hash):
            account.password_hash = await self._hash(password)
            await self._save(account)
        return account

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _existing(self, name: str) -> StaffAccount:
        account = await self.get(name)
        if account is None:
            raise AccountError(f"there is no account named {name!r}")
        return account

    async def _save(self, account: StaffAccount) -> None:
        await self._records.put(self._id(account.name), account.model_dump())

    async def close(self) -> None:
        await self._records.close()
