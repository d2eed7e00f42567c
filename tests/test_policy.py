"""The answer / clarify / handoff policy on hand-made understandings."""

from __future__ import annotations

from bot.config import Thresholds
from bot.policy import Action, decide
from nlu.understanding import Understanding

T = Thresholds(answer=0.6, clarify=0.3, clarify_second=0.15, emergency=0.35)


def understanding(*ranking: tuple[str, float], emergency: str | None = None) -> Understanding:
    return Understanding("x", tuple(ranking), "en", 1.0, emergency)


def test_confident_top_intent_is_answered() -> None:
    decision = decide(understanding(("housing_search", 0.8), ("job_search", 0.1)), T)
    assert (decision.action, decision.intent) == (Action.ANSWER, "housing_search")


def test_two_plausible_intents_ask_which_one() -> None:
    decision = decide(understanding(("work_rights", 0.45), ("job_search", 0.35), ("greet", 0.1)), T)
    assert decision.action is Action.CLARIFY
    assert decision.options == ("work_rights", "job_search")


def test_unsure_hands_off() -> None:
    decision = decide(understanding(("work_rights", 0.2), ("job_search", 0.19)), T)
    assert decision.action is Action.HANDOFF


def test_out_of_scope_is_never_answered_even_when_confident() -> None:
    decision = decide(understanding(("out_of_scope", 0.99), ("greet", 0.01)), T)
    assert decision.action is Action.HANDOFF and decision.intent == "out_of_scope"


def test_small_talk_is_not_offered_as_a_clarifying_option() -> None:
    decision = decide(understanding(("greet", 0.4), ("thanks", 0.35), ("help", 0.2)), T)
    assert decision.action is not Action.CLARIFY or "greet" not in decision.options


def test_danger_lexicon_wins_over_any_model_score() -> None:
    decision = decide(understanding(("housing_search", 0.95), emergency="violence"), T)
    assert decision.emergency and decision.intent == "emergency"


def test_plausible_emergency_score_is_an_emergency_even_when_not_top() -> None:
    decision = decide(understanding(("health_care", 0.5), ("emergency", 0.4)), T)
    assert decision.emergency


def test_human_handoff_always_hands_off() -> None:
    decision = decide(understanding(("human_handoff", 0.9)), T)
    assert decision.action is Action.HANDOFF and decision.intent == "human_handoff"
