"""The bot's own interface strings, through Babel message catalogs.

Catalogs live in ``bot/locale/<lang>/LC_MESSAGES/guichet.po`` (template ``bot/locale/guichet.pot``)
and are compiled to ``.mo`` at install (``make install``). A missing or stale ``.mo`` is compiled
in memory from its ``.po``, so a fresh checkout works too.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "guichet"


def N_(message: str) -> str:
    """Mark ``message`` for extraction into the catalog template without translating it yet."""
    return message


def _load(lang: str, locale_dir: Path) -> NullTranslations:
    folder = locale_dir / lang / "LC_MESSAGES"
    po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    if po.exists():
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=lang, domain=DOMAIN)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        return Translations(buffer, domain=DOMAIN)
    return NullTranslations()


class Catalogs:
    """Translated interface strings for each content language; English msgids are the source."""

    def __init__(self, languages: Iterable[str], locale_dir: Path = LOCALE_DIR) -> None:
        self.languages = tuple(languages)
        self._translations = {lang: _load(lang, locale_dir) for lang in self.languages}

    def gettext(self, lang: str, message: str, **params: object) -> str:
        """``message`` translated into ``lang``, with ``%(name)s`` parameters filled in."""
        translations = self._translations.get(lang)
        text = translations.gettext(message) if translations else message
        return text % params if params else text


def negotiate(preferred: Iterable[str], available: Iterable[str]) -> str | None:
    """Match platform language tags (``uk-UA``, ``pt_BR``) to one of our languages."""
    tags = [tag.replace("-", "_") for tag in preferred if tag]
    return negotiate_locale(tags, list(available), sep="_")


def language_name(lang: str) -> str:
    """The language's own name for itself (``українська``), for language menus."""
    try:
        name = Locale.parse(lang).get_display_name(lang) or lang
    except (UnknownLocaleError, ValueError):
        return lang
    return name[:1].upper() + name[1:]
