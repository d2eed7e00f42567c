"""The embedded NLU: danger lexicon, language identification and the intent model, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from nlu.classifier import IntentClassifier, load_or_train
from nlu.data import load_examples
from nlu.emergency import EmergencyDetector
from nlu.langid import LanguageIdentifier
from nlu.understanding import Understanding

# A batch waits for nothing: it holds the messages that arrived while the previous batch ran.
MAX_BATCH = 64


class EmbeddedNLU:
    """Understands a message in a few milliseconds, with nothing but the shipped files.

    Messages that arrive while the model is busy are ranked together in one batch: the sentence
    encoder costs about 3 ms a call but under 1 ms a sentence in a batch, so a busy worker
    understands several times more messages a second, and a quiet one adds no waiting.
    """

    def __init__(
        self, classifier: IntentClassifier, languages: LanguageIdentifier, detector: EmergencyDetector
    ) -> None:
        self.classifier = classifier
        self.languages = languages
        self.detector = detector
        self._waiting: list[tuple[str, asyncio.Future[Understanding]]] = []
        self._ranking: asyncio.Task[None] | None = None

    @classmethod
    def from_files(
        cls,
        intents_dir: Path,
        model_dir: Path,
        *,
        progress: Callable[[str, float], None] | None = None,
    ) -> EmbeddedNLU:
        """Load the cached model for ``intents_dir`` (training it first when the data changed)."""
        classifier = load_or_train(intents_dir, model_dir, progress=progress)
        languages = LanguageIdentifier(load_examples(intents_dir))
        return cls(classifier, languages, EmergencyDetector.from_file())

    def understand_now(self, text: str) -> Understanding:
        return self.understand_batch([text])[0]

    def understand_batch(self, texts: list[str]) -> list[Understanding]:
        """Understand several messages in one pass of the model (same results as one by one)."""
        understood = []
        for text, ranking in zip(texts, self.classifier.rank_batch(texts), strict=True):
            match = self.detector.detect(text)
            guess = self.languages.identify(text)
            understood.append(
                Understanding(
                    text=text,
                    ranking=tuple(ranking),
                    lang=guess.lang,
                    lang_confidence=guess.confidence,
                    emergency_category=match.category if match else None,
                )
            )
        return understood

    async def understand(self, text: str) -> Understanding:
        """Off the event loop, so webhooks keep answering at once while the model works."""
        future: asyncio.Future[Understanding] = asyncio.get_running_loop().create_future()
        self._waiting.append((text, future))
        if self._ranking is not None and self._ranking.get_loop() is not future.get_loop():
            # A new event loop (a restart, a test): what waited on the old one has no one to tell.
            self._waiting = [(text, f) for text, f in self._waiting if f.get_loop() is future.get_loop()]
            self._ranking = None
        if self._ranking is None or self._ranking.done():
            self._ranking = asyncio.create_task(self._rank_waiting())
        return await future

    async def _rank_waiting(self) -> None:
        """Rank the waiting messages, a batch at a time, until none is left."""
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                understood = await asyncio.to_thread(self.understand_batch, [text for text, _ in batch])
            except Exception as error:  # each caller gets the error rather than waiting forever
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), understanding in zip(batch, understood, strict=True):
                if not future.done():  # the caller may have been cancelled
                    future.set_result(understanding)
