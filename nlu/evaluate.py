"""Measure the whole decision (not only the classifier) on labelled messages.

A message is *helped* when the bot answers it with the right intent, or asks a clarifying
question that offers the right intent. A *wrong answer* is an answer with the wrong intent,
or any curated answer to an out-of-scope message; the rate is over all answered messages.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Thresholds
from bot.policy import Action, Decision, decide
from nlu.understanding import EMERGENCY, OUT_OF_SCOPE, Understanding


@dataclass(frozen=True)
class LabelledMessage:
    text: str
    intent: str
    lang: str = "?"
    slice: str = ""


def read_labelled(paths: Iterable[Path]) -> list[LabelledMessage]:
    """JSONL lines with ``text`` and ``intent`` (``lang`` and ``slice`` optional); a directory reads every ``*.jsonl``."""
    messages = []
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    messages.append(
                        LabelledMessage(
                            row["text"], row["intent"], row.get("lang") or "?", row.get("slice") or ""
                        )
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{file}:{number}: not a labelled line ({exc})") from exc
    return messages


def answered_intent(decision: Decision) -> str | None:
    """The intent the user was answered with; a requested handoff is the answer to human_handoff."""
    if decision.action is Action.ANSWER:
        return decision.intent
    if decision.action is Action.HANDOFF and decision.intent == "human_handoff":
        return "human_handoff"
    return None


@dataclass
class Tally:
    total: int = 0
    in_scope: int = 0
    correct: int = 0
    clarified_right: int = 0
    answered: int = 0
    wrong: int = 0
    oos: int = 0
    oos_refused: int = 0
    emergencies: int = 0
    emergencies_caught: int = 0

    def add(self, message: LabelledMessage, decision: Decision) -> None:
        got = answered_intent(decision)
        self.total += 1
        if got is not None:
            self.answered += 1
        if message.intent == OUT_OF_SCOPE:
            self.oos += 1
            if got is None or got == "human_handoff":
                self.oos_refused += 1
            elif got is not None:
                self.wrong += 1
            return
        self.in_scope += 1
        if message.intent == EMERGENCY:
            self.emergencies += 1
            self.emergencies_caught += decision.emergency
        if got == message.intent:
            self.correct += 1
        elif got is not None:
            self.wrong += 1
        elif decision.action is Action.CLARIFY and message.intent in decision.options:
            self.clarified_right += 1

    def figures(self) -> dict[str, float | int | None]:
        def share(part: int, whole: int) -> float | None:
            return round(100 * part / whole, 1) if whole else None

        return {
            "messages": self.total,
            "helped": share(self.correct + self.clarified_right, self.in_scope),
            "answered_correctly": share(self.correct, self.in_scope),
            "clarified_right": share(self.clarified_right, self.in_scope),
            "wrong_answer_rate": share(self.wrong, self.answered),
            "oos_recall": share(self.oos_refused, self.oos),
            "emergency_recall": share(self.emergencies_caught, self.emergencies),
        }


@dataclass
class Report:
    overall: Tally = field(default_factory=Tally)
    by_lang: defaultdict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_slice: defaultdict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "overall": self.overall.figures(),
            "by_language": {k: t.figures() for k, t in sorted(self.by_lang.items())},
            "by_slice": {k: t.figures() for k, t in sorted(self.by_slice.items())},
            "worst_confusions": [
                {"expected": a, "answered": b, "count": n} for (a, b), n in self.confusions.most_common(10)
            ],
        }


def evaluate(pairs: Iterable[tuple[LabelledMessage, Understanding]], thresholds: Thresholds) -> Report:
    report = Report()
    for message, understanding in pairs:
        decision = decide(understanding, thresholds)
        for tally in (
            report.overall,
            report.by_lang[message.lang],
            report.by_slice[message.slice or "plain"],
        ):
            tally.add(message, decision)
        got = answered_intent(decision)
        refused_oos = message.intent == OUT_OF_SCOPE and got == "human_handoff"
        if got is not None and got != message.intent and not refused_oos:
            report.confusions[(message.intent, got)] += 1
    return report


_COLUMNS = (
    ("messages", "n"),
    ("helped", "helped%"),
    ("answered_correctly", "right%"),
    ("clarified_right", "clarif%"),
    ("wrong_answer_rate", "wrong%"),
    ("oos_recall", "oos-rec%"),
    ("emergency_recall", "emerg-rec%"),
)


def format_report(report: dict[str, object]) -> str:
    """A plain-text table per language and per slice, then the worst confusions."""

    def rows(title: str, table: dict[str, dict[str, object]]) -> Iterator[str]:
        yield f"{title:<18}" + "".join(f"{head:>11}" for _, head in _COLUMNS)
        for name, figures in table.items():
            cells = ("-" if figures[key] is None else str(figures[key]) for key, _ in _COLUMNS)
            yield f"{name:<18}" + "".join(f"{cell:>11}" for cell in cells)

    overall = report["overall"]
    assert isinstance(overall, dict)
    by_lang = report["by_language"]
    by_slice = report["by_slice"]
    assert isinstance(by_lang, dict) and isinstance(by_slice, dict)
    lines = [*rows("language", {**by_lang, "ALL": overall}), "", *rows("slice", by_slice), ""]
    lines.append("worst confusions (expected -> answered):")
    confusions = report["worst_confusions"]
    assert isinstance(confusions, list)
    lines += [f"  {c['expected']} -> {c['answered']}: {c['count']}" for c in confusions] or ["  none"]
    return "\n".join(lines)
