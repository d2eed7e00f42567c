"""Wiring: build the engine and its parts from the configuration."""

from __future__ import annotations

from collections.abc import Callable

from bot.admin.journal import Journal
from bot.admin.store import admin_store_for
from bot.config import Config
from bot.content import AnswerBook
from bot.engine import ConversationEngine
from bot.events import EventBus
from bot.i18n import Catalogs
from bot.privacy import pseudonym_secret
from bot.services import ServiceGuide
from bot.storage import MemoryStorage, Storage
from nlu.understanding import NLUBackend


def build_nlu(config: Config, *, progress: Callable[[str, float], None] | None = None) -> NLUBackend:
    """The configured NLU backend: the embedded model (default) or a Rasa server."""
    if config.nlu.backend == "rasa":
        from nlu.rasa_client import RasaNLU

        return RasaNLU.from_config(config)
    from nlu.embedded import EmbeddedNLU

    return EmbeddedNLU.from_files(config.intents_dir, config.nlu.model_dir, progress=progress)


def build_storage(config: Config) -> Storage:
    """Redis when ``storage.url`` / ``GUICHET_REDIS_URL`` is set, else in memory."""
    retention = config.privacy.retention_days * 24 * 3600
    if config.storage.url:
        from bot.storage.redis import RedisStorage

        return RedisStorage.from_url(
            config.storage.url,
            retention_seconds=retention,
            lease_seconds=config.storage.lock_lease_seconds,
            prefix=config.storage.prefix,
        )
    return MemoryStorage(retention)


def build_engine(
    config: Config,
    *,
    nlu: NLUBackend | None = None,
    storage: Storage | None = None,
    events: EventBus | None = None,
    progress: Callable[[str, float], None] | None = None,
    journal: Journal | None = None,
) -> ConversationEngine:
    catalogs = Catalogs(config.languages.content)
    answers = AnswerBook.from_config(config, catalogs)
    journal = journal or build_journal(config)
    engine = ConversationEngine(
        config=config,
        nlu=nlu or build_nlu(config, progress=progress),
        answers=answers,
        catalogs=catalogs,
        storage=storage or build_storage(config),
        secret=pseudonym_secret(),
        events=events,
        services=ServiceGuide.from_config(config, answers, catalogs),
        journal=journal,
    )
    engine.events.subscribe(journal.on_event)  # /forget also clears the user's admin records
    return engine


def build_journal(config: Config) -> Journal:
    """The engine's notes for admins (inbox, audit log, ratings), kept where conversations are."""
    retention = config.privacy.retention_days * 24 * 3600
    store = admin_store_for(config.storage.url, retention, config.storage.prefix)
    return Journal(store, config.feedback)
