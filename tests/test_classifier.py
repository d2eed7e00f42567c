"""The intent classifier's contract: ranking, persistence and the training cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.classifier import OUT_OF_SCOPE, IntentClassifier, load_or_train
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
