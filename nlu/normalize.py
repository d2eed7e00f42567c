"""Text normalisation before classification, so that phone-typed variants of a message look alike."""

from __future__ import annotations

import re
import unicodedata

# Long messages are usually a story with the question at the end: keep both ends, bounded.
_HEAD_CHARS = 300
_TAIL_CHARS = 700

_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_ARABIC_MARKS = re.compile("[\u064b-\u065f\u0670\u0640]")  # harakat, dagger alif, tatweel
_ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
# Latin letters that carry no separable accent in Unicode.
_LATIN_LETTERS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe"})
_REPEATED_LETTER = re.compile(r"([^\W\d_])\1{2,}")
_REPEATED_PUNCTUATION = re.compile(r"([^\w\s])\1+")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Canonical form of a message for classification; never raises, whatever the input."""
    if not isinstance(text, str):
        text = str(text)
    text = clip(text)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(
        char for char in _SPACES.sub(" ", text) if unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    text = _strip_latin_diacritics(text).translate(_LATIN_LETTERS)
    text = _ARABIC_MARKS.sub("", text).translate(_ARABIC_LETTERS)
    text = _REPEATED_LETTER.sub(r"\1\1", text)
    text = _REPEATED_PUNCTUATION.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


def clip(text: str, head: int = _HEAD_CHARS, tail: int = _TAIL_CHARS) -> str:
    """The first `head` and last `tail` characters of a long text: bounds the cost of a message."""
    if len(text) <= head + tail:
        return text
    return text[:head] + " " + text[-tail:]


def _strip_latin_diacritics(text: str) -> str:
    """Drop accents from Latin letters only: Cyrillic й/ї and Arabic letters keep their marks."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    kept: list[str] = []
    base_is_latin = False
    for char in decomposed:
        if unicodedata.combining(char):
            if base_is_latin:
                continue
        else:
            base_is_latin = "LATIN" in unicodedata.name(char, "")
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))
