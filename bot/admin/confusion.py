"""Topics the model mixes up, found by cross-validation with the real classifier.

The examples are split in k folds; the classifier (:class:`nlu.classifier.IntentClassifier`, the
one the bot uses) is trained on k-1 folds and asked about the held-out one, k times. Two topics
are reported when too many of their held-out examples were taken for each other. Training k
models takes a while, so the predictions are cached by a hash of the training data.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sklearn
from sklearn.model_selection import StratifiedKFold

from bot.admin.check_intents import PlacedExample
from bot.admin.problems import Report
from nlu.classifier import CLASSIFIER_VERSION, IntentClassifier, Mixing
from nlu.data import Example

FOLDS = 5
# A pair is reported when this share of both topics' examples went to the other one...
THRESHOLD = 0.10
# ...and at least this many examples did (a single odd example is not a pattern).
MIN_CONFUSED = 3
_SEED = 0

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Confusion:
    """Two topics whose examples the model takes for each other."""

    first: str
    second: str
    confused: int  # held-out examples of either topic predicted as the other
    examples: int  # examples of both topics
    samples: tuple[tuple[PlacedExample, str], ...]  # a few confused examples, with what they were taken for

    @property
    def rate(self) -> float:
        return self.confused / self.examples if self.examples else 0.0


def held_out_predictions(
    examples: Sequence[PlacedExample], cache_dir: Path | None, progress: Progress | None = None
) -> list[str]:
    """For every example, the intent predicted by a model that never saw it (cached by data hash)."""
    cache = cache_dir / f"{_cache_key(examples)}.json" if cache_dir else None
    if cache and cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if isinstance(cached, list) and len(cached) == len(examples):
            return [str(label) for label in cached]
    labels = [e.intent for e in examples]
    folds = min(FOLDS, max(Counter(labels).values(), default=0))
    predicted = [""] * len(examples)
    if folds < 2 or len(set(labels)) < 2:
        return [e.intent for e in examples]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=_SEED)
    data = [Example(e.text, e.intent, e.lang) for e in examples]
    with warnings.catch_warnings():  # topics with fewer examples than folds are expected here
        warnings.simplefilter("ignore", UserWarning)
        splits = list(splitter.split(data, labels))
    mixing: Mixing | None = None  # chosen on the first fold, reused: choosing costs a fit per language
    for number, (train, test) in enumerate(splits, start=1):
        classifier = IntentClassifier.train([data[i] for i in train], seed=_SEED, mixing=mixing)
        mixing = classifier.mixing
        for index, ranking in zip(test, classifier.rank_batch([data[i].text for i in test]), strict=True):
            predicted[index] = ranking[0][0]
        if progress:
            progress(number, folds)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temp = cache.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(predicted), encoding="utf-8")
        temp.replace(cache)
    return predicted


def confusions(
    examples: Sequence[PlacedExample], predicted: Sequence[str], threshold: float = THRESHOLD
) -> list[Confusion]:
    """The pairs of topics over ``threshold``, worst first."""
    sizes = Counter(e.intent for e in examples)
    wrong: dict[tuple[str, str], list[tuple[PlacedExample, str]]] = {}
    for example, label in zip(examples, predicted, strict=True):
        if label != example.intent and label in sizes:
            pair = (min(example.intent, label), max(example.intent, label))
            wrong.setdefault(pair, []).append((example, label))
    found = []
    for (first, second), cases in wrong.items():
        confusion = Confusion(first, second, len(cases), sizes[first] + sizes[second], tuple(cases[:3]))
        if confusion.confused >= MIN_CONFUSED and confusion.rate >= threshold:
            found.append(confusion)
    return sorted(found, key=lambda c: -c.rate)


def check_confusions(
    examples: Sequence[PlacedExample],
    report: Report,
    *,
    cache_dir: Path | None,
    threshold: float = THRESHOLD,
    progress: Progress | None = None,
) -> None:
    """Report each pair of topics the model mixes up, at the first example it got wrong."""
    predicted = held_out_predictions(examples, cache_dir, progress)
    for confusion in confusions(examples, predicted, threshold):
        first = confusion.samples[0][0]
        cases = "; ".join(f"“{e.text}” ({e.where}) was taken for `{label}`" for e, label in confusion.samples)
        report.warning(
            "confused-intents",
            first.path,
            first.line,
            f"the bot mixes up `{confusion.first}` and `{confusion.second}`: in a test, {confusion.confused} of "
            f"their {confusion.examples} examples ({confusion.rate:.0%}) were taken for the other topic. "
            f"For example {cases}. Make the examples of each topic more distinct, or move the ones that "
            "really belong to the other topic.",
        )


def _cache_key(examples: Sequence[PlacedExample]) -> str:
    digest = hashlib.sha256()
    identity = {
        "classifier": CLASSIFIER_VERSION,
        "sklearn": sklearn.__version__,
        "folds": FOLDS,
        "seed": _SEED,
    }
    digest.update(json.dumps(identity, sort_keys=True).encode())
    for example in examples:
        digest.update(json.dumps([example.text, example.intent, example.lang]).encode())
    return digest.hexdigest()[:24]
