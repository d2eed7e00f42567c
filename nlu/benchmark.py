"""CLINC150 benchmark of the production IntentClassifier, comparable with the published results.

Protocol (Larson et al. 2019, "Full" setting): train on `train` + `oos_train` (as out_of_scope), choose
the confidence threshold on `val` + `oos_val` only, report on `test` + `oos_test`.

    .venv/bin/python -m nlu.benchmark [--data PATH] [--predictions out.jsonl] [--plot docs/clinc150_curve.png]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlu.classifier import OUT_OF_SCOPE, IntentClassifier
from nlu.data import Example

DEFAULT_DATA = Path("/work/shared/benchmarks/clinc150/data_full.json")
DEFAULT_PLOT = Path(__file__).resolve().parent.parent / "docs" / "clinc150_curve.png"
TARGET_OOS_RECALL = 0.75
LATENCY_QUERIES = 1000
# Published points on the Full setting (Larson et al. 2019, table 2): (in-scope accuracy, oos recall) in %.
PUBLISHED = {"BERT": (96.9, 40.3), "Rasa": (91.5, 45.3), "DialogFlow": (91.7, 14.0)}

Progress = Callable[[str, float], None]
Ranking = list[tuple[str, float]]


def run_clinc150(
    data_path: Path, predictions_path: Path | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Train, choose the threshold on validation data, measure on test data; return the numbers.

    Times are wall-clock and CPU: on a shared machine the CPU time is the comparable figure.
    """
    report = progress or _ignore_progress
    data = json.loads(data_path.read_text(encoding="utf-8"))
    train = _examples(data["train"]) + _examples(data["oos_train"], OUT_OF_SCOPE)
    val = _examples(data["val"]) + _examples(data["oos_val"], OUT_OF_SCOPE)
    test = _examples(data["test"]) + _examples(data["oos_test"], OUT_OF_SCOPE)
    load_before = os.getloadavg()[0]

    wall, cpu = time.perf_counter(), time.process_time()
    classifier = IntentClassifier.train(train, progress=lambda stage, done: report(f"train: {stage}", done))
    train_seconds, train_cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu

    report("validation", 0.0)
    val_outcome = Outcome(val, classifier.rank_batch([example.text for example in val]))
    threshold = choose_threshold(val_outcome)
    report("test", 0.0)
    test_rankings = classifier.rank_batch([example.text for example in test])
    test_outcome = Outcome(test, test_rankings)
    report("latency", 0.0)
    wall_ms, cpu_ms = _single_message_latencies(classifier, [example.text for example in test])
    if predictions_path is not None:
        _write_predictions(predictions_path, test, test_rankings, threshold)
    report("done", 1.0)
    return {
        "dataset": str(data_path),
        "train_examples": len(train),
        "intents": len(classifier.intents),
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threshold": threshold,
        "threshold_rule": (
            f"maximise val in-scope accuracy subject to val out-of-scope recall >= {TARGET_OOS_RECALL:.0%}"
        ),
        "val": val_outcome.scores(threshold),
        "test": test_outcome.scores(threshold),
        "test_without_threshold": test_outcome.scores(0.0),
        "latency_ms": {
            "queries": len(wall_ms),
            "p50": float(np.percentile(wall_ms, 50)),
            "p99": float(np.percentile(wall_ms, 99)),
            "cpu_p50": float(np.percentile(cpu_ms, 50)),
            "cpu_p99": float(np.percentile(cpu_ms, 99)),
        },
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average": [load_before, os.getloadavg()[0]],
        "cpu_count": os.cpu_count(),
        "curve": threshold_curve(test_outcome),
    }


class Outcome:
    """Top intents and confidences of a split, to score any threshold quickly."""

    def __init__(self, examples: Sequence[Example], rankings: Sequence[Ranking]) -> None:
        self.truth = np.array([example.intent for example in examples])
        self.top = np.array([ranking[0][0] for ranking in rankings])
        self.confidence = np.array([ranking[0][1] for ranking in rankings])

    def scores(self, threshold: float) -> dict[str, float]:
        """In-scope accuracy (a refused in-scope query is wrong), out-of-scope recall and precision."""
        refused = (self.top == OUT_OF_SCOPE) | (self.confidence < threshold)
        in_scope = self.truth != OUT_OF_SCOPE
        correct = (self.top == self.truth) & ~refused
        return {
            "in_scope_accuracy": float(np.mean(correct[in_scope])),
            "oos_recall": float(np.mean(refused[~in_scope])),
            "oos_precision": float(np.mean(~in_scope[refused])) if refused.any() else 0.0,
        }


def choose_threshold(outcome: Outcome) -> float:
    """Lowest confidence threshold with the best in-scope accuracy among those reaching the oos recall target."""
    confidences = np.unique(outcome.confidence)
    candidates = [0.0, *confidences.tolist(), float(np.nextafter(confidences[-1], np.inf))]
    best: tuple[float, float] | None = None
    for threshold in candidates:
        scores = outcome.scores(threshold)
        if scores["oos_recall"] >= TARGET_OOS_RECALL and (
            best is None or scores["in_scope_accuracy"] > best[1]
        ):
            best = (threshold, scores["in_scope_accuracy"])
    if best is None:  # unreachable: refusing everything has recall 1
        raise ValueError("no threshold reaches the out-of-scope recall target")
    return best[0]


