"""``guichet content check``: every class of problem found, with file, line and plain words, in a
broken fixture set (tests/data/broken_content); the shipped content passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.admin.check import check_content
from bot.admin.formats import link_problem, phone_problem
from bot.admin.problems import Report
from tests.conftest import ROOT

BROKEN = ROOT / "tests" / "data" / "broken_content"


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The fixture set checked as an admin would (from its folder: config.yml names relative folders)."""
    here = Path.cwd()
    os.chdir(BROKEN)
    try:
        return check_content(
            Path("config.yml"), cache_dir=tmp_path_factory.mktemp("confusions"), locale_dir=Path("locale")
        )
    finally:
        os.chdir(here)


def found(report: Report, code: str) -> list[tuple[str, int | None, str, str]]:
    return [(p.path, p.line, p.severity, p.message) for p in report.problems if p.code == code]


# Each class of problem: (code, file, line, severity, words the admin reads).
EXPECTED = [
    ("yaml", "intents/en/broken.yml", 6, "error", "not valid YAML"),
    ("yaml", "responses/broken.yml", 4, "error", "Check the indentation"),
    ("not-training-file", "intents/en/notes.yml", 1, "error", "no top-level `nlu:` list"),
    ("unknown-intent", "intents/en/misspelt.yml", 3, "error", "Did you mean `housing_search`?"),
    (
        "intent-without-answer",
        "intents/en/visa_questions.yml",
        3,
        "error",
        "create responses/visa_questions.yml",
    ),
    (
        "duplicate-example",
        "intents/en/housing_search.yml",
        10,
        "warning",
        "at intents/en/housing_search.yml:5",
    ),
    (
        "example-in-two-intents",
        "intents/en/housing_search.yml",
        11,
        "error",
        "intents/en/emergency_shelter.yml:5",
    ),
    ("answer-without-examples", "responses/bank_account.yml", 1, "warning", "no training examples"),
    ("missing-translation", "responses/wrong_name.yml", 5, "warning", "uk speakers get the en answer"),
    ("missing-title", "responses/housing_search.yml", 3, "warning", "no uk title"),
    ("unknown-placeholder", "responses/housing_search.yml", 8, "error", "{citty}"),
    ("braces", "responses/housing_search.yml", 19, "error", "lone { or }"),
    ("phone", "responses/housing_search.yml", 8, "error", "'+372 12'"),
    ("phone", "config.yml", 14, "error", "organisation.numbers.crisis_line"),
    ("link", "responses/housing_search.yml", 15, "error", "must start with https://"),
    ("link", "responses/housing_search.yml", 17, "error", "no valid site name"),
    ("link", "responses/housing_search.yml", 24, "error", "not a valid e-mail address"),
    ("unknown-button", "responses/housing_search.yml", 12, "error", "Did you mean `emergency_shelter`?"),
    ("too-many-buttons", "responses/housing_search.yml", 12, "error", "at most 3"),
    ("title-too-long", "responses/housing_search.yml", 4, "error", "at most 20"),
    ("text-too-long", "responses/emergency_shelter.yml", 9, "warning", "at most 4096"),
    ("response", "responses/greet.yml", 9, "error", "Did you mean `text`?"),
    ("response", "responses/greet.yml", 8, "error", "required but missing"),
    ("unknown-language", "responses/greet.yml", 14, "warning", "Did you mean `uk`?"),
    ("intent-file-name", "responses/wrong_name.yml", 2, "error", "must be the same"),
    ("config", "config.yml", 25, "error", "less than or equal to 1"),
    ("config", "config.yml", 28, "error", "Did you mean `retention_days`?"),
    ("fallback", "config.yml", 20, "error", "never be answered in Russian"),
    ("fallback", "config.yml", 20, "error", "not in languages.content"),
    ("inbox-threshold", "config.yml", 31, "warning", "not above nlu.thresholds.answer"),
    ("untranslated", "locale/fr/LC_MESSAGES/guichet.po", 6, "warning", "not translated into fr"),
    ("catalog-placeholders", "locale/fr/LC_MESSAGES/guichet.po", 9, "error", "%(centre)s"),
    ("catalog-outdated", "locale/fr/LC_MESSAGES/guichet.po", None, "warning", "run `make messages`"),
    ("missing-catalog", "locale/uk/LC_MESSAGES/guichet.po", None, "warning", "no uk catalog"),
]


