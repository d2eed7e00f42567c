"""``intents/``: training examples readable, under known topic ids, and not contradicting each other."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bot.admin.problems import Report, display_path
from bot.admin.yaml_source import load_with_lines, value_line
from nlu.data import load_examples, training_files
from nlu.normalize import normalize
from nlu.understanding import OUT_OF_SCOPE

_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class PlacedExample:
    """A training example and where it is written."""

    text: str
    intent: str
    lang: str | None
    path: Path
    line: int | None

    @property
    def where(self) -> str:
        return f"{display_path(self.path)}:{self.line}" if self.line else display_path(self.path)


def did_you_mean(name: str, known: Collection[str]) -> str:
    """`` Did you mean `housing_search`?`` when a known id is close to ``name``."""
    guess = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" Did you mean `{guess[0]}`?" if guess else ""


def check_intents(
    directory: Path, known_intents: Collection[str], languages: Collection[str] | None, report: Report
) -> list[PlacedExample]:
    """Every example with its line; problems reported. ``known_intents``: the ids that have answers."""
    if not directory.is_dir():
        report.error("missing-directory", directory, None, "the training examples folder does not exist.")
        return []
    recognised = set(training_files(directory))
    examples: list[PlacedExample] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in _SUFFIXES):
        if path not in recognised:
            report.error(
                "not-training-file",
                path,
                1,
                "this file has no top-level `nlu:` list, so the bot does not learn from it. Start it like "
                'the other files: `version: "3.1"` then `nlu:`.',
            )
            continue
        examples.extend(_examples_of(path, directory, languages, report))
    _check_ids(examples, known_intents, report)
    _check_duplicates(examples, report)
    return examples


def _examples_of(
    path: Path, root: Path, languages: Collection[str] | None, report: Report
) -> list[PlacedExample]:
    errors_before = len(report.errors)
    raw = load_with_lines(path, report)
    if len(report.errors) > errors_before:
        return []
    try:
        loaded = load_examples(path)
    except ValueError as exc:
        report.located("intents", str(exc), path)
        return []
    lines = _example_lines(raw)
    lang = loaded[0].lang if loaded else None
    if lang is None and path.parent != root:
        lang = path.parent.name
    if path.parent == root or (lang and languages is not None and lang not in languages):
        where = "directly in intents/" if path.parent == root else f"in intents/{path.parent.name}/"
        report.warning(
            "language-folder",
            path,
            None,
            f"this file is {where}, which is not a folder of one of the content languages "
            f"({', '.join(languages or [])}); put it in intents/<language>/.",
        )
    placed = []
    for index, example in enumerate(loaded):
        line = lines[index] if index < len(lines) else None
        placed.append(PlacedExample(example.text, example.intent, example.lang, path, line))
    return placed


def _example_lines(raw: object) -> list[int | None]:
    """The line of every ``- text`` example, in the order nlu.data reads them."""
    if not isinstance(raw, CommentedMap) or not isinstance(raw.get("nlu"), CommentedSeq):
        return []
    lines: list[int | None] = []
    for item in raw["nlu"]:
        if not isinstance(item, CommentedMap) or "intent" not in item:
            continue
        block = item.get("examples")
        start = value_line(item, "examples")
        if not isinstance(block, str):
            continue
        for offset, text in enumerate(block.splitlines()):
            if text.strip():
                lines.append(None if start is None else start + 1 + offset)
    return lines


def _check_ids(examples: list[PlacedExample], known: Collection[str], report: Report) -> None:
    allowed = {*known, OUT_OF_SCOPE}
    seen: set[tuple[Path, str]] = set()
    for example in examples:
        if (example.path, example.intent) in seen:
            continue
        seen.add((example.path, example.intent))
        line = _intent_line(example)
        if example.intent not in allowed:
            hint = did_you_mean(example.intent, allowed)
            if hint:
                report.error(
                    "unknown-intent",
                    example.path,
                    line,
                    f"`{example.intent}` is not a topic id.{hint} Examples under a misspelt id teach the "
                    "bot a topic it cannot answer.",
                )
            else:
                report.error(
                    "intent-without-answer",
                    example.path,
                    line,
                    f"topic `{example.intent}` has training examples but no answer: create "
                    f"responses/{example.intent}.yml, or move these examples to an existing topic.",
                )
        elif example.path.stem != example.intent and example.path.stem in allowed:
            report.warning(
                "wrong-file",
                example.path,
                line,
                f"examples of `{example.intent}` are in the file of `{example.path.stem}`; move them to "
                f"{example.intent}.yml so that admins find them.",
            )


def _intent_line(example: PlacedExample) -> int | None:
    """The line of ``- intent: <id>`` for an example (the line above its examples block)."""
    if example.line is None:
        return None
    text = example.path.read_text(encoding="utf-8").splitlines()
    for number in range(example.line - 1, 0, -1):
        if text[number - 1].lstrip("- ").startswith("intent:"):
            return number
    return example.line


def _written_the_same(text: str) -> str:
    """Case and spacing aside, the same text. Accents and punctuation count: "a bientot" and
    "bedankt!!" are deliberate phone-typed variants of "à bientôt" and "bedankt"."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _check_duplicates(examples: list[PlacedExample], report: Report) -> None:
    written: dict[tuple[str, str], PlacedExample] = {}
    seen_by_model: dict[str, PlacedExample] = {}
    reported_pairs: set[tuple[str, ...]] = set()
    for example in examples:
        same = (example.intent, _written_the_same(example.text))
        if same in written:
            report.warning(
                "duplicate-example",
                example.path,
                example.line,
                f"“{example.text}” is already an example of `{example.intent}` at {written[same].where}; "
                "remove one of them.",
            )
            continue
        written[same] = example
        # What the model sees: the same words under two topics contradict each other.
        key = normalize(example.text)
        earlier = seen_by_model.setdefault(key, example)
        if earlier.intent == example.intent:
            continue
        pair = (key, *sorted((earlier.intent, example.intent)))
        if pair in reported_pairs:
            continue
        reported_pairs.add(pair)
        report.error(
            "example-in-two-intents",
            example.path,
            example.line,
            f"“{example.text}” is an example of `{example.intent}` here and of `{earlier.intent}` at "
            f"{earlier.where}: the bot cannot learn two answers to the same words. Keep it under one topic.",
        )
