"""The storage contract: MemoryStorage, RedisStorage and RedisStorage on a Redis Cluster pass the same tests.

Redis runs for real (tests/redis_server.py): one server, and a 3-node cluster on loopback. Each
test gets its own key prefix, so tests share the servers without seeing each other's keys. The
Redis-only part at the end checks what a shared Redis adds: expiry of every key, nothing left
after ``delete``, leases that outlive a dead worker, and outages reported as StorageUnavailable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from bot.conversation import Conversation, Handoff, Role, Turn
from bot.messages import IncomingMessage, Kind, Location
from bot.storage import MemoryStorage, Storage, StorageUnavailable
from bot.storage.redis import RedisStorage
from tests.redis_server import RedisClusterNodes, RedisServer

pytestmark = pytest.mark.redis

RETENTION = 3600
Factory = Callable[..., Storage]


@pytest.fixture(scope="module")
def redis_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis-contract")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster-contract")) as cluster:
        yield cluster


@pytest.fixture(params=["memory", "redis", "cluster"])
async def make_storage(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Builds stores of one kind; Redis stores of one test share a fresh prefix, like two workers."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    made: list[Storage] = []

    def make(retention_seconds: int = RETENTION, lease_seconds: float = 10.0) -> Storage:
        storage: Storage
        if request.param == "memory":
            storage = MemoryStorage(retention_seconds)
        else:
            server = request.getfixturevalue("redis_single" if request.param == "redis" else "redis_cluster")
            storage = RedisStorage.from_url(
                server.url, retention_seconds=retention_seconds, lease_seconds=lease_seconds, prefix=prefix
            )
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


@pytest.fixture
def storage(make_storage: Factory) -> Storage:
    return make_storage()


def conversation(key: str, *, handoff: Handoff | None = None, text: str = "hello") -> Conversation:
    at = dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC)
    return Conversation(
        key=key,
        channel="whatsapp",
        address="33600000001",
        lang="uk",
        lang_chosen=True,
        handoff=handoff,
        last_user_at=at,
        transcript=[Turn(role=Role.USER, text=text, at=at), Turn(role=Role.BOT, text="Вітаю!", at=at)],
    )


def waiting(key: str, minutes_ago: int, *, urgent: bool = False) -> Conversation:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    return conversation(key, handoff=Handoff(reason="requested", urgent=urgent, since=since))


def message(text: str, message_id: str | None = None, user: str = "33600000001") -> IncomingMessage:
    return IncomingMessage("whatsapp", user, Kind.TEXT, text=text, message_id=message_id, language_hint="uk")


# -- conversations ------------------------------------------------------------------------------


async def test_a_conversation_is_read_back_as_it_was_stored(storage: Storage) -> None:
    stored = conversation(
        "wa-one", handoff=Handoff(reason="emergency", urgent=True, guesses=[("housing", 0.4)])
    )
    assert await storage.get("wa-one") is None
    await storage.put(stored)
    assert await storage.get("wa-one") == stored


async def test_reading_gives_a_copy_that_changes_nothing_until_put(storage: Storage) -> None:
    await storage.put(conversation("wa-copy"))
    read = await storage.get("wa-copy")
    assert read is not None
    read.lang = "fr"
    read.transcript.append(Turn(role=Role.USER, text="encore"))
    assert await storage.get("wa-copy") == conversation("wa-copy")


async def test_conversations_expire_after_the_retention_period(make_storage: Factory) -> None:
    storage = make_storage(retention_seconds=1)
    await storage.put(waiting("wa-old", 5))
    assert [c.key for c in await storage.handoff_queue()] == ["wa-old"]
    await asyncio.sleep(1.2)
    assert await storage.get("wa-old") is None
    assert await storage.handoff_queue() == []


async def test_each_write_starts_the_retention_period_again(make_storage: Factory) -> None:
    storage = make_storage(retention_seconds=1)
    await storage.put(conversation("wa-active"))
    await asyncio.sleep(0.6)
    await storage.put(conversation("wa-active", text="still here"))
    await asyncio.sleep(0.6)
    kept = await storage.get("wa-active")
    assert kept is not None and kept.transcript[0].text == "still here"
    await asyncio.sleep(0.6)
    assert await storage.get("wa-active") is None


async def test_delete_forgets_the_conversation_its_queue_entry_and_its_inbox(storage: Storage) -> None:
    await storage.put(waiting("wa-gone", 3))
    await storage.push_incoming("wa-gone", message("one"))
    await storage.put(waiting("wa-stays", 2))
    await storage.delete("wa-gone")
    assert await storage.get("wa-gone") is None
    assert await storage.peek_incoming("wa-gone") is None
    assert "wa-gone" not in await storage.keys_with_incoming()
    assert [c.key for c in await storage.handoff_queue()] == ["wa-stays"]
    await storage.delete("wa-never-stored")  # nothing to delete is not an error


# -- the handoff queue -------------------------------------------------------------------------


async def test_the_handoff_queue_puts_emergencies_first_then_the_longest_waiting(storage: Storage) -> None:
    for stored in (waiting("wa-new", 1), waiting("wa-urgent", 2, urgent=True), waiting("wa-long", 30)):
        await storage.put(stored)
    await storage.put(conversation("wa-not-waiting"))
    assert [c.key for c in await storage.handoff_queue()] == ["wa-urgent", "wa-long", "wa-new"]


async def test_a_conversation_handed_back_leaves_the_queue(storage: Storage) -> None:
    await storage.put(waiting("wa-back", 4))
    await storage.put(conversation("wa-back"))
    assert await storage.handoff_queue() == []
    await storage.put(waiting("wa-back", 1))
    assert [c.key for c in await storage.handoff_queue()] == ["wa-back"]


# -- deliveries and the inbox ------------------------------------------------------------------


async def test_a_message_id_is_a_first_delivery_once(storage: Storage) -> None:
    assert await storage.first_delivery("whatsapp:wamid.A") is True
    assert await storage.first_delivery("whatsapp:wamid.A") is False
    assert await storage.first_delivery("telegram:wamid.A") is True


async def test_accepting_drops_redeliveries_and_keeps_the_rest_in_order(storage: Storage) -> None:
    first, again, second = message("one", "m1"), message("one", "m1"), message("two", "m2")
    assert await storage.accept_incoming("wa-in", first, "whatsapp:m1") is True
    assert await storage.accept_incoming("wa-in", again, "whatsapp:m1") is False
    assert await storage.accept_incoming("wa-in", second, "whatsapp:m2") is True
    without_id = message("a location, no id")
    assert await storage.accept_incoming("wa-in", without_id, None) is True
    assert await storage.accept_incoming("wa-in", without_id, None) is True
    seen = []
    while (oldest := await storage.peek_incoming("wa-in")) is not None:
        seen.append(oldest.text)
        await storage.ack_incoming("wa-in", oldest)
    assert seen == ["one", "two", "a location, no id", "a location, no id"]


async def test_a_queued_message_comes_back_whole(storage: Storage) -> None:
    sent = IncomingMessage(
        "telegram",
        "-1001234",
        Kind.LOCATION,
        text='موقعي 📍 «ici»\n"quoted"',
        payload="l:uk",
        message_id="777",
        language_hint="ar",
        location=Location(59.4427, 24.7363),
        received_at=dt.datetime(2026, 11, 18, 9, 0, 0, 123456, tzinfo=dt.UTC),
    )
    await storage.push_incoming("tg-whole", sent)
    assert await storage.peek_incoming("tg-whole") == sent
    assert await storage.peek_incoming("tg-whole") == sent  # peeking leaves it in place


async def test_acknowledging_removes_only_the_message_that_was_processed(storage: Storage) -> None:
    first, second = message("first", "a1"), message("second", "a2")
    await storage.push_incoming("wa-ack", first)
    await storage.push_incoming("wa-ack", second)
    await storage.ack_incoming("wa-ack", second)  # not the oldest: nothing happens
    assert await storage.peek_incoming("wa-ack") == first
    await storage.ack_incoming("wa-ack", first)
    assert await storage.peek_incoming("wa-ack") == second
    # /forget empties the inbox while its own message is processed; a message that arrives
    # afterwards is not removed by that message's acknowledgement.
    await storage.delete("wa-ack")
    later = message("after forget", "a3")
    await storage.push_incoming("wa-ack", later)
    await storage.ack_incoming("wa-ack", second)
    assert await storage.peek_incoming("wa-ack") == later


async def test_users_with_unprocessed_messages_are_listed_until_their_inbox_is_empty(
    storage: Storage,
) -> None:
    assert await storage.keys_with_incoming() == []
    await storage.push_incoming("wa-a", message("a"))
    await storage.push_incoming("wa-b", message("b1"))
    await storage.push_incoming("wa-b", message("b2"))
    assert sorted(await storage.keys_with_incoming()) == ["wa-a", "wa-b"]
    for key in ("wa-a", "wa-b"):
        while (oldest := await storage.peek_incoming(key)) is not None:
            await storage.ack_incoming(key, oldest)
    assert await storage.keys_with_incoming() == []


# -- locks and rate limits ---------------------------------------------------------------------


async def test_a_users_lock_lets_one_holder_in_at_a_time(storage: Storage) -> None:
    inside: list[str] = []
    overlaps: list[str] = []

    async def hold(key: str, name: str) -> None:
        async with storage.user_lock(key):
            if any(k == key for k in inside):
                overlaps.append(name)
            inside.append(key)
            await asyncio.sleep(0.05)
            inside.remove(key)

    started = time.monotonic()
    await asyncio.gather(*(hold("wa-lock", f"same{n}") for n in range(4)), hold("wa-other", "other"))
    assert overlaps == []
    assert time.monotonic() - started >= 0.2  # the four holders of one key queued


async def test_different_users_do_not_wait_for_each_other(storage: Storage) -> None:
    async with storage.user_lock("wa-x"):
        async with asyncio.timeout(2):
            async with storage.user_lock("wa-y"):
                pass


async def test_the_lock_is_released_when_its_holder_fails(storage: Storage) -> None:
    with pytest.raises(RuntimeError):
        async with storage.user_lock("wa-fail"):
            raise RuntimeError("processing failed")
    async with asyncio.timeout(2):
        async with storage.user_lock("wa-fail"):
            pass


async def test_the_rate_limit_counts_per_user_in_a_sliding_window(storage: Storage) -> None:
    allowed = [await storage.within_rate_limit("wa-flood", 3, 1) for _ in range(5)]
    assert allowed == [True, True, True, False, False]
    assert await storage.within_rate_limit("wa-calm", 3, 1) is True
    await asyncio.sleep(1.1)
    assert await storage.within_rate_limit("wa-flood", 3, 1) is True


# -- what Redis adds: shared by workers, every key expiring, nothing left behind ----------------


@pytest.fixture(params=["redis", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> RedisServer | RedisClusterNodes:
    fixture = "redis_single" if request.param == "redis" else "redis_cluster"
    server: RedisServer | RedisClusterNodes = request.getfixturevalue(fixture)
    return server


@pytest.fixture
async def two_workers(redis_target: RedisServer | RedisClusterNodes) -> AsyncIterator[list[RedisStorage]]:
    """Two stores on one Redis, as two worker processes would have, with a short lease."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    stores = [
        RedisStorage.from_url(redis_target.url, retention_seconds=RETENTION, lease_seconds=0.5, prefix=prefix)
        for _ in range(2)
    ]
    yield stores
    for store in stores:
        await store.close()


