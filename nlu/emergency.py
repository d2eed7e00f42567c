"""Emergency detection from an admin-editable lexicon, run before any model so danger is never missed.

A model can be unsure; a person in danger cannot wait for it. The lexicon (`emergency_lexicon.yml`)
lists short phrases per category and language. Text and phrases are folded to one Latin skeleton
(Cyrillic transliterated, accents and Arabic vowel marks dropped, Arabizi digits read as letters,
common spelling variants merged), so "не хочу жити", "ne hochu zhyty" and "ne xochu jity" meet.
Latin (or transliterated) words of 8+ letters also match with one typo. A few explicit guard
phrases ("emergency shelter") cancel the matches they overlap.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

DEFAULT_LEXICON = Path(__file__).with_name("emergency_lexicon.yml")

# Messengers cap messages near 4,096 characters; longer input is bounded to keep detection fast.
_MAX_CHARS = 4096
# Latin words this long (after folding) also match with one typo; shorter ones must match exactly,
# since short words are too often one letter from another real word ("рахунку"/"ratunku").
_TYPO_MIN_LENGTH = 8
# Words whose lexicon candidates are remembered (words repeat a lot across messages).
_CANDIDATE_CACHE_SIZE = 1 << 16
# `..` in a phrase skips up to this many words.
_GAP_WORDS = 3
_GAP = ".."

_APOSTROPHES = str.maketrans({c: "'" for c in "’‘ʼʹ`´′"} | {"🆘": " sos "})
_TOKEN = re.compile(r"[^\W_]+")
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_LETTERS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ی": "ي",
        "ئ": "ي",
        "ؤ": "و",
        "ة": "ه",
        "ک": "ك",
        "ە": "ه",
        "ۀ": "ه",
    }
)
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_LATIN_LETTERS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ı": "i", "æ": "ae", "œ": "oe", "ß": "ss"})
_CYRILLIC = str.maketrans(
    {
        "а": "a",
        "б": "b",
        "в": "v",
        "г": "g",
        "ґ": "g",
        "д": "d",
        "е": "e",
        "ё": "e",
        "є": "ie",
        "ж": "zh",
        "з": "z",
        "и": "i",
        "і": "i",
        "ї": "i",
        "й": "i",
        "к": "k",
        "л": "l",
        "м": "m",
        "н": "n",
        "о": "o",
        "п": "p",
        "р": "r",
        "с": "s",
        "т": "t",
        "у": "u",
        "ф": "f",
        "х": "h",
        "ц": "ts",
        "ч": "ch",
        "ш": "sh",
        "щ": "sh",
        "ъ": "",
        "ы": "i",
        "ь": "",
        "э": "e",
        "ю": "iu",
        "я": "ia",
    }
)
# Arabizi: digits standing for Arabic letters inside a word (7=ح, 5=خ, 9=ق, 2=ء, 6=ط, 8=غ);
# 3 (ع) stays a letter of its own: "bla3" (swallowed) is not "bla" (without).
_ARABIZI_DIGITS = str.maketrans({"2": "", "5": "h", "6": "t", "7": "h", "8": "gh", "9": "k"})
# Spelling variants of one sound, merged in this order (transliteration and Arabizi habits).
_VARIANTS = (
    ("shch", "sh"),
    ("sch", "sh"),
    ("ch", "sh"),
    ("kh", "h"),
    ("q", "k"),
    ("oo", "u"),
    ("ou", "u"),
    ("y", "i"),
    ("j", "i"),
)
_REPEATS = re.compile(r"(\D)\1+")
_ARABIC_REPEATS = re.compile(r"(\D)\1{2,}")  # "الحقوووني"; a real double letter ("ممكن") stays


@dataclass(frozen=True)
class EmergencyMatch:
    """Why a message was flagged: the category and the lexicon entry, never the user's words."""

    category: str  # violence, threat, medical, suicide, fire, trafficking, ...
    phrase: str  # the lexicon entry that matched (never the user's text)


@dataclass(frozen=True)
class _Phrase:
    """A lexicon entry compiled to folded words; a word ending in `*` is a prefix, `..` a gap."""

    words: tuple[str, ...]
    category: str | None  # None for a guard phrase
    source: str


