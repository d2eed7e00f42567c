"""The embedded intent classifier: fast to train on the admins' examples and fast per message."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlu.data import Example, load_examples, training_fingerprint
from nlu.normalize import normalize

OUT_OF_SCOPE = "out_of_scope"

# Bump when features or model change, so cached models are retrained.
CLASSIFIER_VERSION = "1"
_CHAR_NGRAMS = (2, 5)
_WORD_NGRAMS = (1, 2)
_C = 20.0
_MODEL_FILE = "model.joblib"
_META_FILE = "meta.json"

Progress = Callable[[str, float], None]


class IntentClassifier:
    """TF-IDF character and word n-grams on normalised text, multinomial logistic regression."""

    def __init__(self, chars: TfidfVectorizer, words: TfidfVectorizer, model: LogisticRegression) -> None:
        self._chars = chars
        self._words = words
        self._model = model
        self.intents: tuple[str, ...] = tuple(str(label) for label in model.classes_)

    @classmethod
    def train(
        cls, examples: Sequence[Example], *, progress: Progress | None = None, seed: int = 0
    ) -> IntentClassifier:
        """Fit on the examples; `progress(stage, fraction)` reports long stages to the caller."""
        report = progress or _ignore_progress
        labels = [example.intent for example in examples]
        if len(set(labels)) < 2:
            raise ValueError("training needs examples of at least two intents")
        report("features", 0.0)
        texts = [normalize(example.text) for example in examples]
        chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=_CHAR_NGRAMS, sublinear_tf=True, dtype=np.float32
        )
        words = TfidfVectorizer(
            analyzer="word",
            ngram_range=_WORD_NGRAMS,
            token_pattern=r"(?u)\b\w+\b",
            sublinear_tf=True,
            dtype=np.float32,
        )
        features = sp.hstack([chars.fit_transform(texts), words.fit_transform(texts)]).tocsr()
        report("features", 1.0)
        report("fit", 0.0)
        model = LogisticRegression(C=_C, max_iter=1000, random_state=seed)
        model.fit(features, labels)
        report("fit", 1.0)
        return cls(chars, words, model)

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every intent with its probability, most likely first."""
        return self.rank_batch([text])[0]

    def rank_batch(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """`rank` for many messages at once (vectorised, cheaper per message)."""
        if not texts:
            return []
        normalized = [normalize(text) for text in texts]
        features = sp.hstack([self._chars.transform(normalized), self._words.transform(normalized)]).tocsr()
        probabilities = self._model.predict_proba(features)
        return [_ranking(self.intents, row) for row in probabilities]

    def save(self, directory: Path) -> None:
        """Write the model files into `directory` (created if needed)."""
        directory.mkdir(parents=True, exist_ok=True)
        parts = {"chars": self._chars, "words": self._words, "model": self._model}
        joblib.dump(parts, directory / _MODEL_FILE)
        (directory / _META_FILE).write_text(json.dumps(_cache_identity(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> IntentClassifier:
        """Read a model written by `save` (a trusted local directory: the files are pickles)."""
        parts = joblib.load(directory / _MODEL_FILE)
        return cls(parts["chars"], parts["words"], parts["model"])


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


def _cache_identity() -> dict[str, object]:
    return {
        "classifier_version": CLASSIFIER_VERSION,
        "hyperparameters": {"char_ngrams": _CHAR_NGRAMS, "word_ngrams": _WORD_NGRAMS, "C": _C},
        "scikit_learn": sklearn.__version__,
    }


def _cache_key(fingerprint: str) -> str:
    identity = json.dumps({"data": fingerprint, **_cache_identity()}, sort_keys=True, default=str)
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20]


def _ranking(intents: tuple[str, ...], scores: np.ndarray) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")
    return [(intents[i], float(min(1.0, max(0.0, scores[i])))) for i in order]


def _ignore_progress(stage: str, fraction: float) -> None:
    """Default progress callback."""