async def keys_of(store: RedisStorage) -> dict[str, int]:
    """Every key under the store's prefix (SCAN, on every cluster node) and its TTL in ms."""
    found: dict[str, int] = {}
    async for key in store.client.scan_iter(match=f"{store.prefix}:*", count=1000):
        found[key] = await store.client.pttl(key)
    return found


async def test_workers_share_conversations_inboxes_and_dedupe(two_workers: list[RedisStorage]) -> None:
    one, two = two_workers
    await one.put(waiting("wa-shared", 2))
    assert await two.get("wa-shared") == await one.get("wa-shared")
    assert [c.key for c in await two.handoff_queue()] == ["wa-shared"]
    assert await one.accept_incoming("wa-shared", message("hi", "s1"), "whatsapp:s1") is True
    assert await two.accept_incoming("wa-shared", message("hi", "s1"), "whatsapp:s1") is False
    assert await two.keys_with_incoming() == ["wa-shared"]
    assert [await w.within_rate_limit("wa-shared", 2, 60) for w in (one, two, one)] == [True, True, False]


async def test_redeliveries_racing_on_two_workers_are_accepted_once(two_workers: list[RedisStorage]) -> None:
    one, two = two_workers
    results = await asyncio.gather(
        *(
            w.accept_incoming("wa-race", message(f"m{n}", f"r{n}"), f"whatsapp:r{n}")
            for n in range(50)
            for w in (one, two)
        )
    )
    assert sum(results) == 50
    texts = []
    while (oldest := await one.peek_incoming("wa-race")) is not None:
        texts.append(oldest.text)
        await one.ack_incoming("wa-race", oldest)
    assert sorted(texts) == sorted(f"m{n}" for n in range(50))


