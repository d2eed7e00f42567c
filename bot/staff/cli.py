"""``guichet staff``: create and manage the accounts that sign in to the staff console."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable

from bot.config import Config
from bot.staff.accounts import AccountError, Accounts, parse_languages


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    staff = commands.add_parser("staff", help="staff console accounts (add, list, passwd, update, remove)")
    sub = staff.add_subparsers(dest="staff_command", required=True)

    def password_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin instead of prompting"
        )

    add = sub.add_parser("add", help="create an account")
    add.add_argument("name", help="the name colleagues see, e.g. Olena")
    add.add_argument("--languages", default="", help="languages this person speaks, e.g. uk,ru")
    add.add_argument("--role", choices=["staff", "admin"], default="staff", help="admins may take over chats")
    password_option(add)
    add.set_defaults(func=_add)

    listing = sub.add_parser("list", help="list the accounts")
    listing.set_defaults(func=_list)

    passwd = sub.add_parser("passwd", help="set a new password (ends the account's open sessions)")
    passwd.add_argument("name")
    password_option(passwd)
    passwd.set_defaults(func=_passwd)

    update = sub.add_parser("update", help="change an account's languages or role")
    update.add_argument("name")
    update.add_argument("--languages", help="the new list, e.g. ar,fr")
    update.add_argument("--role", choices=["staff", "admin"])
    update.set_defaults(func=_update)

    remove = sub.add_parser("remove", help="delete an account (its sessions end at once)")
    remove.add_argument("name")
    remove.set_defaults(func=_remove)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise AccountError("the two passwords differ")
    return first


def _run(config: Config, action: Callable[[Accounts], Awaitable[str]]) -> int:
    async def run() -> str:
        accounts = Accounts.from_config(config)
        try:
            return await action(accounts)
        finally:
            await accounts.close()

    try:
        print(asyncio.run(run()))
    except AccountError as exc:
        print(f"guichet staff: {exc}", file=sys.stderr)
        return 2
    return 0


def _add(args: argparse.Namespace, config: Config) -> int:
    try:
        languages = parse_languages(args.languages)
        password = _read_password(args)
    except AccountError as exc:
        print(f"guichet staff: {exc}", file=sys.stderr)
        return 2

    async def add(accounts: Accounts) -> str:
        account = await accounts.add(args.name, languages, args.role, password)
        return f"Added {account.role} {account.name} ({', '.join(account.languages) or 'no languages'})."

    return _run(config, add)


def _list(args: argparse.Namespace, config: Config) -> int:
    async def listing(accounts: Accounts) -> str:
        rows = [f"{a.name}\t{a.role}\t{','.join(a.languages)}" for a in await accounts.all()]
        return "\n".join(rows) if rows else "No staff accounts yet: add one with `guichet staff add NAME`."

    return _run(config, listing)


def _passwd(args: argparse.Namespace, config: Config) -> int:
    try:
        password = _read_password(args)
    except AccountError as exc:
        print(f"guichet staff: {exc}", file=sys.stderr)
        return 2

    async def passwd(accounts: Accounts) -> str:
        account = await accounts.set_password(args.name, password)
        return f"New password set for {account.name}; their open sessions have ended."

    return _run(config, passwd)


def _update(args: argparse.Namespace, config: Config) -> int:
    async def update(accounts: Accounts) -> str:
        languages = parse_languages(args.languages) if args.languages is not None else None
        account = await accounts.update(args.name, languages=languages, role=args.role)
        return f"{account.name}: {account.role}, {', '.join(account.languages) or 'no languages'}."

    return _run(config, update)


def _remove(args: argparse.Namespace, config: Config) -> int:
    async def remove(accounts: Accounts) -> str:
        await accounts.remove(args.name)
        return f"Removed {args.name}."

    return _run(config, remove)
