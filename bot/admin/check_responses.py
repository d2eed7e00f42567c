"""``responses/``: every answer loads, fits the channels, and points at things that exist."""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap

from bot.admin.check_intents import did_you_mean
from bot.admin.formats import PHONE_IN_TEXT, link_problem, phone_problem
from bot.admin.problems import Report
from bot.admin.schema_errors import report_validation
from bot.admin.yaml_source import line_of, load_with_lines
from bot.config import Config
from bot.content import MAX_BUTTONS, MAX_TITLE, AnswerSpec, LinkSpec, ResponseFile

TEXT_LIMIT = 4096  # Telegram and WhatsApp: longer answers arrive cut into several messages


@dataclass
class Responses:
    """What the other checks need to know about the answers."""

    names: set[str] = field(default_factory=set)  # every topic id of the folder, valid file or not
    files: dict[str, Path] = field(default_factory=dict)  # intent -> its file, when it is valid
    languages: dict[str, set[str]] = field(default_factory=dict)  # intent -> answer languages

    @property
    def intents(self) -> set[str]:
        return set(self.files)


def check_responses(
    directory: Path, config: Config | None, placeholders: Mapping[str, Mapping[str, str]], report: Report
) -> Responses:
    """Check every ``responses/*.yml``. ``placeholders``: for each language, what ``{name}`` becomes."""
    found = Responses()
    if not directory.is_dir():
        report.error("missing-directory", directory, None, "the answers folder does not exist.")
        return found
    for path in sorted(directory.glob("*.yaml")):
        report.warning("ignored-file", path, None, "answer files must end in .yml; this one is ignored.")
    documents: dict[Path, Any] = {}
    for path in sorted(directory.glob("*.yml")):
        errors_before = len(report.errors)
        raw = load_with_lines(path, report)
        if raw is None:
            if len(report.errors) == errors_before:
                report.error("empty-file", path, 1, "the file is empty.")
            continue
        if not isinstance(raw, CommentedMap):
            report.error(
                "response-shape", path, 1, "an answer file starts with `intent:`, `title:`, `answers:`."
            )
            continue
        documents[path] = raw
    ids = {path.stem for path in documents} | {
        raw["intent"] for raw in documents.values() if isinstance(raw.get("intent"), str)
    }
    found.names = ids
    for path, raw in documents.items():
        _check_file(path, raw, ids, config, placeholders, report, found)
    return found


def _check_file(
    path: Path,
    raw: CommentedMap,
    ids: set[str],
    config: Config | None,
    placeholders: Mapping[str, Mapping[str, str]],
    report: Report,
    found: Responses,
) -> None:
    intent = raw.get("intent")
    if isinstance(intent, str):
        if intent != path.stem:
            report.error(
                "intent-file-name",
                path,
                line_of(raw, ("intent",)),
                f"this file is {path.name} but says `intent: {intent}`; the topic id and the file name "
                f"must be the same.{did_you_mean(intent, ids - {intent})}",
            )
        if intent in found.files:
            report.error(
                "second-answer-file",
                path,
                line_of(raw, ("intent",)),
                f"{found.files[intent].name} already answers `{intent}`.",
            )
    content = config.languages.content if config else None
    _check_titles(path, raw, content, report)
    answers = raw.get("answers")
    if isinstance(answers, CommentedMap):
        for lang, answer in answers.items():
            if isinstance(answer, CommentedMap):
                _check_answer(path, raw, str(lang), answer, ids, placeholders, report)
            if content is not None and lang not in content:
                report.warning(
                    "unknown-language",
                    path,
                    line_of(raw, ("answers", lang)),
                    f"`{lang}` is not one of the content languages ({', '.join(content)}) in config.yml, "
                    f"so this answer is never shown.{did_you_mean(str(lang), content)}",
                )
    try:
        spec = ResponseFile.model_validate(raw)
    except ValidationError as exc:
        report_validation(
            report, path, raw, exc, code="response", allowed_keys=_allowed_keys, skip=_reported_already
        )
        return
    if spec.intent not in found.files:
        found.files[spec.intent] = path
        found.languages[spec.intent] = set(spec.answers)
    if config is not None:
        _check_fallbacks(path, raw, spec, config, report)


def _allowed_keys(loc: tuple[int | str, ...]) -> Collection[str]:
    if not loc:
        return list(ResponseFile.model_fields)
    if loc[0] == "answers" and len(loc) == 2:
        return list(AnswerSpec.model_fields)
    if loc[0] == "answers" and len(loc) == 4 and loc[2] == "links":
        return list(LinkSpec.model_fields)
    return []


def _reported_already(loc: tuple[int | str, ...], error: ErrorDetails) -> bool:
    """Titles over 20 characters and more than 3 buttons are reported in plainer words first."""
    if loc == ("title",) and "longer than" in error["msg"]:
        return True
    return len(loc) == 3 and loc[0] == "answers" and loc[2] == "buttons" and error["type"] == "too_long"


