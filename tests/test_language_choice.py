"""The answer language: detection, stored choice, channel hint; Ukrainian never moved to Russian."""

from __future__ import annotations

from bot.language import answer_language
from nlu.langid import LanguageGuess

CONTENT = ["fr", "en", "nl", "ar", "uk", "ru", "et"]


def test_confident_detection_wins() -> None:
    assert answer_language(LanguageGuess("fr", 0.9), "en", False, None, CONTENT) == "fr"


def test_explicit_choice_wins_over_detection() -> None:
    assert answer_language(LanguageGuess("fr", 0.99), "en", True, None, CONTENT) == "en"


def test_short_message_keeps_stored_language() -> None:
    assert answer_language(LanguageGuess(None, 0.0), "ar", False, None, CONTENT) == "ar"


def test_hint_is_used_when_nothing_else_is_known() -> None:
    assert answer_language(LanguageGuess(None, 0.0), None, False, "uk-UA", CONTENT) == "uk"


def test_ukrainian_user_is_not_switched_to_russian() -> None:
    assert answer_language(LanguageGuess("ru", 0.95), "uk", False, None, CONTENT) == "uk"
    assert answer_language(LanguageGuess("ru", 0.95), None, False, "uk", CONTENT) == "uk"


def test_russian_user_may_switch_to_ukrainian() -> None:
    assert answer_language(LanguageGuess("uk", 0.95), "ru", False, None, CONTENT) == "uk"


def test_language_without_content_keeps_stored_or_default() -> None:
    assert answer_language(LanguageGuess("es", 0.99), None, False, None, CONTENT) == "en"
    assert answer_language(LanguageGuess("es", 0.99), "fr", False, None, CONTENT) == "fr"
