"""Every interface string is translated in every content language, placeholders intact."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LOCALE_DIR, Catalogs
from tests.conftest import CONTENT_LANGUAGES

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def template_ids() -> list[str]:
    with (LOCALE_DIR / "guichet.pot").open("rb") as handle:
        return [m.id for m in read_po(handle) if m.id]


@pytest.mark.parametrize("lang", CONTENT_LANGUAGES)
def test_catalog_is_complete(lang: str) -> None:
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "guichet.po").open("rb") as handle:
        catalog = read_po(handle)
    for msgid in template_ids():
        message = catalog.get(msgid)
        assert message is not None and message.string, f"{lang}: untranslated {msgid!r}"
        assert not message.fuzzy, f"{lang}: fuzzy {msgid!r}"
        assert set(PLACEHOLDER.findall(message.string)) == set(PLACEHOLDER.findall(msgid)), (lang, msgid)


def test_catalogs_translate_and_fill_parameters() -> None:
    catalogs = Catalogs(CONTENT_LANGUAGES)
    msgid = "A person from %(centre)s will answer you here."
    english = catalogs.gettext("en", msgid, centre="X")
    assert english == "A person from X will answer you here."
    for lang in ("fr", "uk", "ar"):
        translated = catalogs.gettext(lang, msgid, centre="X")
        assert "X" in translated and translated != english
