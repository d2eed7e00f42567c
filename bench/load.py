"""Load benchmark: many WhatsApp users, two workers, one Redis, everything on 127.0.0.1.

    .venv/bin/python bench/load.py                      # 2 workers, 200 messages/s for 30 s
    .venv/bin/python bench/load.py --rate 400 --nlu cached --profile

What runs, each in its own process: a ``redis-server`` with its append-only file (fsync every
second), the Graph API stand-in of tests/standins (it records when each answer arrives), and
the workers: the message path of ``guichet serve`` (Starlette app, WhatsApp channel, dispatcher,
engine with the embedded NLU, Redis storage, admin journal). This process plays Meta: it posts
signed webhooks at a steady rate (open loop), spread over the workers like a load balancer,
each simulated user writing again every ``users / rate`` seconds.

It prints the messages answered per second, the latency from the webhook to the first answer
(p50, p99), the CPU and memory of every process, and Redis bytes per stored conversation.
``--nlu cached`` remembers the NLU's understanding of each text, to show what the rest of the
stack reaches; ``--profile`` times one worker's message path in this process (NLU, storage,
the rest) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import load_config  # noqa: E402
from bot.messages import IncomingMessage, Kind  # noqa: E402
from nlu.understanding import NLUBackend, Understanding  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402
from tests.standins.graph_api import (  # noqa: E402
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_APP_SECRET,
    DEFAULT_PHONE_NUMBER_ID,
    GraphAPI,
    encode_webhook_body,
    new_wamid,
    text_message_payload,
    webhook_headers,
)

SECRET = "bench-secret"
# What newcomers ask, in the content languages: every one gets a curated answer (no handoff).
QUESTIONS = [
    "how do i find a job here",
    "i need to see a doctor",
    "how to open a bank account",
    "where can i learn estonian",
    "I am looking for an apartment to rent",
    "je cherche un logement",
    "comment trouver un travail",
    "де знайти житло",
    "як записати дитину до школи",
    "как открыть банковский счет",
    "мне нужен врач",
    "ابحث عن سكن للايجار",
    "waar kan ik Estisch leren",
    "kuidas leida tööd",
]


class CachedNLU:
    """The NLU with its understanding of each text remembered: the cost of everything else."""

    def __init__(self, backend: NLUBackend) -> None:
        self.backend = backend
        self._seen: dict[str, Understanding] = {}

    async def understand(self, text: str) -> Understanding:
        if (known := self._seen.get(text)) is None:
            known = self._seen[text] = await self.backend.understand(text)
        return known


# -- the processes --------------------------------------------------------------------------------


def run_worker(port: int, nlu: str) -> None:
    """One worker: the app ``guichet serve`` runs, minus the staff and admin pages."""
    import uvicorn

    from bot.server import build_runtime
    from bot.web.app import create_app

    runtime = build_runtime(load_config())
    if nlu == "cached":
        runtime.engine.nlu = CachedNLU(runtime.engine.nlu)
    uvicorn.run(create_app(runtime), host="127.0.0.1", port=port, log_level="warning", access_log=False)


class TimedGraph(GraphAPI):
    """The Graph API stand-in, noting when each accepted message arrives and for whom."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []
        super().__init__()

    async def _messages(self, request: Any) -> Any:
        response = await super()._messages(request)
        if response.status_code == 200:
            self.arrivals.append((str((await request.json()).get("to", "")), time.time()))
        return response


def run_graph() -> None:
    """The stand-in in a process of its own; a line protocol on stdin: ``count``, ``dump``."""
    with TimedGraph() as graph:
        print(graph.base_url, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(graph.arrivals), flush=True)
            elif line.strip() == "dump":
                print(json.dumps(graph.arrivals), flush=True)


