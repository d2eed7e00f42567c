"""Rasa interop end to end: a real Rasa 3.6 server as guichet's NLU, and guichet's own Rasa API.

The Rasa tests (marker ``rasa``) run Rasa 3.6 from a Python 3.10 virtualenv cached in
``.cache/rasa-venv`` (created on the first run, about 3 minutes): our content is exported with
``export-rasa``, checked with ``rasa data validate``, trained with a few DIET epochs (the model is
cached in ``.cache/rasa-models`` by a hash of the export) and served by ``rasa run --enable-api``
on a free port of 127.0.0.1. Without Python 3.10 they fail and say so.

Guichet's ``POST /model/parse`` tests need no Rasa: the RasaNLU client talks to guichet itself.
A small stand-in of a broken Rasa server (errors, garbage, silence) covers what a healthy Rasa
never does.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bot.app import build_engine
from bot.channels.whatsapp import WEBHOOK_PATH, WhatsAppChannel, WhatsAppCredentials
from bot.config import Config
from bot.engine import ConversationEngine
from bot.messages import IncomingMessage, Kind
from bot.runtime import Runtime
from bot.storage import MemoryStorage
from bot.web.app import create_app
from nlu.data import load_examples
from nlu.embedded import EmbeddedNLU
from nlu.emergency import EmergencyDetector
from nlu.langid import LanguageIdentifier
from nlu.rasa_client import RasaNLU
from nlu.rasa_export import export_rasa
from nlu.rasa_venv import (
    RASA_REQUIREMENT,
    RasaUnavailable,
    ensure_rasa_venv,
    exclusive,
    rasa_command,
    rasa_environment,
)
from nlu.understanding import OUT_OF_SCOPE, NLUUnavailable
from tests.conftest import OPEN_TIME, ROOT
from tests.standins import BackgroundServer, GraphAPI, deliver_webhook, text_message_payload

RASA_VENV = ROOT / ".cache" / "rasa-venv"
# Trained models, by a hash of the exported project: a rerun on unchanged content trains nothing.
RASA_MODELS = ROOT / ".cache" / "rasa-models"
# Few epochs keep training quick; enough for messages close to the training examples.
RASA_EPOCHS = 5
# Installing Rasa (first run) plus training and starting it take minutes, not seconds.
RASA_TIMEOUT = 3600

# Messages worded like the training examples, in several languages, and the intent they ask for.
ROUTED = [
    ("looking for a flat to rent", "housing_search"),
    ("je cherche un travail", "job_search"),
    ("как открыть счет в банке", "bank_account"),
    ("де можна вивчати естонську мову", "language_courses"),
]


# -- Rasa itself ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_rasa(python: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rasa_command(python, *arguments),
        cwd=cwd,
        env=rasa_environment(),
        capture_output=True,
        text=True,
        timeout=RASA_TIMEOUT,
        check=False,
    )


class RasaServer:
    """``rasa run --enable-api`` with our model on a free port of 127.0.0.1, as a child process."""

    def __init__(self, python: Path, model: Path, log: Path) -> None:
        self._python = python
        self._model = model
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 600) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                rasa_command(
                    self._python,
                    "run",
                    "--enable-api",
                    "--model",
                    str(self._model),
                    "--interface",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ),
                cwd=self._log.parent,
                env=rasa_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(f"rasa run exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                answer = httpx.post(f"{self.url}/model/parse", json={"text": "hello"}, timeout=5)
                if answer.status_code == 200 and answer.json()["intent"]["name"]:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        pytest.fail(f"rasa run did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        self.resume()
        self._process.terminate()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(30)
        self._process = None

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel but never answered."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            assert self._process is not None
            os.kill(self._process.pid, signal.SIGCONT)

    def log_tail(self) -> str:
        return self._log.read_text(encoding="utf-8", errors="replace")[-3000:]


@pytest.fixture(scope="session")
def rasa_python() -> Path:
    try:
        return ensure_rasa_venv(RASA_VENV)
    except RasaUnavailable as exc:
        pytest.fail(f"cannot run the Rasa tests: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def rasa_project(config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our content exported as a Rasa project."""
    directory = tmp_path_factory.mktemp("rasa-project")
    export_rasa(config, directory, epochs=RASA_EPOCHS)
    return directory


