"""``guichet nlu export-rasa``: the Rasa project's structure, checked without Rasa.

tests/test_rasa.py runs Rasa's own ``rasa data validate`` and training on the same export.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.config import Config
from bot.content import AnswerBook
from bot.i18n import Catalogs
from nlu.data import load_examples
from nlu.rasa_export import ExportError, export_rasa, nlu_data

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def examples_of(block: str) -> list[str]:
    return [line[2:] for line in block.splitlines()]


@pytest.fixture(scope="module")
def project(config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rasa-project")
    written = export_rasa(config, directory, epochs=7)
    assert sorted(p.relative_to(directory).as_posix() for p in written) == [
        "config.yml",
        "data/nlu.yml",
        "data/rules.yml",
        "domain.yml",
    ]
    return directory


@pytest.fixture(scope="module")
def answers(config: Config) -> AnswerBook:
    return AnswerBook.from_config(config, Catalogs(config.languages.content))


def test_every_training_example_is_exported_once_under_its_intent(config: Config, project: Path) -> None:
    data = load(project / "data" / "nlu.yml")
    assert data["version"] == "3.1"
    intents = [item["intent"] for item in data["nlu"]]
    assert len(intents) == len(set(intents))
    exported = {(text, item["intent"]) for item in data["nlu"] for text in examples_of(item["examples"])}
    ours = {(example.text, example.intent) for example in load_examples(config.intents_dir)}
    assert exported == ours
    assert sum(len(examples_of(item["examples"])) for item in data["nlu"]) == len(ours)


def test_domain_has_each_answer_in_every_language(config: Config, project: Path, answers: AnswerBook) -> None:
    domain = load(project / "domain.yml")
    training_intents = {example.intent for example in load_examples(config.intents_dir)}
    assert set(domain["intents"]) == training_intents
    languages = config.languages.content
    slot = domain["slots"]["language"]
    assert slot["type"] == "categorical" and slot["values"] == languages
    assert slot["influence_conversation"] is False
    assert set(domain["responses"]) == {f"utter_{intent}" for intent in answers.intents}
    for intent in answers.intents:
        variations = domain["responses"][f"utter_{intent}"]
        conditioned = [v for v in variations if "condition" in v]
        assert [v["condition"] for v in conditioned] == [
            [{"type": "slot", "name": "language", "value": lang}] for lang in languages
        ]
        assert len(variations) == len(languages) + 1  # and one default, for an unset slot
        for lang, variation in zip(languages, conditioned, strict=True):
            answer = answers.answer(intent, lang)
            assert variation["text"].startswith(answer.text)
            assert "{" not in variation["text"], "placeholders must be filled in"
            for link in answer.links:
                assert f"{link.label}\n{link.url}" in variation["text"]
            buttons = [(b["title"], b["payload"]) for b in variation.get("buttons", [])]
            assert buttons == [(answers.title(b, lang), f"/{b}") for b in answer.buttons]
        assert variations[-1]["text"] == conditioned[languages.index("en")]["text"]


def test_placeholders_come_from_the_configuration(config: Config, project: Path) -> None:
    domain = load(project / "domain.yml")
    emergency = domain["responses"]["utter_emergency"][0]["text"]
    assert config.organisation.numbers["emergency"] in emergency
    contact = domain["responses"]["utter_guichet_info"][1]["text"]
    assert config.organisation.address in contact


def test_rules_answer_each_intent_and_send_the_unsure_to_the_contacts(
    project: Path, answers: AnswerBook
) -> None:
    domain = load(project / "domain.yml")
    rules = load(project / "data" / "rules.yml")["rules"]
    pairs = {(rule["steps"][0]["intent"], rule["steps"][1]["action"]) for rule in rules}
    assert {(intent, f"utter_{intent}") for intent in answers.intents} <= pairs
    assert ("out_of_scope", "utter_human_handoff") in pairs
    assert ("nlu_fallback", "utter_human_handoff") in pairs
    for intent, action in pairs:
        assert intent in domain["intents"] or intent == "nlu_fallback"
        assert action in domain["responses"]


def test_config_is_rasas_default_pipeline_with_the_chosen_epochs(project: Path) -> None:
    config = load(project / "config.yml")
    names = [component["name"] for component in config["pipeline"]]
    assert names[0] == "WhitespaceTokenizer" and names[-1] == "FallbackClassifier"
    diet = next(c for c in config["pipeline"] if c["name"] == "DIETClassifier")
    assert diet["epochs"] == 7
    assert config["assistant_id"] == "guichet-kalamaja-welcome-desk"
    assert config["policies"] == [{"name": "RulePolicy"}]


def test_an_example_under_two_intents_is_refused_with_both_names(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "a.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hello there\n    - hi\n'
        "- intent: thanks\n  examples: |\n    - thank you\n    - hello   there\n",
        encoding="utf-8",
    )
    with pytest.raises(ExportError, match="'hello there' is under both 'greet' and 'thanks'"):
        nlu_data(load_examples(tmp_path))


def test_repeated_examples_are_written_once() -> None:
    from nlu.data import Example

    data = nlu_data([Example("hi", "greet"), Example("hi", "greet", "en"), Example("bye", "goodbye")])
    assert [(item["intent"], examples_of(item["examples"])) for item in data["nlu"]] == [
        ("greet", ["hi"]),
        ("goodbye", ["bye"]),
    ]


def test_the_command_writes_the_project(tmp_path: Path) -> None:
    target = tmp_path / "exported"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "nlu", "export-rasa", str(target), "--epochs", "3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert str(target / "domain.yml") in result.stdout
    assert load(target / "config.yml")["pipeline"][5] == {
        "name": "DIETClassifier",
        "epochs": 3,
        "constrain_similarities": True,
    }
    refused = subprocess.run(
        [sys.executable, "-m", "bot.cli", "nlu", "export-rasa", str(target), "--epochs", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert refused.returncode == 2 and "--epochs" in refused.stderr
