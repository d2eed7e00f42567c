"""Which language to answer in: what the user writes, what they chose, what the channel says."""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import negotiate
from nlu.langid import LanguageGuess

# Detection below this confidence does not change the conversation's language.
_CONFIDENT = 0.6
# Never switch a Ukrainian speaker to Russian on detection alone (mixed or surzhyk messages).
_NEVER_SWITCH = {("uk", "ru")}


def answer_language(
    guess: LanguageGuess | None,
    stored: str | None,
    chosen: bool,
    hint: str | None,
    content: Sequence[str],
    default: str = "en",
) -> str:
    """The content language to answer in.

    An explicit choice from the language menu wins. Otherwise a confident detection of a
    content language wins, except that a Ukrainian conversation is not moved to Russian.
    Short or unclear messages keep the stored language, then the channel's hint, then ``default``.
    """
    if stored and chosen:
        return stored
    hinted = negotiate([hint], content) if hint else None
    detected = guess.lang if guess and guess.confidence >= _CONFIDENT else None
    if detected is not None and detected in content:
        current = stored or hinted
        if current and (current, detected) in _NEVER_SWITCH:
            return current
        return detected
    return stored or hinted or default