def threshold_curve(outcome: Outcome) -> list[dict[str, float]]:
    """(threshold, in-scope accuracy, oos recall) as the threshold moves, for the plot."""
    thresholds = [0.0, *np.unique(np.quantile(outcome.confidence, np.linspace(0, 1, 201))).tolist()]
    return [{"threshold": t, **outcome.scores(t)} for t in thresholds]


def format_report(result: dict[str, Any]) -> str:
    """Human-readable summary, one line per number, percentages like the paper's."""
    test, val, raw = result["test"], result["val"], result["test_without_threshold"]
    latency = result["latency_ms"]
    return "\n".join(
        [
            f"CLINC150 Full: {result['train_examples']} training examples, {result['intents']} classes",
            f"threshold {result['threshold']:.4f} ({result['threshold_rule']})",
            f"  val:  in-scope accuracy {val['in_scope_accuracy']:.1%}, oos recall {val['oos_recall']:.1%}",
            f"test in-scope accuracy   {test['in_scope_accuracy']:.1%}",
            f"test out-of-scope recall {test['oos_recall']:.1%}",
            f"test out-of-scope precision {test['oos_precision']:.1%}",
            f"  without threshold: in-scope {raw['in_scope_accuracy']:.1%}, oos recall {raw['oos_recall']:.1%}",
            f"training time {result['train_seconds']:.1f} s wall, {result['train_cpu_seconds']:.1f} s CPU",
            f"single-message rank() latency over {latency['queries']} queries: "
            f"p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms wall; "
            f"CPU p50 {latency['cpu_p50']:.2f} ms, p99 {latency['cpu_p99']:.2f} ms",
            f"peak RSS {result['peak_rss_mb']:.0f} MB",
            f"machine: {result['cpu_count']} CPUs, load average {result['load_average'][0]:.1f} before, "
            f"{result['load_average'][1]:.1f} after",
            "published (in-scope / oos recall): "
            + ", ".join(f"{name} {acc}/{rec}" for name, (acc, rec) in PUBLISHED.items()),
        ]
    )


def plot_curve(result: dict[str, Any], path: Path) -> None:
    """Out-of-scope recall against in-scope accuracy on test, with the chosen point and the published ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    figure, axes = plt.subplots(figsize=(7, 5), dpi=120)
    axes.plot(
        [100 * p["oos_recall"] for p in curve],
        [100 * p["in_scope_accuracy"] for p in curve],
        label="guichet IntentClassifier (threshold varied on test)",
    )
    chosen = result["test"]
    axes.scatter(
        [100 * chosen["oos_recall"]],
        [100 * chosen["in_scope_accuracy"]],
        color="black",
        zorder=3,
        label=f"threshold {result['threshold']:.3f} chosen on val",
    )
    for name, (accuracy, recall) in PUBLISHED.items():
        axes.scatter([recall], [accuracy], marker="s", zorder=3)
        axes.annotate(f"{name} (published)", (recall, accuracy), textcoords="offset points", xytext=(5, -12))
    axes.axvline(100 * TARGET_OOS_RECALL, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("out-of-scope recall on test (%)")
    axes.set_ylabel("in-scope accuracy on test (%)")
    axes.set_title("CLINC150 Full: accuracy vs out-of-scope recall")
    axes.set_xlim(0, 100)
    axes.set_ylim(80, 100)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def _examples(items: Sequence[Sequence[str]], intent: str | None = None) -> list[Example]:
    return [Example(text=text, intent=intent or label, lang="en") for text, label in items]


def _decide(ranking: Ranking, threshold: float) -> str:
    """The intent answered, or out_of_scope when the classifier refuses."""
    intent, confidence = ranking[0]
    return OUT_OF_SCOPE if intent == OUT_OF_SCOPE or confidence < threshold else intent


def _single_message_latencies(
    classifier: IntentClassifier, texts: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and CPU milliseconds per rank() call, one message at a time as the bot calls it."""
    step = max(1, len(texts) // LATENCY_QUERIES)
    sample = list(texts[::step][:LATENCY_QUERIES])
    for text in sample[:20]:  # warm caches and lazy resources
        classifier.rank(text)
    wall = np.empty(len(sample))
    cpu = np.empty(len(sample))
    for index, text in enumerate(sample):
        started, started_cpu = time.perf_counter(), time.thread_time()
        classifier.rank(text)
        wall[index] = (time.perf_counter() - started) * 1000
        cpu[index] = (time.thread_time() - started_cpu) * 1000
    return wall, cpu


def _write_predictions(
    path: Path, examples: Sequence[Example], rankings: Sequence[Ranking], threshold: float
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for example, ranking in zip(examples, rankings, strict=True):
            intent = _decide(ranking, threshold)
            record = {
                "text": example.text,
                "intent": intent,
                "confidence": ranking[0][1],
                "decision": "handoff" if intent == OUT_OF_SCOPE else "answer",
                "lang": "en",
                "ranking": [[name, score] for name, score in ranking[:3]],
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _ignore_progress(stage: str, fraction: float) -> None:
    """Default progress callback."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CLINC150 data_full.json")
    parser.add_argument("--predictions", type=Path, help="write one JSON line per test query here")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="where to draw the curve")
    parser.add_argument("--json", type=Path, help="write the full result as JSON here")
    args = parser.parse_args(argv)
    result = run_clinc150(
        args.data, args.predictions, progress=lambda stage, done: print(f"[{stage} {done:.0%}]", flush=True)
    )
    print(format_report(result))
    plot_curve(result, args.plot)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