@lru_cache(maxsize=1 << 16)
def _fold(word: str) -> str:
    """One canonical Latin-or-Arabic spelling for a word, shared by the lexicon and the messages."""
    if any("\u0600" <= char <= "\u06ff" for char in word):
        word = _ARABIC_REPEATS.sub(r"\1", _ARABIC_MARKS.sub("", word).translate(_ARABIC_LETTERS))
        # The conjunction و ("and") is written joined to the next word: "وفي دخان" is "في دخان".
        return word[1:] if word.startswith("و") and len(word) > 2 else word
    word = word.translate(_CYRILLIC)
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))
        word = word.translate(_LATIN_LETTERS)
    if not word.isdigit():
        word = word.translate(_ARABIZI_DIGITS)
    for variant, canonical in _VARIANTS:
        word = word.replace(variant, canonical)
    return _REPEATS.sub(r"\1", word)


def _words(text: str) -> list[str]:
    """Casefolded words; apostrophes and punctuation separate them."""
    return _TOKEN.findall(_casefold(text).replace("'", " "))


def _readings(text: str) -> list[list[str]]:
    """The message's folded words, read twice when it has an apostrophe: split ("j'ai" -> j ai) and
    joined, since an apostrophe is also a contraction ("don't" -> dont) or a soft sign ("ub'et")."""
    text = _casefold(text)
    readings = [_TOKEN.findall(text.replace("'", " "))]
    if "'" in text:
        readings.append(_TOKEN.findall(text.replace("'", "")))
    return [[_fold(word) for word in words] for words in readings]


def _casefold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES).translate(_DIGITS)


@lru_cache(maxsize=1 << 16)
def _deletions(word: str) -> frozenset[str]:
    """The word and its forms with one letter removed: words one typo apart share one of them."""
    return frozenset({word, *(word[:i] + word[i + 1 :] for i in range(len(word)))})


def _one_typo_apart(expected: str, typed: str) -> bool:
    """One letter wrong, missing, added, or two neighbours swapped; never the first letter.

    Arabic script is excluded: there one letter often changes the person ("ضربتني"/"ضربني")."""
    if len(expected) < _TYPO_MIN_LENGTH or not expected.isascii() or expected[0] != typed[:1]:
        return False
    if len(expected) == len(typed):
        diff = [i for i, (a, b) in enumerate(zip(expected, typed, strict=True)) if a != b]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and expected[diff[0]] == typed[diff[1]]
            and expected[diff[1]] == typed[diff[0]]
        )
    shorter, longer = sorted((expected, typed), key=len)
    if len(longer) - len(shorter) != 1:
        return False
    cut = next((i for i, (a, b) in enumerate(zip(shorter, longer, strict=False)) if a != b), len(shorter))
    return shorter[cut:] == longer[cut + 1 :]


def _spellings(entry: str) -> Iterator[str]:
    """The entry as written, plus variants people type: elided words joined ("j'ai" -> "jai") and the
    Ukrainian г as h ("допомога" -> "dopomoha")."""
    forms = {entry.translate(_APOSTROPHES)}
    forms |= {form.replace("'", "") for form in forms}
    forms |= {form.replace("г", "h").replace("Г", "h") for form in forms}
    yield from forms


