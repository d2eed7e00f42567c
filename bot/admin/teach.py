"""Teaching the bot a missed question: one new line in ``intents/<lang>/<intent>.yml``, then a reload.

The file is edited with ruamel.yaml round-trip, so its comments, order and quotes stay as the admins
wrote them, and the change is a one-line addition anyone can review (``git diff``). If the new
content is refused by the check, the file is put back as it was.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from bot.admin.inbox import Inbox
from bot.admin.problems import Problem
from bot.admin.reload import ContentReloader
from bot.admin.version import content_version
from nlu.understanding import OUT_OF_SCOPE

MAX_EXAMPLE_CHARS = 500
_LANG = re.compile(r"^[a-z]{2,3}$")
_INTENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class TeachError(ValueError):
    """The example cannot be added; the message says why, for the admin."""


def clean_example(text: str) -> str:
    """One line of text, as it will stand in the file."""
    line = " ".join(unicodedata.normalize("NFC", text).split())
    if not line:
        raise TeachError("Write the question first.")
    if len(line) > MAX_EXAMPLE_CHARS:
        raise TeachError(f"An example has at most {MAX_EXAMPLE_CHARS} characters; keep the question itself.")
    return line


def _yaml() -> YAML:
    """Round-trip YAML writing the files as they are written in guichet (checked on every shipped file)."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 100_000  # never fold a long example
    return yaml


def append_example(intents_dir: Path, lang: str, intent: str, text: str) -> Path:
    """Add ``- text`` to ``intent``'s examples in ``intents/<lang>/<intent>.yml`` (created if needed).

    Raises :class:`TeachError` when the example is already there or the file cannot be edited cleanly.
    """
    if not _LANG.match(lang) or not _INTENT.match(intent):
        raise TeachError("Choose a topic and a language from the lists.")
    line = clean_example(text)
    path = intents_dir / lang / f"{intent}.yml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# intents/{lang}/{intent}.yml\n"
        path.write_text(
            f'{header}version: "3.1"\nnlu:\n- intent: {intent}\n  examples: |\n    - {line}\n', "utf-8"
        )
        return path
    before = path.read_text(encoding="utf-8")
    after = _with_example(before, intent, line, path)
    added = [d for d in difflib.ndiff(before.splitlines(), after.splitlines()) if d[:1] in "+-"]
    if len(added) != 1 or not added[0].startswith("+ "):
        raise TeachError(
            f"{path.name} could not be changed by adding a single line (its layout is unusual); "
            "add the example by hand."
        )
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(after, encoding="utf-8")
    temp.replace(path)
    return path


def _with_example(source: str, intent: str, line: str, path: Path) -> str:
    yaml = _yaml()
    try:
        document = yaml.load(source)
    except YAMLError as exc:
        raise TeachError(f"{path.name} is not valid YAML; fix it first ({exc}).") from exc
    items = document.get("nlu") if isinstance(document, CommentedMap) else None
    if not isinstance(items, CommentedSeq):
        raise TeachError(f"{path.name} has no `nlu:` list; fix it first.")
    mine = [i for i in items if isinstance(i, CommentedMap) and i.get("intent") == intent]
    if not mine or not isinstance(mine[-1].get("examples"), str):
        raise TeachError(
            f"{path.name} has no `- intent: {intent}` with `examples: |`; add the example by hand."
        )
    item = mine[-1]
    block = str(item["examples"])
    written = {" ".join(e.strip().removeprefix("-").split()).casefold() for e in block.splitlines()}
    if line.casefold() in written:
        raise TeachError(f"“{line}” is already an example of {intent} in {path.name}.")
    item["examples"] = LiteralScalarString(block + ("" if block.endswith("\n") else "\n") + f"- {line}\n")
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


@dataclass
class Lesson:
    """One question taught to the bot, and how it went."""

    text: str
    intent: str
    lang: str
    state: str = "learning"  # learning, learned, refused, failed
    message: str = ""
    problems: list[Problem] = field(default_factory=list)


class Teacher:
    """Assigns inbox questions to topics: append, check and retrain, then clear them from the inbox."""

    def __init__(self, inbox: Inbox, reloader: ContentReloader) -> None:
        self.inbox = inbox
        self.reloader = reloader
        self._lock = asyncio.Lock()

    def topics(self) -> list[str]:
        """The topics a question can be taught as: every answered one, and out of scope."""
        return [*sorted(self.reloader.engine.answers.intents), OUT_OF_SCOPE]

    async def teach(self, lesson: Lesson, ids: list[str]) -> Lesson:
        """Teach ``lesson.text`` as an example of its intent; the questions ``ids`` leave the inbox.

        ``lesson`` is updated as it goes (the console shows it while the model retrains).
        """
        engine = self.reloader.engine
        if lesson.intent not in self.topics() or lesson.lang not in engine.config.languages.content:
            lesson.state, lesson.message = "failed", "Choose a topic and a language from the lists."
            return lesson
        async with self._lock:
            intents_dir = engine.config.intents_dir
            path = intents_dir / lesson.lang / f"{lesson.intent}.yml"
            before = path.read_bytes() if path.exists() else None
            try:
                await asyncio.to_thread(append_example, intents_dir, lesson.lang, lesson.intent, lesson.text)
            except TeachError as exc:
                lesson.state, lesson.message = "failed", str(exc)
                return lesson
            outcome = await self.reloader.reload()
            on_disk = await asyncio.to_thread(content_version, self.reloader.paths)
            if outcome.status in {"reloaded", "unchanged"} and self.reloader.version == on_disk:
                await self.inbox.remove(ids)
                lesson.state = "learned"
                lesson.message = (
                    f"Added to {lesson.lang}/{lesson.intent}.yml and learned: the bot now gives the "
                    f"{lesson.intent} answer to this question (content version {self.reloader.version})."
                )
                return lesson
            if before is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(before)
            lesson.state = "refused" if outcome.status == "refused" else "failed"
            lesson.message = f"Not added: {outcome.message} The file was put back as it was."
            lesson.problems = outcome.problems
            return lesson
