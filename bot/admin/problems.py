"""What ``guichet content check`` finds: one problem per mistake, with its file and line."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]
# "path:line: message" as nlu.data and the services loader write their errors.
_LOCATED = re.compile(r"^(?P<path>[^\n:]+?):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One mistake. Errors stop a reload (the bot would break or mislead); warnings do not."""

    severity: Severity
    code: str  # short stable id for machines, e.g. "unknown-intent"
    path: str  # as shown to the admin (relative to the project when possible)
    line: int | None
    message: str  # plain words, for someone who is not a programmer

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class Report:
    """Every problem found, in file order."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, severity: Severity, code: str, path: Path | str, line: int | None, message: str) -> None:
        self.problems.append(Problem(severity, code, display_path(path), line, message))

    def error(self, code: str, path: Path | str, line: int | None, message: str) -> None:
        self.add("error", code, path, line, message)

    def warning(self, code: str, path: Path | str, line: int | None, message: str) -> None:
        self.add("warning", code, path, line, message)

    def located(self, code: str, text: str, default_path: Path | str) -> None:
        """Errors from loaders that write ``path:line: message`` lines (one problem per line)."""
        for part in text.splitlines() or [text]:
            match = _LOCATED.match(part)
            if match:
                self.error(code, match["path"], int(match["line"]), match["message"])
            elif part.strip():
                self.error(code, default_path, None, part.removeprefix(f"{default_path}: "))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def clean(self) -> bool:
        return not self.problems

    def sorted(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: (p.path, p.line or 0, p.severity, p.message))

    def as_json(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [asdict(p) for p in self.sorted()],
        }

    def summary(self) -> str:
        if self.clean:
            return "No problems found."
        return f"{_count(len(self.errors), 'error')} and {_count(len(self.warnings), 'warning')}."

    def as_text(self) -> str:
        return "\n".join([*(str(p) for p in self.sorted()), self.summary()])


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def display_path(path: Path | str) -> str:
    """The path relative to the current directory when it is below it (shorter to read)."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return candidate.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return candidate.as_posix()
    return candidate.as_posix()