class EmergencyDetector:
    """Finds danger in a message using the multilingual lexicon; cheap and never raises on a message."""

    def __init__(self, categories: Mapping[str, Iterable[str]], guards: Iterable[str] = ()) -> None:
        phrases = [
            phrase
            for category, entries in categories.items()
            for entry in entries
            for phrase in self._compile(entry, category)
        ]
        phrases += [phrase for entry in guards for phrase in self._compile(entry, None)]
        self._exact: dict[str, list[_Phrase]] = defaultdict(list)
        self._prefix: dict[str, list[_Phrase]] = defaultdict(list)
        self._typo: dict[str, set[str]] = defaultdict(set)  # one-deletion form -> first words
        for phrase in phrases:
            first = phrase.words[0]
            if first.endswith("*"):
                self._prefix[first[:-1]].append(phrase)
                continue
            self._exact[first].append(phrase)
            if len(first) >= _TYPO_MIN_LENGTH and first.isascii():
                for form in _deletions(first):
                    self._typo[form].add(first)
        self._prefix_lengths = sorted({len(stem) for stem in self._prefix})
        self._candidate_cache: dict[str, tuple[_Phrase, ...]] = {}

    @classmethod
    def from_file(cls, path: Path | None = None) -> EmergencyDetector:
        """Load a lexicon file (default: the shipped one); raises ValueError on a malformed file."""
        path = path or DEFAULT_LEXICON
        try:
            document = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        except YAMLError as exc:
            raise ValueError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("emergency"), dict):
            raise ValueError(f"{path}: expected an `emergency:` mapping of category -> language -> phrases")
        categories = {
            str(category): _entries(path, f"emergency.{category}", by_language)
            for category, by_language in document["emergency"].items()
        }
        guards = _entries(path, "not_emergency", document.get("not_emergency") or {})
        return cls(categories, guards)

    def detect(self, text: str) -> EmergencyMatch | None:
        """The first unguarded lexicon match in the message, or None. Never raises."""
        try:
            return self._detect(text)
        except Exception:  # a detector crash must not take the conversation down with it
            return None

    def _detect(self, text: str) -> EmergencyMatch | None:
        if not isinstance(text, str) or not text:
            return None
        if len(text) > _MAX_CHARS:
            text = text[: _MAX_CHARS // 2] + " " + text[-_MAX_CHARS // 2 :]
        for words in _readings(text):
            found = list(self._matches(words))
            guarded = [(start, end) for phrase, start, end in found if phrase.category is None]
            for phrase, start, end in found:
                if phrase.category is None:
                    continue
                if any(start < guard_end and guard_start < end for guard_start, guard_end in guarded):
                    continue
                return EmergencyMatch(category=phrase.category, phrase=phrase.source)
        return None

    def _matches(self, words: list[str]) -> Iterator[tuple[_Phrase, int, int]]:
        """Every phrase (emergency or guard) found, as (phrase, first word index, end index)."""
        for start, word in enumerate(words):
            for phrase in self._candidates(word):
                end = self._match_rest(phrase, 1, words, start + 1)
                if end is not None:
                    yield phrase, start, end

    def _candidates(self, word: str) -> tuple[_Phrase, ...]:
        """Phrases whose first word matches `word`, remembered per word."""
        cached = self._candidate_cache.get(word)
        if cached is None:
            if len(self._candidate_cache) >= _CANDIDATE_CACHE_SIZE:
                self._candidate_cache.clear()
            cached = self._candidate_cache[word] = tuple(self._find_candidates(word))
        return cached

    def _find_candidates(self, word: str) -> Iterator[_Phrase]:
        yield from self._exact.get(word, ())
        for length in self._prefix_lengths:
            if length > len(word):
                break
            yield from self._prefix.get(word[:length], ())
        if len(word) >= _TYPO_MIN_LENGTH - 1:
            near = {first for form in _deletions(word) for first in self._typo.get(form, ())}
            for first in near - {word}:
                if _one_typo_apart(first, word):
                    yield from (phrase for phrase in self._exact[first] if phrase.category is not None)

    def _match_rest(self, phrase: _Phrase, index: int, words: list[str], position: int) -> int | None:
        """End position when phrase.words[index:] matches words from `position`, else None.

        Guards match exactly: a typo must never cancel a real emergency."""
        pattern = phrase.words
        if index == len(pattern):
            return position
        if pattern[index] == _GAP:
            for skipped in range(_GAP_WORDS + 1):
                end = self._match_rest(phrase, index + 1, words, position + skipped)
                if end is not None:
                    return end
            return None
        if position >= len(words):
            return None
        expected, typed = pattern[index], words[position]
        if not (
            (typed.startswith(expected[:-1]) if expected.endswith("*") else expected == typed)
            or (phrase.category is not None and _one_typo_apart(expected, typed))
        ):
            return None
        return self._match_rest(phrase, index + 1, words, position + 1)

    @staticmethod
    def _compile(entry: str, category: str | None) -> list[_Phrase]:
        phrases = []
        for spelling in _spellings(entry):
            words = tuple(
                _GAP if raw == _GAP else _fold(raw.rstrip("*")) + ("*" if raw.endswith("*") else "")
                for raw in _pattern_words(spelling)
            )
            if not words or _GAP in (words[0], words[-1]) or "*" in words:
                raise ValueError(f"lexicon entry {entry!r}: needs a word at each end (prefixes of 1+ letter)")
            phrases.append(_Phrase(words=words, category=category, source=entry))
        return phrases


def _pattern_words(spelling: str) -> list[str]:
    """Words of a lexicon entry: like message words, keeping `*` suffixes and `..` gaps."""
    result: list[str] = []
    for raw in spelling.split():
        if raw == _GAP:
            result.append(_GAP)
            continue
        parts = _words(raw)
        if raw.endswith("*") and parts:
            parts[-1] += "*"
        result.extend(parts)
    return result


def _entries(path: Path, where: str, by_language: object) -> list[str]:
    """The phrases of a `language: [phrases]` mapping, validated so an admin's typo is reported clearly."""
    if not isinstance(by_language, dict):
        raise ValueError(f"{path}: {where} must map language codes to lists of phrases")
    entries: list[str] = []
    for lang, phrases in by_language.items():
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ValueError(f"{path}: {where}.{lang} must be a list of non-empty phrases")
        entries.extend(p.strip() for p in phrases)
    return entries
