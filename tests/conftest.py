"""Shared fixtures: the shipped configuration and a real engine (embedded NLU, in-memory storage)."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import build_engine
from bot.config import Config, load_config
from bot.engine import ConversationEngine
from bot.storage import MemoryStorage
from nlu.embedded import EmbeddedNLU

ROOT = Path(__file__).resolve().parent.parent
CONTENT_LANGUAGES = ("fr", "en", "nl", "ar", "uk", "ru", "et")
INTENTS = [
    "greet",
    "goodbye",
    "thanks",
    "help",
    "human_handoff",
    "change_language",
    "housing_search",
    "emergency_shelter",
    "language_courses",
    "job_search",
    "work_rights",
    "diploma_recognition",
    "business_creation",
    "vocational_training",
    "health_care",
    "mental_health",
    "school_enrollment",
    "residence_permit",
    "social_benefits",
    "bank_account",
    "legal_aid",
    "emergency",
    "guichet_info",
]
# A Wednesday at 11:00 in Tallinn: the demo guichet is open.
OPEN_TIME = dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC)
# A Saturday evening: closed until Monday 9:00.
CLOSED_TIME = dt.datetime(2026, 11, 21, 18, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(ROOT / "config.yml")


@pytest.fixture(scope="session")
def embedded_nlu(config: Config) -> EmbeddedNLU:
    return EmbeddedNLU.from_files(config.intents_dir, config.nlu.model_dir)


@pytest.fixture
def engine(config: Config, embedded_nlu: EmbeddedNLU) -> ConversationEngine:
    engine = build_engine(config, nlu=embedded_nlu, storage=MemoryStorage(3600))
    engine._clock = lambda: OPEN_TIME
    return engine


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port for the whole session; its URL (each test uses its own keys)."""
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (make test installs it)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis-session")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)
