"""Quality floors of the whole decision on the shipped test sets: a content or model change that
makes the bot worse fails CI. Floors sit just under the figures reached (see docs/nlu.md); measure
with ``guichet nlu eval tests/data/heldout tests/data/out_of_scope.jsonl`` (and ``tests/data/blind``,
``tests/data/unseen_languages.jsonl``).

``tests/data/blind`` was written after the rest, by someone who saw neither the training examples
nor the other test sets, and no choice was tuned on it: it is the fairest of the three.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config
from nlu.embedded import EmbeddedNLU
from nlu.evaluate import Report, evaluate, read_labelled

DATA = Path(__file__).resolve().parent / "data"


def report_on(paths: list[Path], config: Config, nlu: EmbeddedNLU) -> Report:
    messages = read_labelled(paths)
    understood = nlu.understand_batch([message.text for message in messages])
    return evaluate(zip(messages, understood, strict=True), config.nlu.thresholds)


@pytest.fixture(scope="module")
def heldout(config: Config, embedded_nlu: EmbeddedNLU) -> Report:
    return report_on([DATA / "heldout", DATA / "out_of_scope.jsonl"], config, embedded_nlu)


@pytest.fixture(scope="module")
def blind(config: Config, embedded_nlu: EmbeddedNLU) -> Report:
    return report_on([DATA / "blind"], config, embedded_nlu)


@pytest.fixture(scope="module")
def unseen(config: Config, embedded_nlu: EmbeddedNLU) -> Report:
    return report_on([DATA / "unseen_languages.jsonl"], config, embedded_nlu)


def test_heldout_floors(heldout: Report) -> None:
    figures = heldout.overall.figures()
    assert figures["helped"] is not None and figures["helped"] >= 92.5, figures
    assert figures["wrong_answer_rate"] is not None and figures["wrong_answer_rate"] <= 3.5, figures
    assert figures["oos_recall"] is not None and figures["oos_recall"] >= 97.0, figures


def test_blind_floors(blind: Report) -> None:
    figures = blind.overall.figures()
    assert figures["helped"] is not None and figures["helped"] >= 97.0, figures
    assert figures["wrong_answer_rate"] is not None and figures["wrong_answer_rate"] <= 2.5, figures
    assert figures["oos_recall"] is not None and figures["oos_recall"] >= 92.0, figures
    assert figures["emergency_recall"] == 100.0


def test_every_emergency_is_caught(heldout: Report) -> None:
    assert heldout.overall.figures()["emergency_recall"] == 100.0


@pytest.mark.parametrize("lang", ["fr", "en", "nl", "ar", "uk", "ru", "et"])
def test_every_content_language_is_helped(heldout: Report, blind: Report, lang: str) -> None:
    helped = heldout.by_lang[lang].figures()["helped"]
    assert helped is not None and helped >= 87.0, (lang, helped)
    helped = blind.by_lang[lang].figures()["helped"]
    assert helped is not None and helped >= 94.0, (lang, helped)


def test_unseen_languages_are_mostly_helped(unseen: Report) -> None:
    figures = unseen.overall.figures()
    assert figures["helped"] is not None and figures["helped"] >= 82.0, figures
    assert figures["wrong_answer_rate"] is not None and figures["wrong_answer_rate"] <= 5.0, figures
    assert figures["emergency_recall"] == 100.0
