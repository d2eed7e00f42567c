"""Reading Rasa NLU training files and fingerprinting them."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.data import Example, load_examples, training_fingerprint
from nlu.normalize import normalize

HOUSING_FR = """\
# Logement
version: "3.1"
nlu:
- intent: housing_search
  examples: |
    - je cherche un [appartement](housing_type)
    - jcherche un logemen pas cher svp

    - une [chambre]{"entity": "housing_type"} à louer
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_single_file_strips_entities_and_blank_lines(tmp_path: Path) -> None:
    file = write(tmp_path / "fr" / "housing_search.yml", HOUSING_FR)
    assert load_examples(file) == [
        Example("je cherche un appartement", "housing_search", "fr"),
        Example("jcherche un logemen pas cher svp", "housing_search", "fr"),
        Example("une chambre à louer", "housing_search", "fr"),
    ]


def test_directory_is_searched_recursively_and_skips_non_nlu_yaml(tmp_path: Path) -> None:
    write(tmp_path / "fr" / "housing_search.yml", HOUSING_FR)
    write(tmp_path / "en" / "extra" / "greet.yaml", "nlu:\n- intent: greet\n  examples: |\n    - hi\n")
    write(tmp_path / "domain.yml", "responses:\n  utter_greet:\n  - text: hi\n")
    write(tmp_path / "notes.txt", "nlu:\n")
    examples = load_examples(tmp_path)
    assert {(e.text, e.lang) for e in examples if e.intent == "greet"} == {("hi", None)}  # "extra" is no code
    assert len(examples) == 4


def test_language_is_the_parent_directory_code(tmp_path: Path) -> None:
    write(tmp_path / "intents" / "ar" / "greet.yml", "nlu:\n- intent: greet\n  examples: |\n    - salam\n")
    write(tmp_path / "intents" / "misc" / "greet.yml", "nlu:\n- intent: greet\n  examples: |\n    - yo\n")
    langs = {e.text: e.lang for e in load_examples(tmp_path / "intents")}
    assert langs == {"salam": "ar", "yo": None}


def test_synonyms_and_regexes_are_ignored(tmp_path: Path) -> None:
    text = (
        "nlu:\n- synonym: flat\n  examples: |\n    - apartment\n- intent: greet\n  examples: |\n    - hey\n"
    )
    assert load_examples(write(tmp_path / "en" / "a.yml", text)) == [Example("hey", "greet", "en")]


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n    hello\n", 5),
        ("nlu:\n- intent: greet\n  examples: [hi]\n", 2),
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n  - bad: [\n", None),
        ("nlu:\n- just text\n", 2),
        ("nlu: {greet: hi}\n", 1),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path: Path, content: str, line: int | None) -> None:
    write(tmp_path / "en" / "broken.yml", content)
    with pytest.raises(ValueError, match=r"broken\.yml") as error:
        load_examples(tmp_path)
    if line is not None:
        assert f"broken.yml:{line}:" in str(error.value)


def test_invalid_yaml_reports_a_line(tmp_path: Path) -> None:
    file = write(tmp_path / "en" / "broken.yml", 'nlu:\n- intent: greet\n  examples: "unterminated\n')
    with pytest.raises(ValueError, match=r"broken\.yml:\d+: invalid YAML"):
        load_examples(file)


def test_missing_path_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_examples(tmp_path / "absent")


def test_fingerprint_follows_content_and_names(tmp_path: Path) -> None:
    file = write(tmp_path / "fr" / "housing_search.yml", HOUSING_FR)
    first = training_fingerprint(tmp_path)
    write(tmp_path / "README.md", "not training data")
    assert training_fingerprint(tmp_path) == first
    file.write_text(HOUSING_FR + "    - un studio\n", encoding="utf-8")
    second = training_fingerprint(tmp_path)
    assert second != first
    file.rename(tmp_path / "fr" / "housing.yml")
    assert training_fingerprint(tmp_path) != second


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Héllo   Wörld!!!", "hello world!"),
        ("ЙОЙ, шукаю квартиру ї", "йой, шукаю квартиру ї"),
        ("أريدُ مساعدةً", "اريد مساعده"),
        ("Straße", "strasse"),
        ("a\x00b\u200bc\td", "abc d"),
        ("noooooo 1000", "noo 1000"),
        ("Ücretsiz Türkçe kursu", "ucretsiz turkce kursu"),
        ("ＡＢＣ１", "abc1"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_keeps_both_ends_of_long_input() -> None:
    text = "start " + "x" * 5000 + " question at the end"
    result = normalize(text)
    assert result.startswith("start") and result.endswith("question at the end")
    assert len(result) <= 1001


@pytest.mark.parametrize("raw", ["", "   ", "\ud800", "\x00\x01", "🙂" * 3000, "ﷺ" * 900])
def test_normalize_never_raises(raw: str) -> None:
    assert isinstance(normalize(raw), str)
