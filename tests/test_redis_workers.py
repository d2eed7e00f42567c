"""Two worker processes on one Redis behave as one bot: nothing lost, nothing answered twice.

Everything is real and separate, as in production: a ``redis-server`` with its append-only file
(tests/redis_server.py), two ``guichet serve`` processes sharing it, and Meta's Graph API stood in
for by tests/standins/graph_api.py, which posts signed webhooks to the workers and records the
answers they send. The exactly-once and ordering test runs again on a real 3-node Redis Cluster,
with workers that run the same engine, dispatcher and WhatsApp channel (tests/redis_worker.py).
Leases are short here (3 s), so a dead worker's messages are taken over within seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from bot.engine import ConversationEngine
from bot.privacy import pseudonym
from bot.storage.redis import RedisStorage
from tests.conftest import ROOT
from tests.redis_server import RedisClusterNodes, RedisServer, free_port
from tests.standins import GraphAPI, deliver_webhook, interactive_reply_payload, text_message_payload
from tests.standins.graph_api import new_wamid

# Each deployment starts two bot processes (model, content, services): slow on a busy machine.
pytestmark = [pytest.mark.redis, pytest.mark.timeout(900)]

SECRET = "redis-workers-test-secret"
VERIFY_TOKEN = "redis-workers-verify"
PREFIX = "guichet"
QUESTIONS = {
    "how do i find a job here": "job_search",
    "i need to see a doctor": "health_care",
    "how to open a bank account": "bank_account",
    "where can i learn estonian": "language_courses",
}
_numbers = itertools.count(1)
JSONDict = dict[str, Any]
Answered = Callable[[list[str]], list[str]]


def new_user() -> str:
    """A phone number never used before in this run."""
    return f"3725{os.getpid() % 1000:03d}{next(_numbers):04d}"


class Worker:
    """One bot process on its own port; its output goes to a log file shown when it fails."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.command = [*command, str(self.port)]
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/whatsapp"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"worker not ready:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.2)

    def kill(self) -> None:
        """Like a crash or an out-of-memory kill: no shutdown, no clean-up."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Deployment:
    """Redis, the workers sharing it, and the Graph API stand-in they answer through."""

    redis: RedisServer | RedisClusterNodes
    workers: list[Worker]
    graph: GraphAPI

    async def deliver(self, worker: Worker, payload: JSONDict) -> httpx.Response:
        return await deliver_webhook(worker.webhook, payload, self.graph.app_secret)

    def storage(self) -> RedisStorage:
        """A store on the workers' Redis, to look at what they keep."""
        return RedisStorage.from_url(self.redis.url, retention_seconds=3600, prefix=PREFIX)

    async def answers(self, user: str, count: int, timeout: float = 60) -> list[str]:
        await self.graph.wait_for(count, to=user, timeout=timeout)
        return self.graph.texts_to(user)


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphAPI]:
    with GraphAPI() as api:
        yield api


def worker_environment(directory: Path, redis_url: str, graph: GraphAPI) -> dict[str, str]:
    """The environment of a worker: the shipped configuration with short leases, Redis, WhatsApp."""
    config = YAML(typ="safe").load((ROOT / "config.yml").read_text(encoding="utf-8"))
    config["storage"].update({"lock_lease_seconds": 3, "recover_every_seconds": 0.5})
    config_path = directory / "config.yml"  # JSON is YAML
    config_path.write_text(json.dumps(config, default=str, ensure_ascii=False), encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("GUICHET_")}
    env.update(
        {
            "GUICHET_CONFIG": str(config_path),
            "GUICHET_REDIS_URL": redis_url,
            "GUICHET_SECRET_KEY": SECRET,
            "GUICHET_SESSION_SECRET": "redis-workers-session-secret",
            "GUICHET_STAFF_DIR": str(directory / "staff"),
            "GUICHET_WHATSAPP_TOKEN": graph.access_token,
            "GUICHET_WHATSAPP_PHONE_NUMBER_ID": graph.phone_number_id,
            "GUICHET_WHATSAPP_APP_SECRET": graph.app_secret,
            "GUICHET_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "GUICHET_WHATSAPP_API_URL": graph.base_url,
        }
    )
    return env


