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


class EmbeddedNLU:
    """Understands a message in a few milliseconds, with nothing but the shipped files."""

    def __init__(
        self, classifier: IntentClassifier, languages: LanguageIdentifier, detector: EmergencyDetector
    ) -> None:
        self.classifier = classifier
        self.languages = languages
        self.detector = detector

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
        match = self.detector.detect(text)
        guess = self.languages.identify(text)
        return Understanding(
            text=text,
            ranking=tuple(self.classifier.rank(text)),
            lang=guess.lang,
            lang_confidence=guess.confidence,
            emergency_category=match.category if match else None,
        )

    async def understand(self, text: str) -> Understanding:
        """Off the event loop, so webhooks keep answering at once while the model works."""
        return await asyncio.to_thread(self.understand_now, text)