def test_topics_the_model_mixes_up_are_found_by_cross_validation(broken: Report) -> None:
    # Where it points depends on which examples the model got wrong: one of the two topics' files.
    [(path, line, severity, message)] = found(broken, "confused-intents")
    assert path in {"intents/en/emergency_shelter.yml", "intents/en/housing_search.yml"} and line
    assert severity == "warning" and "mixes up `emergency_shelter` and `housing_search`" in message


@pytest.mark.parametrize(("code", "path", "line", "severity", "words"), EXPECTED)
def test_each_class_of_problem_is_found_where_it_is(
    broken: Report, code: str, path: str, line: int | None, severity: str, words: str
) -> None:
    matches = [p for p in found(broken, code) if p[0] == path and p[1] == line and words in p[3]]
    assert matches, f"{code} not reported at {path}:{line}; got {found(broken, code)}"
    assert matches[0][2] == severity


def test_nothing_is_reported_that_is_not_a_problem(broken: Report) -> None:
    # Accent-less and punctuated variants are deliberate phone-typed examples, not duplicates;
    # the valid French file and the valid answers raise nothing.
    assert not [p for p in broken.problems if p.path == "intents/fr/housing_search.yml"]
    assert not [
        p
        for p in broken.problems
        if p.path == "responses/bank_account.yml" and p.code != "answer-without-examples"
    ]
    assert {p.code for p in broken.problems} == {code for code, *_ in EXPECTED} | {"confused-intents"}


def test_every_problem_names_its_file_and_says_what_to_do_in_plain_words(broken: Report) -> None:
    for problem in broken.problems:
        assert problem.path, problem
        assert problem.message[0].isalnum() or problem.message[0] in "`“{", problem
        assert "Traceback" not in problem.message and "pydantic" not in problem.message.lower()
        assert "input_value" not in problem.message and "type=" not in problem.message
    text = broken.as_text()
    assert "responses/housing_search.yml:12: error: the en answer has 4 buttons" in text
    assert text.endswith(f"{len(broken.errors)} errors and {len(broken.warnings)} warnings.")


def guichet(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("GUICHET_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=1800,
    )


def test_the_command_exits_1_with_json_for_machines_on_broken_content() -> None:
    result = guichet("--config", "config.yml", "content", "check", "--json", "--no-model", cwd=BROKEN)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["clean"] is False and report["errors"] > 10
    first = report["problems"][0]
    assert set(first) == {"severity", "code", "path", "line", "message"}
    assert any(p["code"] == "unknown-intent" and p["line"] == 3 for p in report["problems"])


def test_a_config_that_is_not_yaml_is_reported_not_fatal(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("organisation:\n  centre_name: [unclosed\n", encoding="utf-8")
    result = guichet("--config", str(config), "content", "check", "--no-model")
    assert result.returncode == 1
    assert f"{config}:2: error: this is not valid YAML" in result.stdout or "config.yml:" in result.stdout


@pytest.mark.timeout(1800)  # the model test trains 5 models the first time (then cached by data hash)
def test_the_shipped_content_is_clean() -> None:
    result = guichet("content", "check", "--json")
    report = json.loads(result.stdout)
    assert report["problems"] == [] and result.returncode == 0, json.dumps(
        report, indent=2, ensure_ascii=False
    )


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("112", True),
        ("+372 600 1234", True),
        ("116 006", True),
        ("+372 65", False),
        ("call 112", False),
        ("+1+2", False),
    ],
)
def test_phone_numbers(number: str, ok: bool) -> None:
    assert (phone_problem(number) is None) is ok


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://www.kv.ee", True),
        ("https://tööamet.ee/path?q=1", True),
        ("mailto:info@example.org", True),
        ("tel:+3726001234", True),
        ("htps://www.kv.ee", False),
        ("https://", False),
        ("https://kv", False),
        ("https://www.kv.ee/a b", False),
        ("www.kv.ee", False),
        ("tel:12", False),
        ("https://example.org:port/", False),
    ],
)
def test_links(url: str, ok: bool) -> None:
    assert (link_problem(url) is None) is ok