@pytest.fixture(scope="session")
def rasa_model(rasa_python: Path, rasa_project: Path) -> Path:
    """The project's NLU model: trained once per content (parallel sessions wait for each other)."""
    digest = hashlib.sha256(RASA_REQUIREMENT.encode())
    for name in ("config.yml", "data/nlu.yml"):
        digest.update((rasa_project / name).read_bytes())
    name = digest.hexdigest()[:16]
    RASA_MODELS.mkdir(parents=True, exist_ok=True)
    model = RASA_MODELS / f"{name}.tar.gz"
    with exclusive(RASA_MODELS / ".lock"):
        if not model.is_file():
            trained = run_rasa(
                rasa_python,
                "train",
                "nlu",
                "--config",
                "config.yml",
                "--nlu",
                "data/nlu.yml",
                "--out",
                "models",
                "--fixed-model-name",
                name,
                cwd=rasa_project,
            )
            output = trained.stdout[-3000:] + trained.stderr[-3000:]
            assert trained.returncode == 0, output
            shutil.move(rasa_project / "models" / f"{name}.tar.gz", model)
    return model


@pytest.fixture(scope="session")
def rasa_server_process(
    rasa_python: Path, rasa_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaServer]:
    server = RasaServer(rasa_python, rasa_model, tmp_path_factory.mktemp("rasa-run") / "rasa-run.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rasa_server(rasa_server_process: RasaServer) -> RasaServer:
    """The Rasa server, running (started again when a test before stopped it)."""
    if not rasa_server_process.running:
        rasa_server_process.start()
    return rasa_server_process


def rasa_config(config: Config, url: str, timeout: float = 10.0) -> Config:
    """``config`` with ``nlu.backend: rasa`` pointing at ``url``."""
    changed = config.model_copy(deep=True)
    changed.nlu.backend = "rasa"
    changed.nlu.rasa_url = url
    changed.nlu.rasa_timeout_seconds = timeout
    return changed


def rasa_engine(config: Config, url: str, timeout: float = 10.0) -> ConversationEngine:
    """A real engine built from a configuration with ``nlu.backend: rasa``."""
    engine = build_engine(rasa_config(config, url, timeout), storage=MemoryStorage(3600))
    assert isinstance(engine.nlu, RasaNLU)
    engine._clock = lambda: OPEN_TIME
    return engine


# -- guichet served with the WhatsApp channel (Graph API stand-in) ----------------------------------


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn (lifespan on) on a free port of 127.0.0.1, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class WhatsAppBot:
    """guichet served over HTTP with its WhatsApp channel, Meta stood in for by the Graph API stand-in."""

    def __init__(self, base_url: str, runtime: Runtime, graph: GraphAPI) -> None:
        self.base_url = base_url
        self.runtime = runtime
        self.graph = graph

    async def say(self, user: str, text: str) -> list[str]:
        """The user writes ``text``; what they read in answer."""
        before = len(self.graph.texts_to(user))
        response = await deliver_webhook(
            self.base_url + WEBHOOK_PATH, text_message_payload(user, text), self.graph.app_secret
        )
        assert response.status_code == 200
        await self.runtime.dispatcher.idle()
        return self.graph.texts_to(user)[before:]


@asynccontextmanager
async def whatsapp_bot(engine: ConversationEngine) -> AsyncIterator[WhatsAppBot]:
    with GraphAPI() as graph:
        credentials = WhatsAppCredentials.from_env(
            {
                "GUICHET_WHATSAPP_TOKEN": graph.access_token,
                "GUICHET_WHATSAPP_PHONE_NUMBER_ID": graph.phone_number_id,
                "GUICHET_WHATSAPP_APP_SECRET": graph.app_secret,
                "GUICHET_WHATSAPP_VERIFY_TOKEN": "verify-rasa-test",
                "GUICHET_WHATSAPP_API_URL": graph.base_url,
            }
        )
        assert credentials is not None
        runtime = Runtime(engine.config, engine)
        runtime.add_channel(WhatsAppChannel(credentials, engine.config.whatsapp, engine, retry_delay=0.01))
        async with serving(create_app(runtime)) as base_url:
            yield WhatsAppBot(base_url, runtime, graph)


def words(text: str) -> str:
    return " ".join(text.split())


def new_user() -> str:
    return f"3726{uuid.uuid4().int % 10**7:07d}"


async def assert_handed_to_a_person(
    engine: ConversationEngine, user: str, text: str, read: list[str]
) -> None:
    """The user was told a person will answer; the conversation waits in the queue with the message."""
    assert words(" ".join(read)).startswith(words(engine.handoff_notice("en", OPEN_TIME)))
    waiting = [c for c in await engine.storage.handoff_queue() if c.address == user]
    assert len(waiting) == 1
    assert waiting[0].handoff is not None and waiting[0].handoff.reason == "nlu_unavailable"
    assert [turn.text for turn in waiting[0].transcript if turn.role == "user"] == [text]


# -- the tests against a real Rasa server -----------------------------------------------------------


@pytest.mark.rasa
@pytest.mark.timeout(RASA_TIMEOUT)
def test_rasa_validates_the_exported_project(rasa_python: Path, rasa_project: Path) -> None:
    validated = run_rasa(
        rasa_python,
        "data",
        "validate",
        "--fail-on-warnings",
        "--data",
        "data",
        "--domain",
        "domain.yml",
        "--config",
        "config.yml",
        cwd=rasa_project,
    )
    assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-3000:]


