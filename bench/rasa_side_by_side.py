"""guichet's NLU and Rasa 3.6's default NLU pipeline (DIET), side by side, in one run.

Both are trained on exactly the same examples and judged with the same rule, each in a child
process of its own (so memory is the peak resident size of that process alone):

- CLINC150 Full: trained on train + oos_train (as out_of_scope); the confidence threshold of each
  system is chosen on val + oos_val with nlu.benchmark.choose_threshold (best in-scope accuracy
  at >= 75 % out-of-scope recall); reported on test + oos_test. guichet runs nlu.benchmark's
  run_clinc150, the very code of ``guichet nlu benchmark clinc150``.
- the project's held-out split (tests/data/heldout + tests/data/out_of_scope.jsonl), trained on
  intents/: each message goes through the bot's own policy with config.yml's thresholds, Rasa's
  ranking read as ``nlu.backend: rasa`` reads it (nlu_fallback is out of scope; the danger lexicon
  and language identification run locally), and is scored by nlu.evaluate.

Rasa 3.6 needs Python 3.10: a virtualenv is created in bench/.rasa-venv on the first run (about
3 minutes, then reused). Rasa's training cache is off, so its training time is real.

    .venv/bin/python bench/rasa_side_by_side.py [--dataset clinc150|heldout|both] [--rasa-epochs 100]

The same file is the worker each child process runs (``--worker``); run under Python 3.10 by the
Rasa side, so its top level imports the standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = ROOT / "bench" / ".rasa-venv"
DEFAULT_CLINC = ROOT.parent / "shared" / "benchmarks" / "clinc150" / "data_full.json"
HELDOUT = (ROOT / "tests" / "data" / "heldout", ROOT / "tests" / "data" / "out_of_scope.jsonl")
# Rasa's default number of DIET epochs.
DEFAULT_EPOCHS = 100
# Messages parsed before timing starts (lazy loading, warm caches), on both sides.
WARM_UP = 20


@dataclass
class Measured:
    """One system on one dataset: quality, cost, and how it was measured."""

    in_scope_accuracy: float  # share of in-scope messages answered with the right intent
    oos_recall: float  # share of out-of-scope messages not answered
    wrong_answer_rate: float  # wrong answers among all answered messages
    train_seconds: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    note: str = ""


# -- child processes ----------------------------------------------------------------------------------


def run_child(command: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Run ``command``; its peak resident memory in MB. Raises when it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} ... {' '.join(command[-4:])} failed with exit {process.returncode}")
    print(f"    ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return usage.ru_maxrss / 1024


def guichet_child(*arguments: str) -> list[str]:
    return [str(ROOT / ".venv" / "bin" / "python"), str(Path(__file__).resolve()), "--worker", *arguments]


def rasa_child(python: Path, *arguments: str) -> list[str]:
    return [str(python), str(Path(__file__).resolve()), "--worker", *arguments]


def rasa_env(cache: Path) -> dict[str, str]:
    from nlu.rasa_venv import rasa_environment

    # No training cache: a cache hit would report a training time that is not one.
    return {**rasa_environment(), "RASA_MAX_CACHE_SIZE": "0", "RASA_CACHE_DIRECTORY": str(cache)}


# -- workers (run in the child processes) -------------------------------------------------------------


def worker_guichet_clinc(data: Path, out: Path) -> None:
    from nlu.benchmark import run_clinc150

    predictions = out.with_suffix(".predictions.jsonl")
    result = run_clinc150(data, predictions)
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    result["decided"] = [row["intent"] for row in rows]
    out.write_text(json.dumps(result), encoding="utf-8")


def worker_guichet_heldout(out: Path) -> None:
    import numpy as np

    from bot.config import load_config
    from nlu.embedded import EmbeddedNLU
    from nlu.evaluate import evaluate, read_labelled

    config = load_config()
    with tempfile.TemporaryDirectory() as model_dir:  # an empty cache: the model is really trained
        started = time.perf_counter()
        nlu = EmbeddedNLU.from_files(config.intents_dir, Path(model_dir))
        train_seconds = time.perf_counter() - started
    messages = read_labelled(HELDOUT)
    for message in messages[:WARM_UP]:
        nlu.understand_now(message.text)
    understandings, latencies = [], []
    for message in messages:
        started = time.perf_counter()
        understandings.append(nlu.understand_now(message.text))
        latencies.append((time.perf_counter() - started) * 1000)
    report = evaluate(zip(messages, understandings, strict=True), config.nlu.thresholds).as_dict()
    result = {
        "train_seconds": train_seconds,
        "overall": report["overall"],
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
    }
    out.write_text(json.dumps(result), encoding="utf-8")


def worker_rasa_train(project: Path, out: Path) -> None:
    from rasa.model_training import train_nlu

    started = time.perf_counter()
    model = train_nlu(
        str(project / "config.yml"), str(project / "nlu.yml"), str(project / "models"), fixed_model_name="nlu"
    )
    seconds = time.perf_counter() - started
    if model is None:
        raise SystemExit("Rasa trained no model")
    out.write_text(json.dumps({"train_seconds": seconds, "model": str(model)}), encoding="utf-8")


def worker_rasa_parse(model: Path, texts: Path, out: Path) -> None:
    """Parse each text alone, as a server would, timing every parse."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    queries = json.loads(texts.read_text(encoding="utf-8"))

    async def parse_all() -> list[dict[str, Any]]:
        for text in queries[:WARM_UP]:
            await agent.parse_message(text)
        parsed = []
        for text in queries:
            started = time.perf_counter()
            result = await agent.parse_message(text)
            ms = (time.perf_counter() - started) * 1000
            parsed.append(
                {"intent": result.get("intent"), "intent_ranking": result.get("intent_ranking", []), "ms": ms}
            )
        return parsed

    out.write_text(json.dumps(asyncio.run(parse_all())), encoding="utf-8")


