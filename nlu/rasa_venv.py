"""A Python 3.10 virtualenv with Rasa 3.6, for the Rasa tests and the side-by-side bench.

Rasa 3.6 does not install on Python 3.11 (guichet's own Python), so it gets a virtualenv of its
own, created once from a Python 3.10 found on PATH or under pyenv, and reused while its marker
file says the install finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

RASA_REQUIREMENT = "rasa==3.6.*"
_READY_MARKER = ".guichet-rasa-ready"
# Rasa would otherwise ask about telemetry and send some; TensorFlow would fill the logs.
RASA_ENVIRONMENT = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore",
    "LOG_LEVEL": "WARNING",
}


class RasaUnavailable(RuntimeError):
    """Rasa cannot be set up here (no Python 3.10, or the install failed); the message says why."""


def find_python310() -> Path | None:
    """A working Python 3.10: ``python3.10`` on PATH, else the newest 3.10 under pyenv."""
    candidates: list[Path] = []
    if found := shutil.which("python3.10"):
        candidates.append(Path(found))
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = sorted((pyenv_root / "versions").glob("3.10*"), key=_version_key, reverse=True)
    candidates.extend(version / "bin" / "python3.10" for version in versions)
    for candidate in candidates:
        if _is_python310(candidate):
            return candidate
    return None


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def rasa_environment() -> dict[str, str]:
    """The environment Rasa commands run in."""
    return {**os.environ, **RASA_ENVIRONMENT}


def ensure_rasa_venv(venv: Path, *, output: IO[str] | None = None) -> Path:
    """The Python of ``venv``, after creating it and installing Rasa 3.6 there if not done yet.

    Several processes may ask at once (parallel test sessions): one installs, the others wait.
    Raises RasaUnavailable when no Python 3.10 exists or the install fails.
    """
    python = venv_python(venv)
    marker = venv / _READY_MARKER
    venv.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(venv.parent / f".{venv.name}.lock"):
        if (
            marker.is_file()
            and marker.read_text(encoding="utf-8").strip() == RASA_REQUIREMENT
            and python.exists()
        ):
            return python
        _install(venv, output or sys.stderr)
    return python


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if needed) across processes."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(venv: Path, sink: IO[str]) -> None:
    base = find_python310()
    if base is None:
        raise RasaUnavailable(
            "Rasa 3.6 needs Python 3.10, and none was found (neither `python3.10` on PATH nor "
            "~/.pyenv/versions/3.10.*). Install it, e.g. `pyenv install 3.10`."
        )
    print(
        f"installing {RASA_REQUIREMENT} into {venv} with {base} (about 3 minutes)...", file=sink, flush=True
    )
    shutil.rmtree(venv, ignore_errors=True)
    _run([str(base), "-m", "venv", str(venv)])
    _run([str(venv_python(venv)), "-m", "pip", "install", "--quiet", RASA_REQUIREMENT])
    (venv / _READY_MARKER).write_text(RASA_REQUIREMENT + "\n", encoding="utf-8")


def rasa_command(python: Path, *arguments: str) -> list[str]:
    """The command line of ``rasa <arguments>`` in the virtualenv of ``python``."""
    return [str(python.parent / "rasa"), *arguments]


def _run(command: Sequence[str]) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if result.returncode != 0:
        raise RasaUnavailable(
            f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stdout[-2000:]}"
        )


def _is_python310(python: Path) -> bool:
    try:
        result = subprocess.run(
            [str(python), "-c", "import sys, venv; print(sys.version_info[:2] == (3, 10))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == "True"


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in path.name.split("."))
