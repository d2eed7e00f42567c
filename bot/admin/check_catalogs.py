"""The message catalogs (``bot/locale``): every interface string translated, with the same placeholders."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import PoFileError, read_po

from bot.admin.problems import Report
from bot.i18n import DOMAIN, LOCALE_DIR

_PARAM = re.compile(r"%\((\w+)\)[sdif]")


def check_catalogs(languages: Collection[str], report: Report, locale_dir: Path = LOCALE_DIR) -> None:
    """Missing catalogs and translations (warnings), placeholders that differ from English (errors)."""
    template = _read(locale_dir / f"{DOMAIN}.pot", "en", report)
    expected = {m.id for m in template if m.id and isinstance(m.id, str)} if template else set()
    for lang in languages:
        path = locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not path.is_file():
            report.warning(
                "missing-catalog",
                path,
                None,
                f"there is no {lang} catalog: the bot's own sentences (buttons, notices) are shown in English.",
            )
            continue
        catalog = _read(path, lang, report)
        if catalog is not None:
            _check_catalog(path, lang, catalog, expected, report)


def _read(path: Path, lang: str, report: Report) -> Catalog | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            return read_po(handle, locale=lang, domain=DOMAIN, abort_invalid=True)
    except (PoFileError, ValueError, UnicodeDecodeError) as exc:
        report.error("catalog", path, getattr(exc, "lineno", None), f"this catalog cannot be read ({exc}).")
        return None


def _check_catalog(path: Path, lang: str, catalog: Catalog, expected: set[str], report: Report) -> None:
    present: set[str] = set()
    for message in catalog:
        if not message.id or not isinstance(message.id, str) or not isinstance(message.string, str):
            continue  # the header, and plural forms (not used by guichet)
        present.add(message.id)
        line = message.lineno or None
        short = message.id if len(message.id) <= 60 else message.id[:57] + "..."
        if not message.string:
            report.warning(
                "untranslated",
                path,
                line,
                f"“{short}” is not translated into {lang}: it is shown in English.",
            )
            continue
        if message.fuzzy:
            report.warning(
                "fuzzy",
                path,
                line,
                f"the {lang} translation of “{short}” is marked fuzzy: check it and remove the fuzzy flag.",
            )
        wanted, written = set(_PARAM.findall(message.id)), set(_PARAM.findall(message.string))
        if wanted != written or not _formats(message.string, wanted):
            names = ", ".join(f"%({n})s" for n in sorted(wanted)) or "none"
            report.error(
                "catalog-placeholders",
                path,
                line,
                f"the {lang} translation of “{short}” must use exactly the placeholders of the English "
                f"text ({names}), written the same way.",
            )
    for msgid in sorted(expected - present):
        short = msgid if len(msgid) <= 60 else msgid[:57] + "..."
        report.warning(
            "catalog-outdated",
            path,
            None,
            f"“{short}” is missing from the {lang} catalog: run `make messages`, then translate it.",
        )


def _formats(text: str, names: set[str]) -> bool:
    """The translation can be filled in the way the bot fills it (``text % params``)."""
    if not names:
        return True
    try:
        text % {name: "x" for name in names}
    except (KeyError, ValueError, TypeError):
        return False
    return True
