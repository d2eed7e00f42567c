"""A Rasa server as the NLU backend (``nlu.backend: rasa``), with safety kept in-process.

Each message is sent to the server's ``POST /model/parse``; its ``intent_ranking`` becomes our
ranking (Rasa's ``nlu_fallback`` is our ``out_of_scope``). The danger lexicon and language
identification still run here, before the request, so an emergency is recognised even when the
Rasa server is slow or down. Otherwise a server that cannot answer raises ``NLUUnavailable`` and
the engine hands the message to a person.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel, ValidationError

from nlu.data import load_examples
from nlu.emergency import EmergencyDetector
from nlu.langid import LanguageIdentifier
from nlu.understanding import OUT_OF_SCOPE, NLUUnavailable, Understanding

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

# The intent Rasa's FallbackClassifier predicts when DIET is unsure.
RASA_FALLBACK = "nlu_fallback"


class RasaIntent(BaseModel):
    """One ``{"name", "confidence"}`` entry of Rasa's answer (name is null for an empty model)."""

    name: str | None = None
    confidence: float = 0.0


class RasaParse(BaseModel):
    """The part of Rasa's ``/model/parse`` answer we use."""

    intent: RasaIntent | None = None
    intent_ranking: list[RasaIntent] = []


def ranking_from_rasa(parse: RasaParse) -> tuple[tuple[str, float], ...]:
    """Our ranking from Rasa's: ``nlu_fallback`` read as out-of-scope, one score per intent, best first."""
    entries = parse.intent_ranking or ([parse.intent] if parse.intent else [])
    scores: dict[str, float] = {}
    for entry in entries:
        if not entry.name or not math.isfinite(entry.confidence):
            continue
        name = OUT_OF_SCOPE if entry.name == RASA_FALLBACK else entry.name
        scores[name] = max(scores.get(name, 0.0), min(1.0, max(0.0, entry.confidence)))
    return tuple(sorted(scores.items(), key=lambda item: -item[1]))


def understanding_from_rasa(
    text: str,
    ranking: tuple[tuple[str, float], ...],
    languages: LanguageIdentifier,
    detector: EmergencyDetector,
) -> Understanding:
    """Rasa's ranking completed with what always runs here: the danger lexicon and the language."""
    match = detector.detect(text)
    guess = languages.identify(text)
    return Understanding(
        text=text,
        ranking=ranking,
        lang=guess.lang,
        lang_confidence=guess.confidence,
        emergency_category=match.category if match else None,
    )


class RasaNLU:
    """Asks a Rasa server for the intent; recognises danger and language locally."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        languages: LanguageIdentifier,
        detector: EmergencyDetector,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.parse_url = url.rstrip("/") + "/model/parse"
        self.languages = languages
        self.detector = detector
        self._timeout = httpx.Timeout(timeout)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_config(cls, config: Config) -> RasaNLU:
        """The client for ``nlu.rasa_url``; language identification learns from ``intents/``."""
        return cls(
            config.nlu.rasa_url,
            timeout=config.nlu.rasa_timeout_seconds,
            languages=LanguageIdentifier(load_examples(config.intents_dir)),
            detector=EmergencyDetector.from_file(),
        )

    async def understand(self, text: str) -> Understanding:
        try:
            ranking = await self._rank(text)
        except NLUUnavailable:
            if self.detector.detect(text) is None:
                raise
            ranking = ()  # the emergency answer needs no intent: never wait for Rasa to give it
        return understanding_from_rasa(text, ranking, self.languages, self.detector)

    async def _rank(self, text: str) -> tuple[tuple[str, float], ...]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport)
        try:
            response = await self._client.post(self.parse_url, json={"text": text})
        except httpx.TimeoutException as exc:
            log.warning("Rasa server did not answer within %.1f s", self._timeout.read or 0.0)
            raise NLUUnavailable("the Rasa server timed out") from exc
        except httpx.HTTPError as exc:
            log.warning("Rasa server unreachable: %s", type(exc).__name__)
            raise NLUUnavailable("the Rasa server is unreachable") from exc
        if response.status_code != 200:
            log.warning("Rasa server answered HTTP %d", response.status_code)
            raise NLUUnavailable(f"the Rasa server answered HTTP {response.status_code}")
        try:
            return ranking_from_rasa(RasaParse.model_validate_json(response.content))
        except ValidationError as exc:
            log.warning("Rasa server answered something that is not a parse result")
            raise NLUUnavailable("the Rasa server's answer is not a parse result") from exc

    async def aclose(self) -> None:
        """Close the connection pool (the next message opens a new one)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
