"""Live reload: new content is checked, retrained in the background and switched to atomically, under
traffic; invalid content is refused and the old keeps answering; workers on Redis follow each other.

Every test works on a temporary copy of intents/, responses/ and config.yml, never on the repo's files.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from starlette.routing import BaseRoute

from bot.admin.console import AdminConsole
from bot.admin.reload import VERSION_KEY, ContentReloader
from bot.admin.teach import append_example
from bot.admin.version import content_version
from bot.app import build_engine
from bot.config import Config, load_config
from bot.engine import ConversationEngine
from bot.messages import IncomingMessage, Kind, OutgoingMessage
from bot.policy import Action, decide
from bot.runtime import Runtime
from bot.staff.console import StaffConsole
from bot.storage import MemoryStorage
from bot.web.app import create_app
from nlu.embedded import EmbeddedNLU
from tests.conftest import OPEN_TIME, ROOT
from tests.test_staff_console import accounts_with_staff, console_config, serving

HOUSING_FR = "je cherche un appartement a louer"
# Ways to ask about housing that the shipped model may not answer with the housing answer yet; the
# traffic test teaches the first one it misses (the model changes as the content grows).
HOUSING_CANDIDATES = (
    "kas keegi annab toa rendile",
    "ou trouver une chambre chez l'habitant pour quelques mois",
    "mon bail se termine le mois prochain, je fais quoi",
    "heeft iemand een kamer voor mij",
    "kira icin ev ariyorum",
)
MARKER = "MISE À JOUR."


def first_missed(nlu: EmbeddedNLU, config: Config, intent: str, candidates: Sequence[str]) -> str:
    """The first candidate that the model is unsure about (it hands off or asks which topic)."""
    for text in candidates:
        decision = decide(nlu.understand_now(text), config.nlu.thresholds)
        if not decision.emergency and decision.action is not Action.ANSWER:
            return text
    pytest.fail(f"the model answers every candidate with {intent} already: add a harder one")


def content_copy(
    tmp_path: Path, *, watch_seconds: float = 0.0, model_dir: Path | None = None, redis_url: str | None = None
) -> Path:
    """A copy of the shipped content and a config.yml pointing at it; the config's path."""
    for folder in ("intents", "responses"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    config = yaml.load((ROOT / "config.yml").read_text(encoding="utf-8"))
    config["content"]["watch_seconds"] = watch_seconds
    if model_dir is not None:
        config["nlu"]["model_dir"] = str(model_dir)
    if redis_url is not None:
        config["storage"]["url"] = redis_url
    config["intents_dir"] = str(tmp_path / "intents")
    config["responses_dir"] = str(tmp_path / "responses")
    path = tmp_path / "config.yml"
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(config, handle)
    return path


def mark_answer(responses: Path, intent: str, marker: str = MARKER) -> None:
    """Start every language's answer for ``intent`` with ``marker`` (an admin rewording it)."""
    path = responses / f"{intent}.yml"
    text = re.sub(r"(text: \|\n)(\s+)", rf"\1\2{marker} ", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")


class TimedChannel:
    """Records every reply with the time it was sent, as the user's phone would receive it."""

    name = "test"

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[float, OutgoingMessage]]] = {}

    async def send(self, address: str, messages: Sequence[OutgoingMessage]) -> None:
        now = time.monotonic()
        self.sent.setdefault(address, []).extend((now, m) for m in messages)

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def engine_for(config: Config, nlu: EmbeddedNLU | None = None) -> ConversationEngine:
    engine = build_engine(config, nlu=nlu, storage=MemoryStorage(3600))
    engine._clock = lambda: OPEN_TIME
    return engine


def message(user: str, text: str, number: int) -> IncomingMessage:
    return IncomingMessage(
        channel="test", user_id=user, kind=Kind.TEXT, text=text, message_id=f"m{number}", language_hint="fr"
    )