# -- Rasa's side ---------------------------------------------------------------------------------------


@dataclass
class RasaRun:
    parsed: list[dict[str, Any]]
    train_seconds: float
    peak_rss_mb: float


def run_rasa(python: Path, work: Path, examples: Sequence[Any], texts: Sequence[str], epochs: int) -> RasaRun:
    """Train Rasa's default pipeline on ``examples`` and parse ``texts`` one by one."""
    from nlu.rasa_export import dump_yaml, nlu_data, rasa_config

    work.mkdir(parents=True, exist_ok=True)
    (work / "nlu.yml").write_text(dump_yaml(nlu_data(examples)), encoding="utf-8")
    (work / "config.yml").write_text(dump_yaml(rasa_config(epochs=epochs)), encoding="utf-8")
    (work / "texts.json").write_text(json.dumps(list(texts), ensure_ascii=False), encoding="utf-8")
    env = rasa_env(work / "cache")
    print(
        f"  Rasa: training DIET for {epochs} epochs on {len(examples)} examples", file=sys.stderr, flush=True
    )
    train_rss = run_child(rasa_child(python, "rasa-train", str(work), str(work / "train.json")), env)
    trained = json.loads((work / "train.json").read_text(encoding="utf-8"))
    print(f"  Rasa: parsing {len(texts)} messages one at a time", file=sys.stderr, flush=True)
    parse_rss = run_child(
        rasa_child(
            python, "rasa-parse", trained["model"], str(work / "texts.json"), str(work / "parsed.json")
        ),
        env,
    )
    parsed = json.loads((work / "parsed.json").read_text(encoding="utf-8"))
    return RasaRun(parsed, trained["train_seconds"], max(train_rss, parse_rss))


def rasa_ranking(parsed: dict[str, Any]) -> list[tuple[str, float]]:
    """The ranking ``nlu.backend: rasa`` would see (nlu_fallback read as out_of_scope)."""
    from nlu.rasa_client import RasaParse, ranking_from_rasa

    return list(ranking_from_rasa(RasaParse.model_validate(parsed)))


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


# -- the two datasets ----------------------------------------------------------------------------------


def decided_scores(truth: Sequence[str], decided: Sequence[str]) -> tuple[float, float, float]:
    """In-scope accuracy, out-of-scope recall and wrong-answer rate of final decisions."""
    from nlu.understanding import OUT_OF_SCOPE

    in_scope = [(t, d) for t, d in zip(truth, decided, strict=True) if t != OUT_OF_SCOPE]
    oos = [d for t, d in zip(truth, decided, strict=True) if t == OUT_OF_SCOPE]
    answered = [(t, d) for t, d in zip(truth, decided, strict=True) if d != OUT_OF_SCOPE]
    return (
        sum(t == d for t, d in in_scope) / len(in_scope),
        sum(d == OUT_OF_SCOPE for d in oos) / len(oos),
        sum(t != d for t, d in answered) / len(answered) if answered else 0.0,
    )


