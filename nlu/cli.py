"""``guichet nlu ...``: train, predict, eval, benchmark."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bot.config import Config, Thresholds
from bot.policy import Action, decide
from nlu.evaluate import evaluate, format_report, read_labelled
from nlu.understanding import EMERGENCY, OUT_OF_SCOPE, Understanding

if TYPE_CHECKING:
    from nlu.embedded import EmbeddedNLU

DEFAULT_CLINC = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks" / "clinc150" / "data_full.json"
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nlu = commands.add_parser("nlu", help="train, test and measure the embedded NLU")
    sub = nlu.add_subparsers(dest="nlu_command", required=True)

    def model_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--intents", type=Path, help="training data directory (default: intents/)")
        parser.add_argument("--model-dir", type=Path, help="where trained models are cached")

    train = sub.add_parser("train", help="train the model from Rasa-format YAML (cached by data hash)")
    model_options(train)
    train.set_defaults(func=_train)

    predict = sub.add_parser("predict", help="JSONL with a text field in, one prediction per line out")
    predict.add_argument("file", help="JSONL file, or - for stdin")
    model_options(predict)
    predict.set_defaults(func=_predict)

    ev = sub.add_parser("eval", help="helped / wrong-answer / out-of-scope figures on labelled JSONL")
    ev.add_argument("files", nargs="+", type=Path, help="JSONL files or directories of them")
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    model_options(ev)
    ev.set_defaults(func=_eval)

    bench = sub.add_parser("benchmark", help="public benchmarks with published results")
    bench.add_argument("dataset", choices=["clinc150"])
    bench.add_argument("--data", type=Path, default=DEFAULT_CLINC, help="path to data_full.json")
    bench.add_argument("--predictions", type=Path, help="write one prediction per test query (JSONL)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(func=_benchmark)

    export = sub.add_parser("export-rasa", help="write the content as a Rasa 3 project (to move to Rasa)")
    export.add_argument("directory", type=Path, help="where to write the project (created if needed)")
    export.add_argument("--epochs", type=int, default=100, help="DIET epochs in its config.yml (default 100)")
    export.set_defaults(func=_export_rasa)


def _progress_bar() -> Callable[[str, float], None]:
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%", bar_format="{desc:<24} {bar} {n:.0f}%", file=sys.stderr)

    def update(stage: str, fraction: float) -> None:
        bar.set_description_str(stage)
        bar.n = round(100 * fraction)
        bar.refresh()
        if fraction >= 1:
            bar.close()

    return update


def _nlu(
    config: Config, args: argparse.Namespace, progress: Callable[[str, float], None] | None = None
) -> EmbeddedNLU:
    from nlu.embedded import EmbeddedNLU  # scikit-learn and the embeddings load only when needed

    return EmbeddedNLU.from_files(
        args.intents or config.intents_dir, args.model_dir or config.nlu.model_dir, progress=progress
    )


def _train(args: argparse.Namespace, config: Config) -> int:
    started = time.perf_counter()
    nlu = _nlu(config, args, _progress_bar())
    elapsed = time.perf_counter() - started
    print(f"model ready: {len(nlu.classifier.intents)} intents, {elapsed:.1f} s")
    return 0


def prediction_line(understanding: Understanding, thresholds: Thresholds) -> dict[str, object]:
    """One ``nlu predict`` output line."""
    decision = decide(understanding, thresholds)
    if decision.emergency:
        intent = EMERGENCY
    elif decision.action is Action.HANDOFF and decision.intent != "human_handoff":
        intent = OUT_OF_SCOPE
    else:
        intent = understanding.intent if decision.action is Action.CLARIFY else decision.intent
    return {
        "text": understanding.text,
        "intent": intent,
        "confidence": round(
            understanding.score(intent) if intent != OUT_OF_SCOPE else understanding.confidence, 4
        ),
        "decision": decision.action.value,
        "lang": understanding.lang,
        "ranking": [[name, round(score, 4)] for name, score in understanding.ranking[:3]],
    }


def _lines(source: IO[bytes]) -> Iterator[tuple[str | None, str | None]]:
    """(text, error) for each input line; bad UTF-8 is replaced, bad JSON reported, never raised."""
    for raw in source:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            yield None, "line is not JSON"
            continue
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str):
            yield None, "no text field"
            continue
        yield text, None


def _predict(args: argparse.Namespace, config: Config) -> int:
    nlu = _nlu(config, args)
    thresholds = config.nlu.thresholds
    with contextlib.ExitStack() as stack:
        source = sys.stdin.buffer if args.file == "-" else stack.enter_context(Path(args.file).open("rb"))
        for text, error in _lines(source):
            if error is not None:
                out: dict[str, object] = {"text": None, "error": error}
            else:
                assert text is not None
                out = prediction_line(nlu.understand_now(text), thresholds)
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    return 0


def _eval(args: argparse.Namespace, config: Config) -> int:
    nlu = _nlu(config, args)
    messages = read_labelled(args.files)
    report = evaluate(((m, nlu.understand_now(m.text)) for m in messages), config.nlu.thresholds).as_dict()
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def _benchmark(args: argparse.Namespace, config: Config) -> int:
    from nlu.benchmark import format_report as format_benchmark
    from nlu.benchmark import run_clinc150

    if not args.data.exists():
        print(f"CLINC150 data not found at {args.data} (use --data)", file=sys.stderr)
        return 2
    result = run_clinc150(args.data, args.predictions, progress=_progress_bar())
    print(json.dumps(result, indent=2) if args.json else format_benchmark(result))
    return 0


def _export_rasa(args: argparse.Namespace, config: Config) -> int:
    from nlu.rasa_export import ExportError, export_rasa

    if args.epochs < 1:
        print("--epochs must be at least 1", file=sys.stderr)
        return 2
    try:
        written = export_rasa(config, args.directory, epochs=args.epochs)
    except (ExportError, OSError) as exc:
        print(f"export-rasa: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"check it with: cd {args.directory} && rasa data validate", file=sys.stderr)
    return 0
