"""The shipped answers: complete, valid, and falling back without ever going empty."""

from __future__ import annotations

import pytest

from bot.config import Config
from bot.content import AnswerBook, ResponseFile, load_response_files, placeholders_in
from bot.i18n import Catalogs
from tests.conftest import CONTENT_LANGUAGES, INTENTS


@pytest.fixture(scope="module")
def responses(config: Config) -> dict[str, ResponseFile]:
    return load_response_files(config.responses_dir)


@pytest.fixture(scope="module")
def book(config: Config, responses: dict[str, ResponseFile]) -> AnswerBook:
    return AnswerBook(responses, config, Catalogs(config.languages.content))


def test_every_intent_has_an_answer_file(responses: dict[str, ResponseFile]) -> None:
    assert sorted(responses) == sorted(INTENTS)


@pytest.mark.parametrize("intent", INTENTS)
def test_every_intent_is_answered_in_every_content_language(
    intent: str, responses: dict[str, ResponseFile]
) -> None:
    spec = responses[intent]
    assert sorted(spec.answers) == sorted(CONTENT_LANGUAGES)
    assert sorted(spec.title) == sorted(CONTENT_LANGUAGES)


@pytest.mark.parametrize("intent", INTENTS)
def test_placeholders_and_buttons_are_defined(
    intent: str, responses: dict[str, ResponseFile], book: AnswerBook
) -> None:
    known = set(book.placeholder_values("en"))
    for lang, answer in responses[intent].answers.items():
        assert placeholders_in(answer.text) <= known, (intent, lang)
        assert set(answer.buttons) <= set(INTENTS), (intent, lang)
        assert len(answer.text) < 4096


@pytest.mark.parametrize("lang", CONTENT_LANGUAGES)
def test_answers_render_with_the_centre_details(lang: str, book: AnswerBook, config: Config) -> None:
    guichet = book.answer("guichet_info", lang)
    assert guichet.lang == lang
    assert "{" not in guichet.text
    emergency = book.answer("emergency", lang)
    assert config.organisation.numbers["emergency"] in emergency.text


def test_missing_translation_falls_back_along_the_chain(
    config: Config, responses: dict[str, ResponseFile]
) -> None:
    partial = responses["housing_search"].model_copy(deep=True)
    del partial.answers["uk"]
    book = AnswerBook({"housing_search": partial}, config, Catalogs(config.languages.content))
    answer = book.answer("housing_search", "uk")
    assert answer.lang == config.languages.chain("uk")[1]
    assert answer.lang != "ru" and answer.text


def test_ukrainian_chain_never_goes_through_russian(config: Config) -> None:
    assert "ru" not in config.languages.chain("uk")


def test_only_russian_left_still_never_answers_ukrainian_in_russian(
    config: Config, responses: dict[str, ResponseFile]
) -> None:
    partial = responses["housing_search"].model_copy(deep=True)
    partial.answers = {"ru": partial.answers["ru"], "et": partial.answers["et"]}
    book = AnswerBook({"housing_search": partial}, config, Catalogs(config.languages.content))
    assert book.answer("housing_search", "uk").lang == "et"
