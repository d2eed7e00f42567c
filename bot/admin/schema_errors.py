"""Pydantic validation errors turned into plain words at the right line of the YAML file."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.admin.problems import Report
from bot.admin.yaml_source import line_of

# Decides that an error was already reported in better words (return True to skip it).
Skip = Callable[[tuple[int | str, ...], ErrorDetails], bool]


def report_validation(
    report: Report,
    path: Path,
    raw: Any,
    exc: ValidationError,
    *,
    code: str,
    allowed_keys: Callable[[tuple[int | str, ...]], Collection[str]] | None = None,
    skip: Skip | None = None,
) -> None:
    """One problem per validation error, at the line of the key it is about."""
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        if skip and skip(loc, error):
            continue
        known = allowed_keys(loc[:-1]) if allowed_keys and error["type"] == "extra_forbidden" else ()
        report.error(code, path, line_of(raw, loc) or 1, f"{where(loc)}: {plain(error, known)}")


def where(loc: tuple[int | str, ...]) -> str:
    """``answers.en.buttons[2]`` for an error location."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the file"


def plain(error: ErrorDetails, known_keys: Collection[str] = ()) -> str:
    """What is wrong, in words an admin understands."""
    kind = error["type"]
    if kind == "missing":
        return "this is required but missing."
    if kind == "extra_forbidden":
        name = str(error["loc"][-1]) if error["loc"] else "?"
        guess = difflib.get_close_matches(name, list(known_keys), n=1)
        hint = f" Did you mean `{guess[0]}`?" if guess else ""
        return f"`{name}` is not a setting guichet knows (a typing mistake, or wrongly indented).{hint}"
    if kind in {"string_type", "str_type"}:
        return "this should be text."
    if kind in {"string_too_short", "too_short"}:
        return "this is empty; write something here."
    if kind in {"int_parsing", "int_type", "float_parsing", "float_type"}:
        return f"this should be a number, not {error.get('input')!r}."
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "this should be a group of `name: value` lines (indented below it)."
    if kind in {"list_type"}:
        return "this should be a list (lines starting with `- `, or [a, b])."
    if kind == "literal_error":
        return f"this must be one of {error.get('ctx', {}).get('expected', 'the allowed values')}."
    if kind in {"date_from_datetime_parsing", "date_parsing", "date_type"}:
        return f"this should be a date written YYYY-MM-DD, not {error.get('input')!r}."
    message = error["msg"].removeprefix("Value error, ")
    return message[:1].lower() + message[1:] + ("" if message.endswith(".") else ".")
