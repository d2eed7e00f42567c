"""The content version: a hash of ``intents/``, ``responses/`` and ``config.yml``.

Every worker that serves the same files computes the same version, so workers can tell whether
they switched to the same content, and the audit log can say which content an answer came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# Editor swap and backup files are not content.
_IGNORED_SUFFIXES = (".swp", ".swx", ".tmp", "~")


@dataclass(frozen=True)
class ContentPaths:
    config: Path
    intents: Path
    responses: Path

    def files(self) -> list[tuple[str, Path]]:
        """Every content file with the name it is hashed under, in a stable order."""
        found = [("config.yml", self.config)] if self.config.is_file() else []
        for label, root in (("intents", self.intents), ("responses", self.responses)):
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root)
                if path.is_file() and not _ignored(relative):
                    found.append((f"{label}/{relative.as_posix()}", path))
        return found


def _ignored(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts) or relative.name.endswith(_IGNORED_SUFFIXES)


def content_version(paths: ContentPaths) -> str:
    """A short hash of every content file's name and bytes."""
    digest = hashlib.sha256()
    for name, path in paths.files():
        try:
            content = path.read_bytes()
        except OSError:  # deleted while we read: the next look will see the new state
            continue
        encoded = name.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()[:12]


def content_stamp(paths: ContentPaths) -> tuple[tuple[str, int, int], ...]:
    """Names, modification times and sizes: cheap to compare every few seconds."""
    stamp = []
    for name, path in paths.files():
        try:
            info = path.stat()
        except OSError:
            continue
        stamp.append((name, info.st_mtime_ns, info.st_size))
    return tuple(stamp)