def _check_titles(path: Path, raw: CommentedMap, content: list[str] | None, report: Report) -> None:
    titles = raw.get("title")
    if not isinstance(titles, CommentedMap):
        return
    for lang, title in titles.items():
        if isinstance(title, str) and len(title) > MAX_TITLE:
            report.error(
                "title-too-long",
                path,
                line_of(raw, ("title", lang)),
                f"the {lang} title “{title}” has {len(title)} characters; WhatsApp shows at most {MAX_TITLE} "
                "on a button, so write a shorter one.",
            )
    for lang in content or []:
        if lang not in titles:
            report.warning(
                "missing-title",
                path,
                line_of(raw, ("title",)),
                f"no {lang} title: buttons for this topic will show another language's title.",
            )


def _check_answer(
    path: Path,
    raw: CommentedMap,
    lang: str,
    answer: CommentedMap,
    ids: set[str],
    placeholders: Mapping[str, Mapping[str, str]],
    report: Report,
) -> None:
    buttons = answer.get("buttons")
    if isinstance(buttons, list):
        if len(buttons) > MAX_BUTTONS:
            report.error(
                "too-many-buttons",
                path,
                line_of(raw, ("answers", lang, "buttons")),
                f"the {lang} answer has {len(buttons)} buttons; WhatsApp shows at most {MAX_BUTTONS}. "
                "Keep the most useful ones.",
            )
        for index, button in enumerate(buttons):
            if isinstance(button, str) and button not in ids:
                report.error(
                    "unknown-button",
                    path,
                    line_of(raw, ("answers", lang, "buttons", index)),
                    f"the {lang} answer has a button for `{button}`, which is not a topic id "
                    f"(no responses/{button}.yml).{did_you_mean(button, ids)}",
                )
    values = placeholders.get(lang) or next(iter(placeholders.values()), None)
    text = answer.get("text")
    if isinstance(text, str):
        _check_text(path, raw, lang, text, values, report)
    links = answer.get("links")
    if isinstance(links, list):
        for index, link in enumerate(links):
            url = link.get("url") if isinstance(link, CommentedMap) else None
            if isinstance(url, str):
                _check_link(path, raw, lang, index, url, values, report)


def _fill(
    text: str, values: Mapping[str, str] | None, report: Report, path: Path, line: int | None, what: str
) -> str | None:
    """``text`` with its placeholders filled in; None (and a problem) when that would fail."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        report.error(
            "braces",
            path,
            line,
            f"{what} has a lone {{ or }}. Placeholders look like {{city}}; to show a brace itself, "
            "write it twice: {{ or }}.",
        )
        return None
    if "" in names or any(not name.isidentifier() for name in names):
        report.error("placeholder", path, line, f"{what} has an empty or malformed {{placeholder}}.")
        return None
    if values is None:
        return None
    unknown = sorted(names - set(values))
    for name in unknown:
        report.error(
            "unknown-placeholder",
            path,
            line,
            f"{what} uses {{{name}}}, which config.yml does not define "
            f"(known: {', '.join('{' + k + '}' for k in sorted(values))}).{did_you_mean(name, values)}",
        )
    if unknown:
        return None
    return text.strip().format_map(values)


def _check_text(
    path: Path, raw: CommentedMap, lang: str, text: str, values: Mapping[str, str] | None, report: Report
) -> None:
    line = line_of(raw, ("answers", lang, "text"))
    filled = _fill(text, values, report, path, line, f"the {lang} answer")
    if filled is not None and len(filled) > TEXT_LIMIT:
        report.warning(
            "text-too-long",
            path,
            line,
            f"the {lang} answer has {len(filled)} characters once filled in; Telegram and WhatsApp take "
            f"at most {TEXT_LIMIT}, so it arrives cut in pieces. Make it shorter.",
        )
    for number in PHONE_IN_TEXT.findall(text):
        problem = phone_problem(number)
        if problem:
            report.error("phone", path, line, f"the {lang} answer: {problem}")


def _check_link(
    path: Path,
    raw: CommentedMap,
    lang: str,
    index: int,
    url: str,
    values: Mapping[str, str] | None,
    report: Report,
) -> None:
    line = line_of(raw, ("answers", lang, "links", index, "url"))
    filled = _fill(url, values, report, path, line, f"the {lang} link")
    if filled is None:
        if values is not None or "{" in url:
            return  # already reported, or cannot be filled in without a valid config.yml
        filled = url
    problem = link_problem(filled)
    if problem:
        report.error("link", path, line, f"the {lang} answer: {problem}")


def _check_fallbacks(
    path: Path, raw: CommentedMap, spec: ResponseFile, config: Config, report: Report
) -> None:
    for lang in config.languages.content:
        if lang in spec.answers:
            continue
        chain = config.languages.chain(lang)
        used = next((c for c in chain if c in spec.answers), next(iter(spec.answers)))
        report.warning(
            "missing-translation",
            path,
            line_of(raw, ("answers",)),
            f"no {lang} answer: {lang} speakers get the {used} answer instead "
            f"(fallback order {' → '.join(chain)}, from config.yml).",
        )