async def test_a_lock_is_exclusive_across_workers_and_renewed_while_held(
    two_workers: list[RedisStorage],
) -> None:
    one, two = two_workers
    async with one.user_lock("wa-busy"):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):  # three leases: renewed all along
                async with two.user_lock("wa-busy"):
                    pass
    async with asyncio.timeout(1), two.user_lock("wa-busy"):
        pass


async def test_a_dead_workers_lock_frees_itself_after_its_lease(two_workers: list[RedisStorage]) -> None:
    _, two = two_workers
    # What a worker killed while processing leaves behind: its lease, never renewed again.
    await two.client.set(two.key("wa-dead", "lock"), "token-of-a-dead-worker", px=500)
    started = time.monotonic()
    async with asyncio.timeout(3), two.user_lock("wa-dead"):
        waited = time.monotonic() - started
    assert 0.3 < waited < 1.5


async def test_every_key_expires(two_workers: list[RedisStorage]) -> None:
    one, _ = two_workers
    await one.put(waiting("wa-ttl", 1))
    await one.accept_incoming("wa-ttl", message("hi", "t1"), "whatsapp:t1")
    await one.accept_incoming("wa-ttl2", message("hi", "t2"), "whatsapp:t2")
    await one.within_rate_limit("wa-ttl", 20, 60)
    await one.first_delivery("telegram:42")
    async with one.user_lock("wa-ttl"):
        keys = await keys_of(one)
    assert {one.key("wa-ttl", part) for part in ("conv", "inbox", "seen", "rate", "lock")} <= keys.keys()
    assert len(keys) >= 9  # plus the other user's keys, the queue, the pending index, the dedupe key
    assert all(ttl > 0 for ttl in keys.values()), keys
    assert all(ttl <= RETENTION * 1000 for ttl in keys.values())


