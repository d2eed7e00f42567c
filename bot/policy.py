"""The answer / clarify / handoff decision, from the NLU's understanding and the thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.config import Thresholds
from nlu.understanding import EMERGENCY, OUT_OF_SCOPE, Understanding

# Intents that are never offered as an option of a clarifying question.
_NOT_AN_OPTION = frozenset({OUT_OF_SCOPE, "greet", "goodbye", "thanks"})


class Action(StrEnum):
    ANSWER = "answer"
    CLARIFY = "clarify"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class Decision:
    action: Action
    intent: str  # the answered intent, EMERGENCY for emergencies, OUT_OF_SCOPE when refused
    options: tuple[str, ...] = ()  # the two intents offered by a clarifying question
    emergency: bool = False


def is_emergency(understanding: Understanding, thresholds: Thresholds) -> bool:
    """The danger lexicon fired, or the model gives the emergency intent a plausible score."""
    return (
        understanding.emergency_category is not None or understanding.score(EMERGENCY) >= thresholds.emergency
    )


def decide(understanding: Understanding, thresholds: Thresholds) -> Decision:
    """Confident: answer. Torn between two intents: ask which. Unsure or out of scope: a person."""
    if is_emergency(understanding, thresholds):
        return Decision(Action.ANSWER, EMERGENCY, emergency=True)
    top, confidence = understanding.intent, understanding.confidence
    if top == "human_handoff" and confidence >= thresholds.clarify:
        return Decision(Action.HANDOFF, "human_handoff")
    if top == OUT_OF_SCOPE:
        return Decision(Action.HANDOFF, OUT_OF_SCOPE)
    if confidence >= thresholds.answer:
        return Decision(Action.ANSWER, top)
    options = [name for name, _ in understanding.ranking if name not in _NOT_AN_OPTION][:2]
    if (
        confidence >= thresholds.clarify
        and len(options) == 2
        and top in options
        and understanding.score(options[1]) >= thresholds.clarify_second
    ):
        return Decision(Action.CLARIFY, top, options=tuple(options))
    return Decision(Action.HANDOFF, OUT_OF_SCOPE)