def clinc150(python: Path, data_path: Path, epochs: int, work: Path) -> tuple[Measured, Measured]:
    from nlu.benchmark import Outcome, choose_threshold
    from nlu.data import Example
    from nlu.understanding import OUT_OF_SCOPE

    data = json.loads(data_path.read_text(encoding="utf-8"))

    def split(name: str) -> list[Example]:
        """In-scope items keep their label; ``oos_<name>`` items are out of scope (as nlu.benchmark reads them)."""
        return [Example(text, label, "en") for text, label in data[name]] + [
            Example(text, OUT_OF_SCOPE, "en") for text, _ in data[f"oos_{name}"]
        ]

    train, val, test = split("train"), split("val"), split("test")
    truth = [example.intent for example in test]

    print("CLINC150 Full", file=sys.stderr)
    print("  guichet: nlu.benchmark.run_clinc150", file=sys.stderr, flush=True)
    ours_file = work / "guichet-clinc150.json"
    ours_rss = run_child(guichet_child("guichet-clinc", str(data_path), str(ours_file)))
    ours = json.loads(ours_file.read_text(encoding="utf-8"))
    guichet = Measured(
        *decided_scores(truth, ours["decided"]),
        train_seconds=ours["train_seconds"],
        p50_ms=ours["latency_ms"]["p50"],
        p99_ms=ours["latency_ms"]["p99"],
        peak_rss_mb=ours_rss,
        note=f"threshold {ours['threshold']:.3f}",
    )

    run = run_rasa(python, work / "rasa-clinc150", train, [e.text for e in val + test], epochs)
    rankings = [rasa_ranking(parsed) for parsed in run.parsed]
    val_rankings, test_rankings = rankings[: len(val)], rankings[len(val) :]
    threshold = choose_threshold(Outcome(val, [r or [(OUT_OF_SCOPE, 0.0)] for r in val_rankings]))
    decided = [
        OUT_OF_SCOPE if not r or r[0][0] == OUT_OF_SCOPE or r[0][1] < threshold else r[0][0]
        for r in test_rankings
    ]
    p50, p99 = percentiles([parsed["ms"] for parsed in run.parsed[len(val) :]])
    rasa = Measured(
        *decided_scores(truth, decided),
        train_seconds=run.train_seconds,
        p50_ms=p50,
        p99_ms=p99,
        peak_rss_mb=run.peak_rss_mb,
        note=f"threshold {threshold:.3f}",
    )
    return guichet, rasa


def heldout(python: Path, epochs: int, work: Path) -> tuple[Measured, Measured]:
    from bot.config import load_config
    from nlu.data import load_examples
    from nlu.emergency import EmergencyDetector
    from nlu.evaluate import evaluate, read_labelled
    from nlu.langid import LanguageIdentifier
    from nlu.rasa_client import understanding_from_rasa

    config = load_config()
    messages = read_labelled(HELDOUT)
    examples = load_examples(config.intents_dir)

    print("held-out split", file=sys.stderr)
    print("  guichet: EmbeddedNLU trained on intents/", file=sys.stderr, flush=True)
    ours_file = work / "guichet-heldout.json"
    ours_rss = run_child(guichet_child("guichet-heldout", str(ours_file)))
    ours = json.loads(ours_file.read_text(encoding="utf-8"))
    guichet = _heldout_measured(
        ours["overall"], ours["train_seconds"], ours["p50_ms"], ours["p99_ms"], ours_rss
    )

    run = run_rasa(python, work / "rasa-heldout", examples, [m.text for m in messages], epochs)
    languages, detector = LanguageIdentifier(examples), EmergencyDetector.from_file()
    understandings = [
        understanding_from_rasa(m.text, tuple(rasa_ranking(parsed)), languages, detector)
        for m, parsed in zip(messages, run.parsed, strict=True)
    ]
    report = evaluate(zip(messages, understandings, strict=True), config.nlu.thresholds).as_dict()
    p50, p99 = percentiles([parsed["ms"] for parsed in run.parsed])
    overall = cast(dict[str, Any], report["overall"])
    rasa = _heldout_measured(overall, run.train_seconds, p50, p99, run.peak_rss_mb)
    return guichet, rasa


def _heldout_measured(
    overall: dict[str, Any], train_seconds: float, p50: float, p99: float, rss: float
) -> Measured:
    return Measured(
        in_scope_accuracy=overall["answered_correctly"] / 100,
        oos_recall=overall["oos_recall"] / 100,
        wrong_answer_rate=overall["wrong_answer_rate"] / 100,
        train_seconds=train_seconds,
        p50_ms=p50,
        p99_ms=p99,
        peak_rss_mb=rss,
        note=f"helped {overall['helped']:.1f}%",
    )


# -- the table -------------------------------------------------------------------------------------------


