"""Training examples read from Rasa NLU YAML files, so the same files can train Rasa and guichet."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

# A top-level `nlu:` key marks a training file (config, domain or response files have none).
_NLU_KEY = re.compile(r"^nlu\s*:", re.MULTILINE)
# Rasa entity annotations: [text](entity), [text](entity:value), [text]{"entity": ...}.
_ENTITY = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")
_LANG_DIR = re.compile(r"^[a-z]{2,3}$")
_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class Example:
    """One training message and the intent it expresses."""

    text: str
    intent: str
    lang: str | None = None  # language code from the directory name intents/<lang>/...


def training_files(path: Path) -> list[Path]:
    """The Rasa NLU files under `path` (or `path` itself), sorted so that loading is reproducible."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path}: no such file or directory")
    found = (p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    return sorted(p for p in found if _NLU_KEY.search(p.read_text(encoding="utf-8", errors="replace")))


def load_examples(path: Path) -> list[Example]:
    """Examples from a Rasa NLU YAML file or every NLU file below a directory.

    Raises ValueError naming the file (and line when known) so an admin can fix a broken file.
    """
    return [example for file in training_files(path) for example in _load_file(file)]


def training_fingerprint(path: Path) -> str:
    """Hash of the training files' relative paths and bytes: it changes exactly when retraining is needed."""
    digest = hashlib.sha256()
    root = path if path.is_dir() else path.parent
    for file in training_files(path):
        relative = file.relative_to(root).as_posix().encode("utf-8")
        content = file.read_bytes()
        digest.update(len(relative).to_bytes(8, "big") + relative)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def _language_of(file: Path) -> str | None:
    name = file.parent.name.lower()
    return name if _LANG_DIR.match(name) else None


def _line_of(node: Any, key: str | int) -> int | None:
    """1-based line of a key or list index in a ruamel round-trip node, when ruamel recorded it."""
    try:
        if isinstance(key, int):
            return int(node.lc.item(key)[0]) + 1
        return int(node.lc.value(key)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _error(file: Path, line: int | None, message: str) -> ValueError:
    where = f"{file}:{line}" if line is not None else str(file)
    return ValueError(f"{where}: {message}")


def _load_file(file: Path) -> list[Example]:
    try:
        document = YAML(typ="rt").load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise _error(file, None, f"not UTF-8 text ({exc.reason})") from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise _error(file, line, f"invalid YAML: {exc.problem or exc.context}") from exc
    except YAMLError as exc:
        raise _error(file, None, f"invalid YAML: {exc}") from exc
    if not isinstance(document, dict) or "nlu" not in document:
        raise _error(file, None, "expected a mapping with an `nlu:` list")
    items = document["nlu"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise _error(file, _line_of(document, "nlu"), "`nlu:` must be a list of `- intent:` items")
    lang = _language_of(file)
    examples: list[Example] = []
    for index, item in enumerate(items):
        line = _line_of(items, index)
        if not isinstance(item, dict):
            raise _error(file, line, "each `nlu:` item must be a mapping such as `- intent: greet`")
        if "intent" not in item:
            continue  # synonyms, regexes and lookup tables are Rasa-only
        intent = item["intent"]
        if not isinstance(intent, str) or not intent.strip():
            raise _error(file, line, "`intent:` must be a non-empty name")
        block = item.get("examples")
        if not isinstance(block, str):
            raise _error(file, line, f"intent {intent}: `examples: |` must be a block of `- text` lines")
        first_line = _line_of(item, "examples")
        block_start = None if first_line is None else first_line + 1
        examples.extend(
            Example(text=text, intent=intent.strip(), lang=lang)
            for text in _example_lines(file, block, block_start)
        )
    return examples


def _example_lines(file: Path, block: str, first_line: int | None) -> list[str]:
    """The `- text` lines of an `examples: |` block, entity annotations removed."""
    lines: list[str] = []
    for offset, raw in enumerate(block.splitlines()):
        stripped = raw.strip()
        if not stripped:
            continue
        line = None if first_line is None else first_line + offset
        if not stripped.startswith("-"):
            raise _error(file, line, f"example must start with '- ': {stripped[:60]!r}")
        text = _ENTITY.sub(r"\1", stripped[1:]).strip()
        if not text:
            raise _error(file, line, "empty example")
        lines.append(text)
    return lines
