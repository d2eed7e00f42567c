"""Read ``responses/services/*.yml``; every mistake is reported with its file and line."""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bot.services.model import Service, ServiceFile


class ServicesError(ValueError):
    """A services file is invalid; the message reads ``path:line: where: what``."""


def _line_of(node: Any, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the deepest part of ``loc`` found in the round-trip YAML ``node``."""
    line: int | None = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedMap):
            match = next((k for k in node if str(k) == str(part)), None)
            if match is None:
                break
            line = node.lc.key(match)[0] + 1
            node = node[match]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _where(raw: Any, loc: Sequence[int | str]) -> str:
    """``services[2] (night-shelter).hours.monday`` for an error location."""
    parts: list[str] = []
    for index, part in enumerate(loc):
        if not (isinstance(part, int) and parts):
            parts.append(str(part))
            continue
        parts[-1] += f"[{part}]"
        service = raw["services"][part] if loc[:index] == ("services",) else None
        if isinstance(service, CommentedMap) and isinstance(service.get("id"), str):
            parts[-1] += f" ({service['id']})"
    return ".".join(parts) or "file"


def _validation_errors(path: Path, raw: Any, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        line = _line_of(raw, loc)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{path}:{line or 1}: {_where(raw, loc)}: {message}")
    return "\n".join(lines)


def load_services_file(
    path: Path, *, topics: Collection[str] | None = None, languages: Collection[str] | None = None
) -> list[Service]:
    """The services of one file; ``topics`` and ``languages`` are the known ids, when checked."""
    return [service for service, _ in _read(path, topics, languages)]


def _read(
    path: Path, topics: Collection[str] | None, languages: Collection[str] | None
) -> tuple[tuple[Service, int], ...]:
    """The services of one file, each with the line it starts on.

    Parsing YAML with line numbers is slow (about 0.1 s for a 15 kB file), so an unchanged file
    is read once per process; editing it (a new modification time or size) reads it again.
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise ServicesError(f"{path}:1: cannot read the file: {exc}") from exc
    known = (
        tuple(sorted(topics)) if topics is not None else None,
        tuple(languages) if languages is not None else None,
    )
    return _read_unchanged(path, (stat.st_mtime_ns, stat.st_size), *known)


@functools.lru_cache(maxsize=256)
def _read_unchanged(
    path: Path,
    stamp: tuple[int, int],
    topics: tuple[str, ...] | None,
    languages: tuple[str, ...] | None,
) -> tuple[tuple[Service, int], ...]:
    try:
        raw = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context
        if exc.context and exc.context_mark and exc.problem and exc.context_mark.line + 1 != line:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise ServicesError(f"{path}:{line}: not valid YAML: {problem}") from exc
    except YAMLError as exc:
        raise ServicesError(f"{path}:1: not valid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ServicesError(f"{path}:1: cannot read the file: {exc}") from exc
    context = {"topics": topics, "languages": languages}
    try:
        services = ServiceFile.model_validate(raw, context=context).services
    except ValidationError as exc:
        raise ServicesError(_validation_errors(path, raw, exc)) from exc
    return tuple((service, _line_of(raw, ("services", index)) or 1) for index, service in enumerate(services))


def load_services(
    directory: Path, *, topics: Collection[str] | None = None, languages: Collection[str] | None = None
) -> list[Service]:
    """Every service of every ``*.yml`` in ``directory`` (none if it does not exist), ids unique."""
    services: list[Service] = []
    seen: dict[str, str] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yml")):
        try:
            found = _read(path, topics, languages)
        except ServicesError as exc:
            problems.append(str(exc))
            continue
        for service, line in found:
            if service.id in seen:
                problems.append(f"{path}:{line}: id {service.id!r} is already used at {seen[service.id]}")
                continue
            seen[service.id] = f"{path}:{line}"
            services.append(service)
    if problems:
        raise ServicesError("\n".join(problems))
    return services