def table(results: dict[str, tuple[Measured, Measured]], epochs: int, rasa_version: str) -> str:
    header = (
        f"{'dataset':<10} {'system':<9} {'in-scope':>9} {'oos rec.':>9} {'wrong':>7} "
        f"{'train s':>9} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>8}  note"
    )
    lines = [
        f"guichet vs Rasa {rasa_version} (default NLU pipeline, DIET {epochs} epochs), same training data",
        header,
        "-" * len(header),
    ]
    for name, (ours, rasa) in results.items():
        for system, m in (("guichet", ours), ("Rasa", rasa)):
            lines.append(
                f"{name:<10} {system:<9} {m.in_scope_accuracy:>9.1%} {m.oos_recall:>9.1%} "
                f"{m.wrong_answer_rate:>7.1%} {m.train_seconds:>9.1f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} "
                f"{m.peak_rss_mb:>8.0f}  {m.note}"
            )
        lines.append(
            f"{name:<10} {'ratio':<9} {_ratio(ours.in_scope_accuracy, rasa.in_scope_accuracy):>9} "
            f"{_ratio(ours.oos_recall, rasa.oos_recall):>9} "
            f"{_ratio(ours.wrong_answer_rate, rasa.wrong_answer_rate):>7} "
            f"{_ratio(ours.train_seconds, rasa.train_seconds):>9} {_ratio(ours.p50_ms, rasa.p50_ms):>8} "
            f"{_ratio(ours.p99_ms, rasa.p99_ms):>8} {_ratio(ours.peak_rss_mb, rasa.peak_rss_mb):>8}  guichet / Rasa"
        )
    lines += [
        "",
        "in-scope: answered with the right intent (a refusal counts as wrong); oos rec.: out-of-scope",
        "messages not answered; wrong: wrong answers among all answers. Latency: one message per call,",
        "guichet's understand (held-out: danger lexicon + language + intents) or rank (CLINC150),",
        "Rasa's Agent.parse_message in-process. RSS: peak resident memory of the training and",
        "predicting processes. held-out: config.yml thresholds, Rasa read as nlu.backend: rasa.",
    ]
    return "\n".join(lines)


def _ratio(ours: float, rasa: float) -> str:
    return f"{ours / rasa:.2f}" if rasa else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=["clinc150", "heldout", "both"], default="both")
    parser.add_argument(
        "--rasa-epochs", type=int, default=DEFAULT_EPOCHS, help="DIET epochs (Rasa's default: 100)"
    )
    parser.add_argument("--clinc", type=Path, default=DEFAULT_CLINC, help="CLINC150 data_full.json")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="Rasa's Python 3.10 virtualenv")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _work(args.worker)
    if args.rasa_epochs < 1:
        parser.error("--rasa-epochs must be at least 1")
    if args.dataset in ("clinc150", "both") and not args.clinc.is_file():
        parser.error(f"CLINC150 data not found at {args.clinc} (use --clinc)")

    sys.path.insert(0, str(ROOT))
    from nlu.rasa_venv import RasaUnavailable, ensure_rasa_venv

    try:
        python = ensure_rasa_venv(args.venv)
    except RasaUnavailable as exc:
        print(f"rasa_side_by_side: {exc}", file=sys.stderr)
        return 2
    version = subprocess.run(
        [str(python), "-c", "import rasa; print(rasa.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    results: dict[str, tuple[Measured, Measured]] = {}
    with tempfile.TemporaryDirectory(prefix="rasa-side-by-side-") as tmp:
        work = Path(tmp)
        if args.dataset in ("clinc150", "both"):
            results["CLINC150"] = clinc150(python, args.clinc, args.rasa_epochs, work)
        if args.dataset in ("heldout", "both"):
            results["held-out"] = heldout(python, args.rasa_epochs, work)
    print(table(results, args.rasa_epochs, version))
    if args.json:
        figures: dict[str, Any] = {"rasa_version": version, "rasa_epochs": args.rasa_epochs}
        figures.update(
            {name: {"guichet": vars(ours), "rasa": vars(rasa)} for name, (ours, rasa) in results.items()}
        )
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


def _work(arguments: list[str]) -> int:
    kind, *paths = arguments
    sys.path.insert(0, str(ROOT))
    workers: dict[str, Callable[..., None]] = {
        "guichet-clinc": worker_guichet_clinc,
        "guichet-heldout": worker_guichet_heldout,
        "rasa-train": worker_rasa_train,
        "rasa-parse": worker_rasa_parse,
    }
    workers[kind](*(Path(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
