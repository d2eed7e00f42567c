"""``guichet content check``: everything an admin can get wrong in the content, found before the bot does.

Like ``rasa data validate``, but for people who are not programmers: each problem names the file
and line and says in plain words what to change. Errors would break the bot or make it mislead
(a live reload refuses content with errors); warnings make it worse (a missing translation, two
topics the model mixes up). The command exits with 0 only when there is neither.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bot.admin.check_catalogs import check_catalogs
from bot.admin.check_config import check_config
from bot.admin.check_intents import PlacedExample, check_intents
from bot.admin.check_responses import Responses, check_responses
from bot.admin.confusion import THRESHOLD, Progress, check_confusions
from bot.admin.problems import Report
from bot.config import Config
from bot.content import AnswerBook
from bot.i18n import LOCALE_DIR, Catalogs
from bot.services import ServicesError, load_services


def check_content(
    config_path: Path,
    *,
    model: bool = True,
    threshold: float = THRESHOLD,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    locale_dir: Path = LOCALE_DIR,
) -> Report:
    """Check ``config_path`` and the content it points to; ``model`` adds the (slower) confusion test."""
    report = Report()
    config = check_config(config_path, report)
    intents_dir = config.intents_dir if config else Config.model_fields["intents_dir"].default
    responses_dir = config.responses_dir if config else Config.model_fields["responses_dir"].default
    languages = config.languages.content if config else None
    responses = check_responses(responses_dir, config, _placeholders(config), report)
    examples = check_intents(intents_dir, responses.names, languages, report)
    _check_reachable(responses, examples, report)
    if config is not None:
        _check_services(config, responses, report)
    check_catalogs(languages or [], report, locale_dir)
    if model and examples:
        check_confusions(
            examples,
            report,
            cache_dir=cache_dir or _cache_dir(config),
            threshold=threshold,
            progress=progress,
        )
    return report


def _placeholders(config: Config | None) -> Mapping[str, Mapping[str, str]]:
    """For each content language, what every ``{placeholder}`` is filled in with."""
    if config is None:
        return {}
    catalogs = Catalogs(config.languages.content)
    book = AnswerBook({}, config, catalogs)
    return {lang: book.placeholder_values(lang) for lang in config.languages.content}


def _check_reachable(responses: Responses, examples: list[PlacedExample], report: Report) -> None:
    taught = {example.intent for example in examples}
    for intent, path in sorted(responses.files.items()):
        if intent not in taught:
            report.warning(
                "answer-without-examples",
                path,
                1,
                f"`{intent}` has an answer but no training examples in intents/, so the bot never "
                "understands a question about it (it can only be reached from a button).",
            )


def _check_services(config: Config, responses: Responses, report: Report) -> None:
    try:
        load_services(config.services_dir, topics=responses.names, languages=config.languages.content)
    except ServicesError as exc:
        report.located("services", str(exc), config.services_dir)


def _cache_dir(config: Config | None) -> Path | None:
    if config is None:
        return None
    return Path(os.environ.get("GUICHET_MODEL_DIR") or config.nlu.model_dir) / "confusions"