@pytest.mark.timeout(1800)  # retraining on the whole content, on a loaded 2-core machine
async def test_reload_under_traffic_switches_answers_and_refuses_invalid_content(
    embedded_nlu: EmbeddedNLU, tmp_path: Path
) -> None:
    # Models trained here go to a fresh folder: the reload really retrains, it does not hit a cache.
    config_path = content_copy(tmp_path, model_dir=tmp_path / "models")
    config = load_config(config_path)
    engine = engine_for(config, embedded_nlu)  # embedded_nlu was trained on identical intents
    runtime = Runtime(config, engine)
    channel = TimedChannel()
    runtime.add_channel(channel)
    reloader = ContentReloader(engine, config_path)
    old_housing = engine.curated("housing_search", "fr", OPEN_TIME).text
    housing_answers = {engine.curated("housing_search", lang).text for lang in config.languages.content}
    new_example = first_missed(embedded_nlu, config, "housing_search", HOUSING_CANDIDATES)

    sent: list[tuple[str, str, float]] = []  # (user, text, when accepted)
    stop = asyncio.Event()

    async def traffic() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            text = HOUSING_FR if number % 2 else new_example
            user = f"user{number}"
            assert await runtime.dispatcher.accept(message(user, text, number))
            sent.append((user, text, time.monotonic()))
            await asyncio.sleep(0.02)

    def first_reply(user: str) -> tuple[float, str] | None:
        replies = channel.sent.get(user)
        return (replies[0][0], replies[0][1].text) if replies else None

    async def replies_for(count: int) -> None:
        target = len(sent) + count
        while len([u for u, _, _ in sent if first_reply(u)]) < target:
            await asyncio.sleep(0.05)

    await runtime.start()
    sender = asyncio.create_task(traffic())
    try:
        await asyncio.wait_for(replies_for(10), 600)

        # An admin rewords the housing answer and teaches the bot a new way to ask.
        mark_answer(tmp_path / "responses", "housing_search")
        append_example(tmp_path / "intents", "fr", "housing_search", new_example)
        started = time.monotonic()
        outcome = await reloader.reload()
        finished = time.monotonic()
        assert outcome.status == "reloaded", outcome
        assert reloader.version == content_version(reloader.paths) == outcome.version
        await asyncio.wait_for(replies_for(20), 600)

        # Invalid content is refused with the check's report; the new valid content keeps answering.
        answers_before = engine.answers
        broken = tmp_path / "responses" / "housing_search.yml"
        valid_text = broken.read_text(encoding="utf-8")
        broken.write_text(valid_text.replace("{city}", "{citty}", 1), encoding="utf-8")
        refused = await reloader.reload()
        assert refused.status == "refused" and refused.version == outcome.version
        assert [p.code for p in refused.problems] == ["unknown-placeholder"]
        assert "housing_search.yml" in refused.problems[0].path and "{citty}" in refused.problems[0].message
        assert engine.answers is answers_before
        await asyncio.wait_for(replies_for(20), 600)
    finally:
        stop.set()
        await sender
        await runtime.dispatcher.idle()
        await runtime.stop()

    # Every message got an answer.
    unanswered = [(u, t) for u, t, _ in sent if first_reply(u) is None]
    assert not unanswered and len(sent) >= 50

    new_housing = engine.curated("housing_search", "fr", OPEN_TIME).text
    assert new_housing.startswith(MARKER) and not old_housing.startswith(MARKER)
    before = [(t, first_reply(u)) for u, t, at in sent if at < started]
    after = [(t, first_reply(u)) for u, t, at in sent if at > finished]
    assert before and after
    for text, reply in before:
        assert reply is not None
        if text == HOUSING_FR:
            assert reply[1] == old_housing
        else:  # not understood as housing yet
            assert reply[1] not in housing_answers and not reply[1].startswith(MARKER), reply
    for text, reply in after:
        assert reply is not None
        # The reworded answer (in the user's language), and the new example understood as housing.
        assert reply[1] == new_housing if text == HOUSING_FR else reply[1].startswith(MARKER), (text, reply)

    # The event loop kept answering while the model retrained in its thread.
    during = [u for u, _, at in sent if started < at < finished and (r := first_reply(u)) and r[0] < finished]
    latencies = [r[0] - at for u, _, at in sent if (r := first_reply(u))]
    print(
        f"\nreload took {finished - started:.1f} s; {len(during)} messages answered meanwhile; latency "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms",
        file=sys.stderr,
    )
    assert during, "no message was answered while the model retrained"


