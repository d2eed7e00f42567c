"""Live reload: new content is checked, the NLU retrained in the background, then switched atomically.

A reload starts when the files change (looked at every ``content.watch_seconds``), on
``guichet content reload`` (``POST /admin/reload``), or from the admin console. Content with
errors (see :mod:`bot.admin.check`) is refused with the check's report, and the old content keeps
serving. Training runs in a thread, so the event loop keeps answering meanwhile. The switch
replaces the engine's answers, NLU, services and settings in one step of the event loop: a
message is handled entirely with the old content or entirely with the new one, and
conversations in progress go on.

With several workers on Redis, a worker that switched publishes the version there; the others
see it and reload too, so all serve the same version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.admin.check import check_content
from bot.admin.problems import Problem
from bot.admin.version import ContentPaths, content_stamp, content_version
from bot.config import Config, load_config
from bot.content import AnswerBook
from bot.engine import ConversationEngine
from bot.i18n import Catalogs
from bot.services import ServiceGuide
from nlu.understanding import NLUBackend

log = logging.getLogger(__name__)

# The version the workers should serve, under the storage prefix (storage.prefix in config.yml).
VERSION_KEY = "content:version"
# Settings read once at start: changing them needs a restart.
_RESTART_SECTIONS = ("storage", "whatsapp", "telegram", "handoff")
# With live reload off, workers still look at the version published in Redis this often.
_SYNC_SECONDS = 3.0
# After a change is seen, the files must stay the same this long (an editor or git still writing).
_SETTLE_SECONDS = 0.5
# A reload starts over when the files changed while it trained, at most this many times.
_ATTEMPTS = 3

Status = Literal["reloaded", "unchanged", "refused", "failed"]


@dataclass(frozen=True)
class ReloadOutcome:
    status: Status
    version: str  # the version serving now
    message: str
    problems: list[Problem] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "version": self.version,
            "message": self.message,
            "problems": [asdict(p) for p in self.problems],
        }


@dataclass(frozen=True)
class _Content:
    config: Config
    catalogs: Catalogs
    answers: AnswerBook
    services: ServiceGuide
    nlu: NLUBackend


class ContentReloader:
    """Keeps ``engine`` serving the newest valid content of ``config_path`` and its folders."""

    def __init__(
        self, engine: ConversationEngine, config_path: Path, *, redis_url: str | None = None
    ) -> None:
        self.engine = engine
        self.config_path = config_path
        self.paths = self._paths(engine.config)
        self.version = content_version(self.paths)  # the engine was built from the files as they are
        self.last: ReloadOutcome | None = None
        self.reloading = False
        self._stamp = content_stamp(self.paths)
        self._seen_published: str | None = None
        self._started_with = engine.config
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._redis: Any = None
        self._version_key = f"{engine.config.storage.prefix}:{VERSION_KEY}"
        if redis_url:
            from bot.storage.redis import connect

            self._redis = connect(redis_url)
        if engine.journal:
            engine.journal.version = self.version

    def _paths(self, config: Config) -> ContentPaths:
        return ContentPaths(self.config_path, config.intents_dir, config.responses_dir)

    # -- reloading ------------------------------------------------------------------------------

    async def reload(self) -> ReloadOutcome:
        """Check the files and switch to them; one reload at a time."""
        async with self._lock:
            self.reloading = True
            try:
                outcome = await self._reload()
            finally:
                self.reloading = False
            if outcome.status != "unchanged":
                self.last = outcome
            return outcome

    async def _reload(self) -> ReloadOutcome:
        for _ in range(_ATTEMPTS):
            version = await asyncio.to_thread(content_version, self.paths)
            if version == self.version:
                return ReloadOutcome("unchanged", self.version, f"Already serving content version {version}.")
            report = await asyncio.to_thread(check_content, self.config_path, model=False)
            if report.errors:
                log.warning("content version %s refused: %d errors", version, len(report.errors))
                return ReloadOutcome(
                    "refused",
                    self.version,
                    f"The new content has {len(report.errors)} error(s), so it was not loaded; the bot goes "
                    f"on with version {self.version}. Fix the problems below and save again.",
                    report.errors,
                )
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
                content = await asyncio.to_thread(self._build, config)
            except Exception as exc:
                log.exception("content version %s could not be loaded", version)
                return ReloadOutcome(
                    "failed", self.version, f"The new content could not be loaded ({exc}); nothing changed."
                )
            # Files saved again while the model trained were not checked: start over with them.
            if await asyncio.to_thread(content_version, self.paths) != version:
                log.info("content changed during the reload of version %s; starting over", version)
                continue
            self._switch(content, version)
            await self._publish(version)
            message = f"Now serving content version {version}."
            restart = self._restart_needed(config)
            if restart:
                message += f" Changes to {', '.join(restart)} in config.yml take effect at the next restart."
            log.info("switched to content version %s", version)
            return ReloadOutcome("reloaded", version, message, report.warnings)
        return ReloadOutcome(
            "failed", self.version, "The files kept changing during the reload; save them, then reload again."
        )

    def _build(self, config: Config) -> _Content:
        """Everything a message needs, built off the event loop (training takes a while)."""
        catalogs = Catalogs(config.languages.content)
        answers = AnswerBook.from_config(config, catalogs)
        services = ServiceGuide.from_config(config, answers, catalogs)
        nlu = self.engine.nlu
        if config.nlu.backend == "embedded":
            from nlu.embedded import EmbeddedNLU

            nlu = EmbeddedNLU.from_files(config.intents_dir, config.nlu.model_dir)
        return _Content(config, catalogs, answers, services, nlu)

    def _switch(self, content: _Content, version: str) -> None:
        """No await in here: messages see either all of the old content or all of the new."""
        engine = self.engine
        engine.config = content.config
        engine.catalogs = content.catalogs
        engine.answers = content.answers
        engine.services = content.services
        engine.nlu = content.nlu
        if engine.journal:
            engine.journal.version = version
            engine.journal.settings = content.config.feedback
        self.version = version
        self.paths = self._paths(content.config)

    def _restart_needed(self, config: Config) -> list[str]:
        return [
            section
            for section in _RESTART_SECTIONS
            if getattr(config, section).model_dump() != getattr(self._started_with, section).model_dump()
        ]

    # -- watching files and the other workers -----------------------------------------------------

    async def start(self) -> None:
        watch = self.engine.config.content.watch_seconds
        if watch > 0 or self._redis is not None:
            self._task = asyncio.get_running_loop().create_task(self._watch(watch or _SYNC_SECONDS))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()

    async def _watch(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                if await self._files_changed() or await self._other_worker_switched():
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching the content failed; trying again")

    async def _files_changed(self) -> bool:
        if self.engine.config.content.watch_seconds <= 0:
            return False
        stamp = await asyncio.to_thread(content_stamp, self.paths)
        if stamp == self._stamp:
            return False
        while True:  # wait until the files stop changing
            await asyncio.sleep(_SETTLE_SECONDS)
            settled = await asyncio.to_thread(content_stamp, self.paths)
            if settled == stamp:
                break
            stamp = settled
        self._stamp = stamp
        return True

    async def _other_worker_switched(self) -> bool:
        if self._redis is None:
            return False
        published = await self._redis.get(self._version_key)
        if not published or published in {self.version, self._seen_published}:
            return False
        self._seen_published = published
        return True

    async def _publish(self, version: str) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.set(self._version_key, version)
            self._seen_published = version
        except Exception:
            log.warning("could not publish content version %s to Redis", version)