class Stack:
    """Redis, the stand-in and the workers, started as separate processes."""

    def __init__(self, directory: Path, workers: int, nlu: str, appendfsync: str) -> None:
        self.directory = directory
        self.redis = RedisServer(directory / "redis", appendonly=True, appendfsync=appendfsync).start()
        self.graph = subprocess.Popen(
            [sys.executable, __file__, "graph"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.graph.stdout is not None
        graph_url = self.graph.stdout.readline().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
        env.update(
            {
                "GUICHET_REDIS_URL": self.redis.url,
                "GUICHET_SECRET_KEY": SECRET,
                "GUICHET_STAFF_DIR": str(directory / "staff"),
                "GUICHET_WHATSAPP_TOKEN": DEFAULT_ACCESS_TOKEN,
                "GUICHET_WHATSAPP_PHONE_NUMBER_ID": DEFAULT_PHONE_NUMBER_ID,
                "GUICHET_WHATSAPP_APP_SECRET": DEFAULT_APP_SECRET,
                "GUICHET_WHATSAPP_VERIFY_TOKEN": "bench",
                "GUICHET_WHATSAPP_API_URL": graph_url,
            }
        )
        self.ports = [free_port() for _ in range(workers)]
        log = (directory / "workers.log").open("ab")
        self.workers = [
            subprocess.Popen(
                [sys.executable, __file__, "worker", str(port), "--nlu", nlu],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for port in self.ports
        ]
        for port, worker in zip(self.ports, self.workers, strict=True):
            deadline = time.monotonic() + 600
            while True:
                assert worker.poll() is None, (directory / "workers.log").read_text()[-3000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "a worker did not start"
                time.sleep(0.2)

    @property
    def webhooks(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/webhooks/whatsapp" for port in self.ports]

    def ask(self, command: str) -> str:
        assert self.graph.stdin is not None and self.graph.stdout is not None
        self.graph.stdin.write(command + "\n")
        self.graph.stdin.flush()
        return self.graph.stdout.readline()

    def answers(self) -> int:
        return int(self.ask("count"))

    def arrivals(self) -> list[tuple[str, float]]:
        return [(to, at) for to, at in json.loads(self.ask("dump"))]

    def processes(self) -> dict[str, psutil.Process]:
        assert self.redis.process is not None
        found = {f"worker {n + 1}": psutil.Process(w.pid) for n, w in enumerate(self.workers)}
        found["redis-server"] = psutil.Process(self.redis.process.pid)
        found["Graph stand-in"] = psutil.Process(self.graph.pid)
        found["load generator"] = psutil.Process()
        return found

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait(30)
        if self.graph.stdin:
            self.graph.stdin.close()
        self.graph.wait(30)
        self.redis.kill()


# -- the load -------------------------------------------------------------------------------------


async def post(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> int:
    body = encode_webhook_body(payload)
    try:
        response = await client.post(url, content=body, headers=webhook_headers(body, DEFAULT_APP_SECRET))
    except httpx.HTTPError:
        return 0
    return response.status_code


async def offer(
    webhooks: Sequence[str], users: Sequence[str], rate: float, duration: float, prefix: int
) -> tuple[list[tuple[str, float]], list[int]]:
    """Post ``rate`` messages a second for ``duration`` seconds; their users and send times."""
    count = int(rate * duration)
    sent: list[tuple[str, float]] = []
    tasks: list[asyncio.Task[int]] = []
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.monotonic()
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            user = users[n % len(users)]
            text = QUESTIONS[(n // len(users) + prefix + n) % len(QUESTIONS)]
            payload = text_message_payload(user, text, msg_id=new_wamid(user))
            sent.append((user, time.time()))
            tasks.append(asyncio.create_task(post(client, webhooks[n % len(webhooks)], payload)))
        statuses = await asyncio.gather(*tasks)
    return sent, list(statuses)


def latencies(sent: list[tuple[str, float]], arrivals: list[tuple[str, float]]) -> list[float]:
    """Webhook to first answer, per message: the first arrival for its user after it was sent
    (each user writes again only after ``users / rate`` seconds)."""
    by_user: defaultdict[str, list[float]] = defaultdict(list)
    for to, at in arrivals:
        by_user[to].append(at)
    for times in by_user.values():
        times.sort()
    sends: defaultdict[str, list[float]] = defaultdict(list)
    for user, at in sent:
        sends[user].append(at)
    found = []
    for user, times in sends.items():
        replies = by_user.get(user, [])
        for n, at in enumerate(sorted(times)):
            until = times[n + 1] if n + 1 < len(times) else float("inf")
            first = next((r for r in replies if at <= r < until), None)
            if first is not None:
                found.append(first - at)
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def sizes_at_retention(redis_url: str, messages_a_day: float, dedupe_days: float = 7) -> dict[str, int]:
    """Redis bytes of one user's data as it grows: a stored conversation copied out to the
    transcript limit (the same kinds of turns), and a dedupe set of every message id a user
    sends in the dedupe window."""
    from bot.conversation import TRANSCRIPT_LIMIT, Conversation
    from bot.storage.redis import RedisStorage, _digest

    storage = RedisStorage.from_url(redis_url, retention_seconds=3600, prefix="bench-size")
    client = storage.client
    keys = [key async for key in client.scan_iter(match="guichet:{*}:conv", count=1000)]
    stored = Conversation.model_validate_json(await client.get(keys[0]))
    full = stored.model_copy(update={"key": "full"}, deep=True)
    while len(full.transcript) < TRANSCRIPT_LIMIT:
        full.transcript.extend(stored.transcript)
    full.transcript = full.transcript[:TRANSCRIPT_LIMIT]
    await storage.put(full)
    ids = int(messages_a_day * dedupe_days)
    seen = storage.key("full", "seen")
    await client.zadd(seen, {_digest(f"whatsapp:wamid.{n}"): int(time.time() * 1000) + n for n in range(ids)})
    sizes = {
        "one_exchange": len(stored.transcript),
        "full_conversation": int(await client.memory_usage(storage.key("full", "conv"), samples=0)),
        "dedupe_ids": ids,
        "dedupe_set": int(await client.memory_usage(seen, samples=0)),
    }
    await storage.delete("full")
    await storage.close()
    return sizes


def redis_bytes(stack: Stack) -> dict[str, float]:
    """Used memory, and MEMORY USAGE of the stored conversations (a sample)."""
    info = stack.redis.cli("INFO", "memory")
    used = int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("used_memory:")))
    keys = stack.redis.cli("--scan", "--pattern", "guichet:{*}:conv").split()
    sample = keys[:500]
    sizes = [int(stack.redis.cli("MEMORY", "USAGE", key, "SAMPLES", "0")) for key in sample]
    all_user_keys = len(stack.redis.cli("--scan", "--pattern", "guichet:{*}:*").split())
    return {
        "used_memory": used,
        "conversations": len(keys),
        "user_keys": all_user_keys,
        "conversation_bytes": statistics.mean(sizes) if sizes else float("nan"),
    }


async def measure(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    prefix = int(time.time()) % 10_000
    users = [f"3725{prefix:04d}{n:05d}" for n in range(args.users)]
    warm = [f"3726{prefix:04d}{n:05d}" for n in range(40)]
    await offer(stack.webhooks, warm, 20, 2, 0)  # first requests load lazily-built parts
    while stack.answers() < len(warm):
        await asyncio.sleep(0.2)
    before_memory = redis_bytes(stack)
    processes = stack.processes()
    cpu_before = {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}
    started = time.monotonic()
    answers_before = stack.answers()
    sent, statuses = await offer(stack.webhooks, users, args.rate, args.duration, prefix)
    sending = time.monotonic() - started
    expected = answers_before + sum(1 for s in statuses if s == 200)
    deadline = time.monotonic() + 60
    while stack.answers() < expected and time.monotonic() < deadline:  # at least one reply each
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    wall = time.monotonic() - started
    cpu = {name: (sum(p.cpu_times()[:2]) - cpu_before[name]) / wall for name, p in processes.items()}
    rss = {name: p.memory_info().rss for name, p in processes.items()}
    arrivals = [(to, at) for to, at in stack.arrivals() if to in set(users)]
    lat = latencies(sent, arrivals)
    after_memory = redis_bytes(stack)
    sizes = await sizes_at_retention(stack.redis.url, args.messages_a_day / args.active_users)
    return {
        "workers": len(stack.workers),
        "nlu": args.nlu,
        "offered_per_second": args.rate,
        "sent": len(sent),
        "send_seconds": sending,
        "accepted": statuses.count(200),
        "refused": len(statuses) - statuses.count(200),
        "answered": len(lat),
        "answered_per_second": len(lat) / max(sending, wall - 1.0) if lat else 0.0,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
        "cpu_cores": cpu,
        "rss_mb": {name: value / 2**20 for name, value in rss.items()},
        "redis": after_memory,
        "redis_bytes_per_user": (after_memory["used_memory"] - before_memory["used_memory"])
        / max(1, after_memory["conversations"] - before_memory["conversations"]),
        "sizes": sizes,
    }


# -- where the time goes --------------------------------------------------------------------------


class Stopwatch:
    """Seconds spent in the awaitables it wraps, by name."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def wrap(self, name: str, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return timed


async def profile(redis_url: str, count: int = 400) -> str:
    """One worker's message path, in this process, one message at a time: the dispatcher's and
    the engine's work with real Redis, split into NLU, conversation storage, admin journal and
    the rest; then cProfile's hottest functions."""
    from bot.app import build_engine

    config = load_config()
    config.storage.url = redis_url
    engine = build_engine(config)
    storage, watch = engine.storage, Stopwatch()
    engine.nlu.understand = watch.wrap("NLU (understand)", engine.nlu.understand)  # type: ignore[method-assign]
    for name in ("get", "put", "within_rate_limit", "accept_incoming", "peek_incoming", "ack_incoming"):
        setattr(storage, name, watch.wrap("conversation storage (Redis)", getattr(storage, name)))
    if engine.journal is not None:
        engine.journal.flush = watch.wrap("admin journal (Redis)", engine.journal.flush)  # type: ignore[method-assign]

    async def one(n: int) -> None:
        user = f"3727{n:06d}"
        text = QUESTIONS[n % len(QUESTIONS)]
        message = IncomingMessage("whatsapp", user, Kind.TEXT, text=text, message_id=f"p{n}")
        key = engine.key_for("whatsapp", user)
        await storage.accept_incoming(key, message, f"whatsapp:p{n}")
        started = time.perf_counter()
        async with storage.user_lock(key) as lease:
            locked = time.perf_counter()
            await storage.peek_incoming(key)
            await engine.handle(message)
            held = time.perf_counter()
            await lease.held()
            await storage.ack_incoming(key, message)
            released = time.perf_counter()
        watch.seconds["user lock (Redis)"] += (locked - started) + (time.perf_counter() - released)
        watch.seconds["conversation storage (Redis)"] += released - held  # lease check (ack is timed)

    for n in range(20):
        await one(n)
    watch.seconds.clear()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for n in range(20, 20 + count):
        await one(n)
    profiler.disable()
    total = time.perf_counter() - started
    out = io.StringIO()
    per = 1000 / count
    print(f"Where one message's time goes ({count} messages, one at a time, Redis on loopback):", file=out)
    print(f"  {'everything':34} {total * per:6.2f} ms", file=out)
    for name, seconds in sorted(watch.seconds.items(), key=lambda item: -item[1]):
        print(f"  {name:34} {seconds * per:6.2f} ms", file=out)
    rest = total - sum(watch.seconds.values())
    print(f"  {'the engine itself':34} {rest * per:6.2f} ms  (answers, services, language)", file=out)
    classifier = getattr(getattr(engine.nlu, "__self__", None), "classifier", None)
    if classifier is not None:
        texts = [f"{QUESTIONS[n % len(QUESTIONS)]} {n}" for n in range(256)]
        started = time.perf_counter()
        for text in texts[:64]:
            classifier.rank(text)
        single = (time.perf_counter() - started) / 64
        started = time.perf_counter()
        classifier.rank_batch(texts)
        batched = (time.perf_counter() - started) / len(texts)
        print(
            f"  the intent classifier alone takes {single * 1000:.2f} ms a text one at a time,"
            f" {batched * 1000:.2f} ms a text in batches of {len(texts)}",
            file=out,
        )
    stats = io.StringIO()
    pstats.Stats(profiler, stream=stats).sort_stats("tottime").print_stats(15)
    table = stats.getvalue()
    print("\ncProfile, by time spent in the function itself:\n" + table[table.index("   ncalls") :], file=out)
    await storage.close()
    return out.getvalue()


# -- the report -----------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['workers']} workers, NLU {result['nlu']}, offered {result['offered_per_second']:.0f} messages/s"
        f" for {result['send_seconds']:.1f} s ({result['sent']} messages)",
        f"  accepted {result['accepted']}, refused {result['refused']}, answered {result['answered']}",
        f"  answered per second  {result['answered_per_second']:8.1f}",
        f"  webhook to answer    p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms,"
        f" max {result['max_ms']:.1f} ms",
        "  CPU (cores) and memory:",
    ]
    for name, cores in result["cpu_cores"].items():
        lines.append(f"    {name:16} {cores:5.2f} cores  {result['rss_mb'][name]:7.1f} MB")
    redis, sizes = result["redis"], result["sizes"]
    lines += [
        f"  Redis: {redis['used_memory'] / 2**20:.1f} MB used, {redis['conversations']} conversations,"
        f" {redis['user_keys']} user keys",
        f"    a stored conversation: {redis['conversation_bytes']:.0f} bytes (MEMORY USAGE, mean);"
        f" all keys of a new user: {result['redis_bytes_per_user']:.0f} bytes",
        f"    a conversation at the transcript limit: {sizes['full_conversation']} bytes"
        f" (one exchange is {sizes['one_exchange']} turns)",
        f"    a dedupe set of {sizes['dedupe_ids']} message ids (7 days at"
        f" {sizes['dedupe_ids'] / 7:.0f} a day): {sizes['dedupe_set']} bytes",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "worker", "graph"])
    parser.add_argument("port", nargs="?", type=int, help="worker mode: the port")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=4000, help="simulated users (default 4000)")
    parser.add_argument("--rate", type=float, default=200, help="messages per second offered (default 200)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load (default 30)")
    parser.add_argument("--nlu", choices=["real", "cached"], default="real")
    parser.add_argument("--active-users", type=int, default=100_000, help="for the sizes at retention")
    parser.add_argument("--messages-a-day", type=int, default=1_000_000, help="for the sizes at retention")
    parser.add_argument("--appendfsync", choices=["everysec", "always"], default="everysec")
    parser.add_argument("--profile", action="store_true", help="also show where a message's time goes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.mode == "worker":
        run_worker(args.port, args.nlu)
        return 0
    if args.mode == "graph":
        run_graph()
        return 0
    with tempfile.TemporaryDirectory(prefix="guichet-bench-") as directory:
        stack = Stack(Path(directory), args.workers, args.nlu, args.appendfsync)
        try:
            result = asyncio.run(measure(args, stack))
            print(json.dumps(result, indent=2) if args.json else report(result))
            if args.profile:
                print()
                print(asyncio.run(profile(stack.redis.url)))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
