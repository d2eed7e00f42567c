"""Quality floors of the whole decision on the shipped held-out data: a content or model change
that makes the bot worse fails CI. Floors sit just under the figures reached (see docs/nlu.md);
measure with ``guichet nlu eval tests/data/heldout tests/data/out_of_scope.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config
from nlu.embedded import EmbeddedNLU
from nlu.evaluate import Report, evaluate, read_labelled

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def heldout(config: Config, embedded_nlu: EmbeddedNLU) -> Report:
    messages = read_labelled([DATA / "heldout", DATA / "out_of_scope.jsonl"])
    return evaluate(((m, embedded_nlu.understand_now(m.text)) for m in messages), config.nlu.thresholds)


@pytest.fixture(scope="module")
def unseen(config: Config, embedded_nlu: EmbeddedNLU) -> Report:
    messages = read_labelled([DATA / "unseen_languages.jsonl"])
    return evaluate(((m, embedded_nlu.understand_now(m.text)) for m in messages), config.nlu.thresholds)


def test_heldout_floors(heldout: Report) -> None:
    figures = heldout.overall.figures()
    assert figures["helped"] is not None and figures["helped"] >= 84.0, figures
    assert figures["wrong_answer_rate"] is not None and figures["wrong_answer_rate"] <= 11.5, figures
    assert figures["oos_recall"] is not None and figures["oos_recall"] >= 93.0, figures


def test_every_emergency_is_caught(heldout: Report) -> None:
    assert heldout.overall.figures()["emergency_recall"] == 100.0


@pytest.mark.parametrize("lang", ["fr", "en", "nl", "ar", "uk", "ru", "et"])
def test_every_content_language_is_helped(heldout: Report, lang: str) -> None:
    helped = heldout.by_lang[lang].figures()["helped"]
    assert helped is not None and helped >= 70.0, (lang, helped)


def test_unseen_languages_are_mostly_helped(unseen: Report) -> None:
    figures = unseen.overall.figures()
    assert figures["helped"] is not None and figures["helped"] >= 80.0, figures
    assert figures["emergency_recall"] == 100.0