@pytest.mark.timeout(1800)
async def test_the_file_watcher_reloads_edited_answers_and_refuses_broken_files(
    embedded_nlu: EmbeddedNLU, tmp_path: Path, config: Config
) -> None:
    # The intents are unchanged, so the model comes from the cache: only answers switch.
    config_path = content_copy(tmp_path, watch_seconds=0.2, model_dir=config.nlu.model_dir)
    engine = engine_for(load_config(config_path), embedded_nlu)
    reloader = ContentReloader(engine, config_path)
    first = reloader.version
    await reloader.start()
    try:
        mark_answer(tmp_path / "responses", "guichet_info", "NEW HOURS.")
        await wait_until(lambda: engine.curated("guichet_info", "en").text.startswith("NEW HOURS."))
        second = reloader.version
        assert second != first and second == content_version(reloader.paths)

        broken = tmp_path / "responses" / "guichet_info.yml"
        valid = broken.read_text(encoding="utf-8")
        broken.write_text(valid.replace("answers:", "answers: [", 1), encoding="utf-8")
        await wait_until(lambda: reloader.last is not None and reloader.last.status == "refused")
        assert reloader.last is not None and reloader.last.problems[0].code == "yaml"
        assert reloader.version == second
        assert engine.curated("guichet_info", "en").text.startswith("NEW HOURS.")

        broken.write_text(valid.replace("NEW HOURS.", "FIXED."), encoding="utf-8")
        await wait_until(lambda: engine.curated("guichet_info", "en").text.startswith("FIXED."))
        assert reloader.last is not None and reloader.last.status == "reloaded"
    finally:
        await reloader.stop()


async def wait_until(condition: object, timeout: float = 900.0) -> None:
    """Poll ``condition`` (generous: reloads check and load the whole content, on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.redis
@pytest.mark.timeout(1800)
async def test_workers_on_redis_switch_to_the_same_version(
    embedded_nlu: EmbeddedNLU, tmp_path: Path, config: Config, redis_server: str
) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_server, decode_responses=True)
    key = f"{config.storage.prefix}:{VERSION_KEY}"
    await client.delete(key)
    config_path = content_copy(tmp_path, model_dir=config.nlu.model_dir)
    # Two workers, neither watching files: the second learns of the new version through Redis only.
    workers = [engine_for(load_config(config_path), embedded_nlu) for _ in range(2)]
    first, second = (ContentReloader(w, config_path, redis_url=redis_server) for w in workers)
    await first.start()
    await second.start()
    try:
        mark_answer(tmp_path / "responses", "bank_account", "BANKS CHANGED.")
        outcome = await first.reload()
        assert outcome.status == "reloaded"
        assert await client.get(key) == outcome.version
        await wait_until(lambda: second.version == outcome.version)
        assert workers[1].curated("bank_account", "uk").text.startswith("BANKS CHANGED.")
        assert first.version == second.version == content_version(second.paths)
    finally:
        await first.stop()
        await second.stop()
        await client.delete(key)
        await client.aclose()


@pytest.mark.timeout(1800)
async def test_guichet_content_reload_talks_to_the_running_server(
    embedded_nlu: EmbeddedNLU, tmp_path: Path, config: Config
) -> None:
    config_path = content_copy(tmp_path, model_dir=config.nlu.model_dir)
    served = load_config(config_path)
    served.content.admin_token = "a-long-admin-token-for-tests"
    engine = engine_for(served, embedded_nlu)
    runtime = Runtime(served, engine)
    staff = StaffConsole(
        runtime, console_config(served, tmp_path), accounts=await accounts_with_staff(tmp_path)
    )
    admin = AdminConsole(runtime, served, config_path, staff)

    async def guichet(*args: str, token: str | None) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if k != "GUICHET_ADMIN_TOKEN"}
        if token:
            env["GUICHET_ADMIN_TOKEN"] = token
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "content", "reload", *args,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 900)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async with serving(create_app(runtime, staff=staff, admin=admin)) as url:
        token = served.content.admin_token
        code, out, _ = await guichet("--url", url, token=token)
        assert code == 0 and "Already serving content version" in out

        mark_answer(tmp_path / "responses", "legal_aid", "LAWYERS.")
        code, out, _ = await guichet("--url", url, token=token)
        assert code == 0 and "Now serving content version" in out
        assert engine.curated("legal_aid", "ar").text.startswith("LAWYERS.")

        (tmp_path / "responses" / "legal_aid.yml").write_text(
            "intent: legal_aid\n  title: [", encoding="utf-8"
        )
        code, out, _ = await guichet("--url", url, token=token)
        assert code == 1 and "not loaded" in out and "legal_aid.yml:2: error" in out
        assert engine.curated("legal_aid", "ar").text.startswith("LAWYERS.")

        code, _, err = await guichet("--url", url, token="not the token")
        assert code == 2 and "Wrong or missing admin token" in err
        code, _, err = await guichet("--url", url, token=None)
        assert code == 2 and "GUICHET_ADMIN_TOKEN" in err
