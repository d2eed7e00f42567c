"""``POST /model/parse`` in Rasa's format, so tools written for Rasa's NLU API can use guichet's.

The answer is the bot's own understanding: the intent ranking of the configured backend, with
``emergency`` first (confidence 1) when the danger lexicon fires. Errors have the shape of Rasa's.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.engine import MAX_TEXT_CHARS, ConversationEngine
from nlu.understanding import EMERGENCY, NLUUnavailable, Understanding

# A parse request is one short message; anything much larger is refused before it is read whole.
MAX_BODY_BYTES = 64 * 1024


class ParseRequest(BaseModel):
    """Rasa's request body; Rasa's optional ``message_id`` and other keys are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    text: str


def rasa_parse_result(understanding: Understanding) -> dict[str, object]:
    """Rasa's ``/model/parse`` answer for one understanding."""
    ranking = list(understanding.ranking)
    if understanding.emergency_category is not None:
        ranking = [(EMERGENCY, 1.0), *((name, score) for name, score in ranking if name != EMERGENCY)]
    entries = [{"name": name, "confidence": round(score, 6)} for name, score in ranking]
    return {
        "text": understanding.text,
        "intent": entries[0] if entries else {"name": None, "confidence": 0.0},
        "intent_ranking": entries,
        "entities": [],
    }


def _failure(code: int, reason: str, message: str) -> JSONResponse:
    """An error in the shape Rasa's server uses."""
    body = {"status": "failure", "reason": reason, "message": message, "code": code}
    return JSONResponse(body, status_code=code)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is larger than ``MAX_BODY_BYTES``."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


def rasa_api_routes(engine: ConversationEngine) -> list[BaseRoute]:
    """The Rasa-compatible NLU endpoint, answered by ``engine``'s NLU backend."""

    async def parse(request: Request) -> JSONResponse:
        body = await _read_body(request)
        if body is None:
            return _failure(413, "PayloadTooLarge", f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            text = ParseRequest.model_validate_json(body).text
        except (ValidationError, json.JSONDecodeError, UnicodeDecodeError):
            return _failure(400, "BadRequest", 'expected a JSON object such as {"text": "hello"}')
        text = text.encode("utf-8", "replace").decode("utf-8")[:MAX_TEXT_CHARS]
        try:
            understanding = await engine.nlu.understand(text)
        except NLUUnavailable:
            return _failure(503, "NLUUnavailable", "the NLU backend cannot answer now; try again later")
        return JSONResponse(rasa_parse_result(understanding))

    return [Route("/model/parse", parse, methods=["POST"])]