@pytest.mark.rasa
@pytest.mark.timeout(RASA_TIMEOUT)
async def test_rasa_client_routes_messages_to_their_intent(config: Config, rasa_server: RasaServer) -> None:
    nlu = RasaNLU.from_config(rasa_config(config, rasa_server.url))
    intents = {example.intent for example in load_examples(config.intents_dir)}
    try:
        for text, intent in ROUTED:
            understanding = await nlu.understand(text)
            assert understanding.intent == intent, (text, understanding.ranking[:3])
            assert understanding.confidence >= config.nlu.thresholds.answer, (text, understanding.ranking[:3])
            scores = [score for _, score in understanding.ranking]
            assert scores == sorted(scores, reverse=True)
            assert {name for name, _ in understanding.ranking} <= intents
    finally:
        await nlu.aclose()


@pytest.mark.rasa
@pytest.mark.timeout(RASA_TIMEOUT)
async def test_guichet_with_rasa_backend_answers_on_whatsapp(config: Config, rasa_server: RasaServer) -> None:
    engine = rasa_engine(config, rasa_server.url)
    async with whatsapp_bot(engine) as bot:
        user = new_user()
        read = await bot.say(user, "looking for a flat to rent")
    assert words(" ".join(read)).startswith(words(engine.curated("housing_search", "en", OPEN_TIME).text))
    assert not await engine.storage.handoff_queue()


@pytest.mark.rasa
@pytest.mark.timeout(RASA_TIMEOUT)
async def test_a_rasa_server_that_hangs_hands_the_message_to_a_person(
    config: Config, rasa_server: RasaServer
) -> None:
    engine = rasa_engine(config, rasa_server.url, timeout=1.0)
    async with whatsapp_bot(engine) as bot:
        rasa_server.pause()
        try:
            user = new_user()
            started = time.monotonic()
            read = await bot.say(user, "how do I find a job here")
            assert time.monotonic() - started < 10
        finally:
            rasa_server.resume()
    await assert_handed_to_a_person(engine, user, "how do I find a job here", read)


@pytest.mark.rasa
@pytest.mark.timeout(RASA_TIMEOUT)
async def test_a_stopped_rasa_server_hands_messages_to_a_person_and_danger_still_gets_the_numbers(
    config: Config, rasa_server: RasaServer
) -> None:
    engine = rasa_engine(config, rasa_server.url)
    async with whatsapp_bot(engine) as bot:
        user = new_user()
        assert words(" ".join(await bot.say(user, "looking for a flat to rent"))).startswith(
            words(engine.curated("housing_search", "en", OPEN_TIME).text)
        )
        rasa_server.stop()
        second = new_user()
        read = await bot.say(second, "I need a doctor for my son")
        await assert_handed_to_a_person(engine, second, "I need a doctor for my son", read)
        in_danger = new_user()
        read = await bot.say(in_danger, "my husband hits me, I am scared")
    assert words(" ".join(read)).startswith(words(engine.curated("emergency", "en", OPEN_TIME).text))
    urgent = [c for c in await engine.storage.handoff_queue() if c.address == in_danger]
    assert urgent and urgent[0].handoff is not None and urgent[0].handoff.urgent


