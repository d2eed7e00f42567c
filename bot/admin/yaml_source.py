"""Reading YAML with its line numbers (ruamel.yaml round-trip), so every problem can point at a line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bot.admin.problems import Report

_MISSING = object()


def load_with_lines(path: Path, report: Report) -> Any:
    """The document with line information; on a YAML error, the problem is reported and None returned.

    An empty file loads as None too, without a problem: callers say what was expected.
    """
    try:
        return YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "unreadable"
        report.error(
            "yaml",
            path,
            line,
            f"this is not valid YAML ({what}). Check the indentation and the quotes on this line "
            "and the line above it.",
        )
    except YAMLError as exc:
        report.error("yaml", path, None, f"this is not valid YAML ({exc}).")
    except UnicodeDecodeError:
        report.error("encoding", path, None, "this file is not saved as UTF-8 text; save it again as UTF-8.")
    except OSError as exc:
        report.error("unreadable", path, None, f"cannot read the file ({exc.strerror}).")
    return None


def line_of(node: Any, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the deepest part of ``loc`` (keys and list indexes) found in ``node``."""
    line: int | None = None
    for part in loc:
        if isinstance(node, CommentedMap):
            key = part if part in node else next((k for k in node if str(k) == str(part)), _MISSING)
            if key is _MISSING:
                break
            line = node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def value_line(node: Any, key: str) -> int | None:
    """The line where the value of ``key`` starts (for ``key: |`` blocks, the line of the ``|``)."""
    if isinstance(node, CommentedMap) and key in node:
        return int(node.lc.value(key)[0]) + 1
    return None
