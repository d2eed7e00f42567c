"""The embedded NLU ranks messages that arrive together in one batch, with the same results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from nlu.classifier import IntentClassifier
from nlu.embedded import MAX_BATCH, EmbeddedNLU
from tests.test_classifier import examples

TEXTS = ["je cherche un appartement", "hello", "ищу квартиру", "estonian lessons", "tell me a joke"]


class CountingClassifier(IntentClassifier):
    """The real classifier, noting the size of every batch it is asked to rank."""

    batches: list[int]

    def rank_batch(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        self.batches.append(len(texts))
        return super().rank_batch(texts)


class BrokenClassifier(IntentClassifier):
    def rank_batch(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        raise MemoryError("the model could not run")


@pytest.fixture(scope="module")
def trained() -> IntentClassifier:
    return IntentClassifier.train(examples())


def nlu_with(
    embedded_nlu: EmbeddedNLU, classifier_class: type[IntentClassifier], trained: IntentClassifier
) -> EmbeddedNLU:
    classifier = classifier_class(trained._experts, trained.mixing)
    if isinstance(classifier, CountingClassifier):
        classifier.batches = []
    return EmbeddedNLU(classifier, embedded_nlu.languages, embedded_nlu.detector)


async def test_messages_arriving_together_share_a_batch_and_get_their_own_results(
    embedded_nlu: EmbeddedNLU, trained: IntentClassifier
) -> None:
    nlu = nlu_with(embedded_nlu, CountingClassifier, trained)
    texts = TEXTS * 30  # 150 messages at once
    understood = await asyncio.gather(*(nlu.understand(text) for text in texts))
    alone = {text: nlu.understand_now(text) for text in TEXTS}
    for text, understanding in zip(texts, understood, strict=True):
        assert understanding.text == text
        assert understanding.intent == alone[text].intent
        assert understanding.confidence == pytest.approx(alone[text].confidence, abs=1e-5)
        assert understanding.lang == alone[text].lang
    assert isinstance(nlu.classifier, CountingClassifier)
    batches = nlu.classifier.batches[: -len(TEXTS)]  # the rest are the one-by-one calls above
    assert sum(batches) == len(texts)
    assert max(batches) <= MAX_BATCH and len(batches) < len(texts) / 10


async def test_a_lone_message_does_not_wait_for_company(
    embedded_nlu: EmbeddedNLU, trained: IntentClassifier
) -> None:
    nlu = nlu_with(embedded_nlu, CountingClassifier, trained)
    for text in TEXTS:
        assert (await nlu.understand(text)).intent == nlu.understand_now(text).intent
    assert isinstance(nlu.classifier, CountingClassifier)
    assert nlu.classifier.batches == [1] * (2 * len(TEXTS))


async def test_a_model_error_reaches_every_waiting_caller_and_the_next_batch_runs(
    embedded_nlu: EmbeddedNLU, trained: IntentClassifier
) -> None:
    broken = nlu_with(embedded_nlu, BrokenClassifier, trained)
    results = await asyncio.gather(*(broken.understand(text) for text in TEXTS), return_exceptions=True)
    assert all(isinstance(result, MemoryError) for result in results)
    broken.classifier = trained  # the model is back: nothing is stuck
    assert (await asyncio.wait_for(broken.understand("ищу квартиру"), 30)).intent == "housing_search"


def test_the_nlu_serves_one_event_loop_after_another(
    embedded_nlu: EmbeddedNLU, trained: IntentClassifier
) -> None:
    nlu = nlu_with(embedded_nlu, CountingClassifier, trained)
    for _ in range(2):  # each asyncio.run is a new loop, as when a worker restarts its loop
        assert asyncio.run(nlu.understand("estonian lessons")).intent == "language_courses"