# -- guichet's own POST /model/parse (no Rasa needed) ----------------------------------------------


@pytest.fixture
async def guichet_url(engine: ConversationEngine) -> AsyncIterator[str]:
    async with serving(create_app(Runtime(engine.config, engine))) as url:
        yield url


async def test_model_parse_answers_in_rasa_format(guichet_url: str, embedded_nlu: EmbeddedNLU) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{guichet_url}/model/parse", json={"text": "je cherche un logement"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"text", "intent", "intent_ranking", "entities"}
    assert body["text"] == "je cherche un logement" and body["entities"] == []
    assert body["intent"] == body["intent_ranking"][0]
    assert body["intent"]["name"] == "housing_search"
    expected = embedded_nlu.understand_now("je cherche un logement").ranking
    assert [(i["name"], pytest.approx(i["confidence"], abs=1e-6)) for i in body["intent_ranking"]] == [
        (name, score) for name, score in expected
    ]


async def test_model_parse_puts_danger_first(guichet_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{guichet_url}/model/parse", json={"text": "my husband hits me, I am scared"}
        )
    body = response.json()
    assert body["intent"] == {"name": "emergency", "confidence": 1.0}
    assert [i["name"] for i in body["intent_ranking"]].count("emergency") == 1


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"message": "hi"}', b'{"text": 42}', b"", b'{"text": "caf\xff"}'],
    ids=["not-json", "a-list", "no-text", "text-not-a-string", "empty", "bad-utf8"],
)
async def test_model_parse_refuses_a_malformed_body_like_rasa(guichet_url: str, body: bytes) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{guichet_url}/model/parse", content=body)
    assert response.status_code == 400
    assert response.json()["status"] == "failure" and response.json()["reason"] == "BadRequest"


async def test_model_parse_refuses_a_huge_body_and_other_methods(guichet_url: str) -> None:
    async with httpx.AsyncClient() as client:
        huge = await client.post(f"{guichet_url}/model/parse", json={"text": "x" * 200_000})
        got = await client.get(f"{guichet_url}/model/parse")
        long = await client.post(f"{guichet_url}/model/parse", json={"text": "logement " * 3000})
    assert huge.status_code == 413 and huge.json()["reason"] == "PayloadTooLarge"
    assert got.status_code == 405
    assert long.status_code == 200 and len(long.json()["text"]) == 4000


async def test_rasa_client_talks_to_guichet(
    config: Config, guichet_url: str, embedded_nlu: EmbeddedNLU
) -> None:
    nlu = RasaNLU.from_config(rasa_config(config, guichet_url))
    try:
        for text in ("je cherche un logement", "як записати дитину до школи", "tell me a joke"):
            understanding = await nlu.understand(text)
            local = embedded_nlu.understand_now(text)
            assert [name for name, _ in understanding.ranking] == [name for name, _ in local.ranking]
            assert understanding.confidence == pytest.approx(local.confidence, abs=1e-6)
            assert understanding.lang == local.lang
    finally:
        await nlu.aclose()


async def test_model_parse_says_503_when_the_backend_is_down(config: Config) -> None:
    engine = rasa_engine(config, f"http://127.0.0.1:{free_port()}")
    async with serving(create_app(Runtime(engine.config, engine))) as url, httpx.AsyncClient() as client:
        response = await client.post(f"{url}/model/parse", json={"text": "je cherche un logement"})
    assert response.status_code == 503 and response.json()["reason"] == "NLUUnavailable"


# -- the RasaNLU client against a misbehaving Rasa (stand-in) --------------------------------------


class BrokenRasa:
    """Answers ``/model/parse`` the way it is told to: a Rasa payload, an error, garbage or nothing."""

    def __init__(self) -> None:
        self.answer: Response = JSONResponse({})
        self.delay = 0.0

    def app(self) -> Starlette:
        async def parse(request: Request) -> Response:
            await request.body()
            await asyncio.sleep(self.delay)
            return self.answer

        return Starlette(routes=[Route("/model/parse", parse, methods=["POST"])])


