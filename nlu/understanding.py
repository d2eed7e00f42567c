"""What the NLU tells the engine about one message, whatever backend produced it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

OUT_OF_SCOPE = "out_of_scope"
EMERGENCY = "emergency"


@dataclass(frozen=True)
class Understanding:
    """The intent ranking, the message's language and the emergency verdict."""

    text: str
    ranking: tuple[tuple[str, float], ...]  # every intent the backend scored, best first
    lang: str | None  # detected language (any ISO 639-1 code), None when unclear
    lang_confidence: float = 0.0
    emergency_category: str | None = None  # set by the danger lexicon, before any model

    @property
    def intent(self) -> str:
        return self.ranking[0][0] if self.ranking else OUT_OF_SCOPE

    @property
    def confidence(self) -> float:
        return self.ranking[0][1] if self.ranking else 0.0

    def score(self, intent: str) -> float:
        return next((score for name, score in self.ranking if name == intent), 0.0)


class NLUUnavailable(RuntimeError):
    """The NLU backend cannot answer now (e.g. the Rasa server is down); hand the message to a person."""


class NLUBackend(Protocol):
    """Anything that understands a message: the embedded model or a Rasa server."""

    async def understand(self, text: str) -> Understanding: ...