async def test_delete_leaves_no_key_of_the_user(two_workers: list[RedisStorage]) -> None:
    one, two = two_workers
    await one.put(waiting("wa-forget", 1))
    await one.accept_incoming("wa-forget", message("hi", "f1"), "whatsapp:f1")
    await one.within_rate_limit("wa-forget", 20, 60)
    await one.put(conversation("wa-other"))
    async with one.user_lock("wa-forget"):
        await two.delete("wa-forget")
    left = await keys_of(one)
    assert [k for k in left if "wa-forget" in k] == []
    for index in ("{handoff}:queue", "{inbox}:pending"):
        name = f"{one.prefix}:{index}"
        if name in left:
            assert "wa-forget" not in await one.client.zrange(name, 0, -1)
    assert one.key("wa-other", "conv") in left


async def test_message_ids_are_stored_hashed(two_workers: list[RedisStorage]) -> None:
    """WhatsApp message ids embed the sender's phone number (base64): they are never stored as such."""
    one, _ = two_workers
    wamid = "wamid.HBgLMzM2MDAwMDAwMDEVAgASGBQzQTg3NjU0MzIxMEFCQ0RFRjAA"
    await one.accept_incoming("wa-hash", message("hi", wamid), f"whatsapp:{wamid}")
    await one.first_delivery(f"whatsapp:{wamid}")
    await one.ack_incoming("wa-hash", message("hi", wamid))
    everything = json.dumps(
        [await one.client.zrange(one.key("wa-hash", "seen"), 0, -1), list((await keys_of(one)).keys())]
    )
    assert wamid not in everything and "HBgLMzM2" not in everything


async def test_an_unreachable_redis_is_reported_and_the_store_recovers_by_itself(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "outage", appendonly=True).start()
    store = RedisStorage.from_url(server.url, retention_seconds=RETENTION)
    try:
        await store.put(conversation("wa-outage"))
        server.stop()
        calls = {
            "get": store.get("wa-outage"),
            "put": store.put(conversation("wa-outage")),
            "delete": store.delete("wa-outage"),
            "first_delivery": store.first_delivery("x"),
            "accept_incoming": store.accept_incoming("wa-outage", message("hi"), "whatsapp:o1"),
            "peek_incoming": store.peek_incoming("wa-outage"),
            "keys_with_incoming": store.keys_with_incoming(),
            "within_rate_limit": store.within_rate_limit("wa-outage", 3, 60),
            "handoff_queue": store.handoff_queue(),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                await call
            assert time.monotonic() - started < 3, f"{name} took too long to fail"
        with pytest.raises(StorageUnavailable):
            async with store.user_lock("wa-outage"):
                pass
        server.start()
        assert await store.get("wa-outage") == conversation("wa-outage")  # same client, reconnected
        assert await store.accept_incoming("wa-outage", message("hi"), "whatsapp:o1") is True
    finally:
        await store.close()
        server.kill()


def test_the_json_form_of_a_message_has_every_field() -> None:
    """``to_json`` lists the fields one by one: a field added later must be added there too."""
    sent = IncomingMessage("whatsapp", "336", Kind.LOCATION, location=Location(48.8, 2.3), message_id="w1")
    assert set(sent.to_json()) == {field.name for field in fields(IncomingMessage)}
    assert IncomingMessage.from_json(json.loads(json.dumps(sent.to_json()))) == sent