@pytest.fixture(scope="module")
def local_readers(config: Config) -> tuple[LanguageIdentifier, EmergencyDetector]:
    return LanguageIdentifier(load_examples(config.intents_dir)), EmergencyDetector.from_file()


@pytest.fixture
def broken() -> Iterator[tuple[BrokenRasa, str]]:
    rasa = BrokenRasa()
    with BackgroundServer(rasa.app(), name="broken-rasa") as server:
        yield rasa, server.url


def client_for(
    url: str, readers: tuple[LanguageIdentifier, EmergencyDetector], timeout: float = 1.0
) -> RasaNLU:
    languages, detector = readers
    return RasaNLU(url, timeout=timeout, languages=languages, detector=detector)


def rasa_payload(ranking: list[tuple[str, float]]) -> dict[str, Any]:
    entries = [
        {"id": index, "name": name, "confidence": score} for index, (name, score) in enumerate(ranking)
    ]
    return {"text": "x", "intent": entries[0], "entities": [], "intent_ranking": entries, "text_tokens": []}


async def test_rasas_nlu_fallback_is_our_out_of_scope(
    broken: tuple[BrokenRasa, str], local_readers: tuple[LanguageIdentifier, EmergencyDetector]
) -> None:
    rasa, url = broken
    rasa.answer = JSONResponse(
        rasa_payload([("nlu_fallback", 0.3), ("housing_search", 0.22), ("greet", 0.1)])
    )
    nlu = client_for(url, local_readers)
    understanding = await nlu.understand("je cherche quelque chose")
    await nlu.aclose()
    assert understanding.ranking == ((OUT_OF_SCOPE, 0.3), ("housing_search", 0.22), ("greet", 0.1))
    assert understanding.lang == "fr"


@pytest.mark.parametrize(
    "answer",
    [
        Response("internal error", status_code=500),
        Response("<html>bad gateway</html>", status_code=502),
        Response("not json", status_code=200),
        JSONResponse({"intent": "housing_search"}),
        JSONResponse({"intent_ranking": [{"name": "greet", "confidence": "very"}]}),
        Response(status_code=401),
    ],
    ids=["500", "502", "garbage", "intent-not-an-object", "confidence-not-a-number", "401"],
)
async def test_a_rasa_answer_we_cannot_read_makes_the_nlu_unavailable(
    broken: tuple[BrokenRasa, str],
    local_readers: tuple[LanguageIdentifier, EmergencyDetector],
    answer: Response,
) -> None:
    rasa, url = broken
    rasa.answer = answer
    nlu = client_for(url, local_readers)
    with pytest.raises(NLUUnavailable):
        await nlu.understand("je cherche un logement")
    await nlu.aclose()


async def test_a_slow_rasa_times_out_but_danger_is_still_recognised(
    broken: tuple[BrokenRasa, str], local_readers: tuple[LanguageIdentifier, EmergencyDetector]
) -> None:
    rasa, url = broken
    rasa.answer = JSONResponse(rasa_payload([("greet", 0.9)]))
    rasa.delay = 3.0
    nlu = client_for(url, local_readers, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(NLUUnavailable):
        await nlu.understand("je cherche un logement")
    assert time.monotonic() - started < 2.5
    understanding = await nlu.understand("my husband hits me, I am scared")
    await nlu.aclose()
    assert understanding.emergency_category is not None and understanding.ranking == ()


async def test_an_unreachable_rasa_makes_the_nlu_unavailable(
    local_readers: tuple[LanguageIdentifier, EmergencyDetector],
) -> None:
    nlu = client_for(f"http://127.0.0.1:{free_port()}", local_readers)
    with pytest.raises(NLUUnavailable):
        await nlu.understand("je cherche un logement")
    await nlu.aclose()


async def test_an_engine_without_its_rasa_server_hands_over_and_loses_nothing(config: Config) -> None:
    engine = rasa_engine(config, f"http://127.0.0.1:{free_port()}")
    user = new_user()
    message = IncomingMessage("whatsapp", user, Kind.TEXT, text="how do I find a job here", message_id="m1")
    replies = await engine.handle(message)
    await assert_handed_to_a_person(engine, user, "how do I find a job here", [r.text for r in replies])