def deploy(
    directory: Path, redis: RedisServer | RedisClusterNodes, graph: GraphAPI, command: list[str]
) -> Iterator[Deployment]:
    env = worker_environment(directory, redis.url, graph)
    workers = [Worker(command, env, directory / f"worker{n}.log") for n in range(2)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        yield Deployment(redis, workers, graph)
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, graph: GraphAPI) -> Iterator[Deployment]:
    """One Redis with its append-only file, and two ``guichet serve`` processes."""
    directory = tmp_path_factory.mktemp("workers")
    with RedisServer(directory / "redis", appendonly=True, appendfsync="everysec") as redis:
        guichet = str(Path(sys.executable).with_name("guichet"))
        yield from deploy(directory, redis, graph, [guichet, "serve", "--port"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, graph: GraphAPI) -> Iterator[Deployment]:
    """A 3-node Redis Cluster, and two workers given its URL (``redis+cluster://``)."""
    directory = tmp_path_factory.mktemp("cluster-workers")
    with RedisClusterNodes(directory / "redis") as redis:
        yield from deploy(directory, redis, graph, [sys.executable, "-m", "tests.redis_worker"])


@pytest.fixture
def answered(engine: ConversationEngine) -> Callable[[list[str]], list[str]]:
    """Which of QUESTIONS the messages a user received answer, in order (by the curated answers'
    first words)."""
    openings = {engine.curated(intent, "en").text[:60]: intent for intent in QUESTIONS.values()}

    def intents(texts: list[str]) -> list[str]:
        return [openings[text[:60]] for text in texts if text[:60] in openings]

    return intents


# -- two workers, one bot -----------------------------------------------------------------------


@pytest.mark.parametrize("deployment_name", ["single", "cluster"])
async def test_duplicated_interleaved_deliveries_are_answered_once_and_in_order(
    deployment_name: str, request: pytest.FixtureRequest, answered: Answered
) -> None:
    bot: Deployment = request.getfixturevalue(deployment_name)
    rng = random.Random(deployment_name)
    users = [new_user() for _ in range(12)]
    late: list[tuple[Worker, JSONDict]] = []

    async def converse(user: str) -> list[str]:
        """The user writes four questions without waiting for answers; Meta delivers each one
        to both workers at the same time, and some a third time later."""
        order = rng.sample(list(QUESTIONS), len(QUESTIONS))
        for text in order:
            payload = text_message_payload(user, text, msg_id=new_wamid(user))
            first, second = rng.sample(bot.workers, 2)
            responses = await asyncio.gather(bot.deliver(first, payload), bot.deliver(second, payload))
            assert [r.status_code for r in responses] == [200, 200]
            if rng.random() < 0.5:
                late.append((rng.choice(bot.workers), payload))
        return [QUESTIONS[text] for text in order]

    expected = await asyncio.gather(*(converse(user) for user in users))
    assert all(r.status_code == 200 for r in await asyncio.gather(*(bot.deliver(w, p) for w, p in late)))
    for user, intents in zip(users, expected, strict=True):
        deadline = time.monotonic() + 90
        while len(answered(bot.graph.texts_to(user))) < len(intents):
            got = [text[:40] for text in bot.graph.texts_to(user)]
            assert time.monotonic() < deadline, f"{user} asked {intents}, got {got}"
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # a second answer to anything would have arrived by now
    for user, intents in zip(users, expected, strict=True):
        assert answered(bot.graph.texts_to(user)) == intents


async def test_a_worker_killed_mid_message_does_not_lose_it(single: Deployment, answered: Answered) -> None:
    user = new_user()
    doomed, survivor = single.workers
    single.graph.fail_next(10_000, status=500, to=user)  # the answer cannot get out yet
    payload = text_message_payload(user, "how to open a bank account")
    assert (await single.deliver(doomed, payload)).status_code == 200
    deadline = time.monotonic() + 30
    while not any(r["body"].get("to") == user for r in single.graph.requests if r["status"] == 500):
        assert time.monotonic() < deadline, "the worker never tried to answer"
        await asyncio.sleep(0.05)
    doomed.kill()  # holding the user's lock, the message not yet acknowledged
    single.graph.clear_failures()
    try:
        await single.answers(user, 1, timeout=30)
        await asyncio.sleep(2.0)
        assert answered(single.graph.texts_to(user)) == ["bank_account"]
        assert (await single.deliver(survivor, payload)).status_code == 200  # Meta again: dropped
        await asyncio.sleep(1.0)
        assert answered(single.graph.texts_to(user)) == ["bank_account"]
    finally:
        doomed.start()
        doomed.wait_ready()


async def test_redis_down_refuses_deliveries_with_503_and_the_workers_recover_by_themselves(
    single: Deployment, answered: Answered
) -> None:
    user = new_user()
    payload = text_message_payload(user, "i need to see a doctor")
    assert isinstance(single.redis, RedisServer)
    single.redis.stop()
    try:
        for worker in single.workers:
            started = time.monotonic()
            response = await single.deliver(worker, payload)
            assert response.status_code == 503
            assert time.monotonic() - started < 5
    finally:
        single.redis.start()
    # Meta delivers again later: accepted by one worker, dropped as a redelivery by the other.
    responses = [await single.deliver(worker, payload) for worker in single.workers]
    assert [r.status_code for r in responses] == [200, 200]
    await single.answers(user, 1)
    await asyncio.sleep(1.0)
    assert answered(single.graph.texts_to(user)) == ["health_care"]


async def test_the_handoff_queue_and_its_messages_survive_a_redis_crash(single: Deployment) -> None:
    assert isinstance(single.redis, RedisServer)
    user = new_user()
    key = pseudonym("whatsapp", user, SECRET.encode())
    first, second = single.workers
    assert (
        await single.deliver(first, text_message_payload(user, "I want to talk to a person"))
    ).status_code == 200
    await single.answers(user, 1)
    for worker, text in ((second, "are you still there?"), (first, "it is about my residence card")):
        assert (await single.deliver(worker, text_message_payload(user, text))).status_code == 200
    storage = single.storage()
    try:
        deadline = time.monotonic() + 30
        while not (stored := await storage.get(key)) or "residence card" not in str(stored.transcript):
            assert time.monotonic() < deadline, "the messages written during the handoff were not stored"
            await asyncio.sleep(0.05)
        single.redis.kill()  # a crash: only the append-only file is left
        single.redis.start()
        queue = await storage.handoff_queue()
        assert [c.key for c in queue if c.key == key] == [key]
        [waiting] = [c for c in queue if c.key == key]
        assert [t.text for t in waiting.transcript if t.role == "user"] == [
            "I want to talk to a person",
            "are you still there?",
            "it is about my residence card",
        ]
        assert waiting.handoff is not None and waiting.handoff.reason == "requested"
    finally:
        await storage.close()
    # Both workers took up their connections again by themselves.
    for worker in single.workers:
        response = await single.deliver(worker, text_message_payload(user, "hello?"))
        assert response.status_code == 200


async def test_every_key_expires_and_forget_leaves_no_trace_of_the_user(single: Deployment) -> None:
    user = new_user()
    key = pseudonym("whatsapp", user, SECRET.encode())
    worker = single.workers[0]
    for text in ("how do i find a job here", "I want to talk to a person"):
        before = len(single.graph.sent_to(user))
        assert (await single.deliver(worker, text_message_payload(user, text))).status_code == 200
        await single.answers(user, before + 1)
    storage = single.storage()
    try:
        everything = [k async for k in storage.client.scan_iter(count=1000)]
        assert {storage.key(key, part) for part in ("conv", "seen", "rate")} <= set(everything)
        # Every key expires: the user's (named after the pseudonym), the store's indexes, dedupe
        # keys and the admin streams (which also drop old entries one by one). Only the anonymous
        # rating counters and the content version stay.
        expiring = [k for k in everything if not k.endswith((":counts", ":content:version"))]
        ttls = {k: await storage.client.ttl(k) for k in expiring}
        ttls = {k: ttl for k, ttl in ttls.items() if ttl != -2}  # gone since the scan (a lock released)
        assert len(ttls) >= 5 and all(0 < ttl <= 30 * 24 * 3600 for ttl in ttls.values()), ttls
        # The WhatsApp way to /forget: the button, then the confirmation button.
        for _step in (1, 2):
            before = len(single.graph.sent_to(user))
            tap = interactive_reply_payload(user, "forget:yes", "Delete my data")
            assert (await single.deliver(worker, tap)).status_code == 200
            await single.answers(user, before + 1)
        await asyncio.sleep(0.5)
        assert await storage.get(key) is None
        trace = await everything_in_redis(storage)
        assert key not in trace and user not in trace
        assert key not in [c.key for c in await storage.handoff_queue()]
    finally:
        await storage.close()


async def everything_in_redis(storage: RedisStorage) -> str:
    """Every key and every value in Redis, as one text (SCAN, then a read by type)."""
    client = storage.client
    dumped: list[str] = []
    async for name in client.scan_iter(count=1000):
        kind = await client.type(name)
        value: object = {
            "string": client.get,
            "list": lambda n: client.lrange(n, 0, -1),
            "hash": client.hgetall,
            "set": client.smembers,
            "zset": lambda n: client.zrange(n, 0, -1),
        }[kind](name)
        dumped.append(f"{name} {await value}")  # type: ignore[misc]
    return "\n".join(dumped)
