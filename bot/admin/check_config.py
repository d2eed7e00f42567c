"""``config.yml``: every setting validated, each mistake shown at its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.admin.formats import phone_problem
from bot.admin.problems import Report
from bot.admin.schema_errors import report_validation
from bot.admin.yaml_source import line_of, load_with_lines
from bot.config import Config


def check_config(path: Path, report: Report) -> Config | None:
    """The configuration to check the content against (environment overrides not applied).

    Invalid optional sections are reported and left at their defaults; None when the organisation
    or the languages themselves are invalid.
    """
    if not path.is_file():
        report.error("missing-file", path, None, "the configuration file does not exist.")
        return None
    raw = load_with_lines(path, report)
    if raw is None:
        if not report.errors:
            report.error("config", path, 1, "the file is empty; copy config.yml from guichet and edit it.")
        return None
    config: Config | None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        report_validation(report, path, raw, exc, code="config", allowed_keys=_keys_at)
        config = _without_broken_sections(raw, exc)
        if config is None:
            return None
    _check_numbers(config, raw, path, report)
    _check_fallbacks(config, raw, path, report)
    _check_inbox_threshold(config, raw, path, report)
    return config


def _without_broken_sections(raw: Any, exc: ValidationError) -> Config | None:
    """The configuration with its invalid optional sections left at their defaults, so that the
    content can still be checked against the rest (the sections' errors are reported already)."""
    broken = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    if broken & {"organisation", "languages"} or not isinstance(raw, dict):
        return None
    try:
        return Config.model_validate({key: value for key, value in raw.items() if key not in broken})
    except ValidationError:
        return None


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The settings allowed at ``loc`` (for "did you mean" on a misspelt key)."""
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _check_numbers(config: Config, raw: Any, path: Path, report: Report) -> None:
    org = config.organisation
    numbers = [("phone", org.phone), *((f"numbers.{k}", v) for k, v in org.numbers.items())]
    for name, number in numbers:
        problem = phone_problem(number)
        if problem:
            loc = ("organisation", *name.split("."))
            report.error("phone", path, line_of(raw, loc), f"organisation.{name}: {problem}")


def _check_fallbacks(config: Config, raw: Any, path: Path, report: Report) -> None:
    content = config.languages.content
    for lang, chain in config.languages.fallback.items():
        line = line_of(raw, ("languages", "fallback", lang))
        unknown = [c for c in chain if c not in content]
        if unknown:
            report.error(
                "fallback",
                path,
                line,
                f"languages.fallback.{lang} names {', '.join(unknown)}, which is not in languages.content: "
                "answers are only written in the content languages.",
            )
        if lang == "uk" and "ru" in chain:
            report.error(
                "fallback",
                path,
                line,
                "languages.fallback.uk goes through Russian: a Ukrainian speaker must never be answered "
                "in Russian by default. Remove ru from this list.",
            )


def _check_inbox_threshold(config: Config, raw: Any, path: Path, report: Report) -> None:
    below, answer = config.feedback.inbox_below, config.nlu.thresholds.answer
    if below <= answer:
        report.warning(
            "inbox-threshold",
            path,
            line_of(raw, ("feedback", "inbox_below")),
            f"feedback.inbox_below ({below}) is not above nlu.thresholds.answer ({answer}), so no answered "
            "message ever counts as unsure in the unanswered-questions inbox. Set it higher (e.g. 0.85).",
        )
