"""The staff console: accounts, sign-in, CSRF, and a whole handoff in a real headless Chromium.

The browser test runs the real server (uvicorn, lifespan on) with the real Telegram channel polling
the local Bot API stand-in; the newcomer writes through the stand-in and reads what Telegram
stored. Staff use the console in Chromium, driven by Playwright.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from bot.channels.telegram import TelegramChannel
from bot.config import Config
from bot.engine import ConversationEngine
from bot.runtime import Runtime
from bot.staff.accounts import AccountError, Accounts
from bot.staff.auth import SIGNIN_PER_ACCOUNT
from bot.staff.console import StaffConsole
from bot.staff.records import FileRecords, RedisRecords
from bot.web.app import create_app
from tests.conftest import OPEN_TIME, ROOT
from tests.standins import TelegramBotAPI
from tests.test_handoff import HOUSING_AR, UNSURE_AR, RecordingChannel, say, serving, user_text

PASSWORD = "correct horse battery"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def console_config(config: Config, tmp_path: Path) -> Config:
    handoff = config.handoff.model_copy(
        update={"staff_dir": tmp_path, "session_secret": "test-secret-" + "x" * 20}
    )
    return config.model_copy(update={"handoff": handoff})


async def accounts_with_staff(tmp_path: Path) -> Accounts:
    accounts = Accounts(FileRecords(tmp_path / "accounts.json"))
    await accounts.add("Amal", ["ar", "fr"], "staff", PASSWORD)
    await accounts.add("Boris", ["ru", "uk"], "staff", PASSWORD)
    return accounts


# -- accounts ----------------------------------------------------------------------------------


async def test_accounts_store_only_argon2_hashes_in_a_private_file(tmp_path: Path) -> None:
    accounts = await accounts_with_staff(tmp_path)
    stored = (tmp_path / "accounts.json").read_text()
    assert PASSWORD not in stored and "$argon2id$" in stored
    assert stat.S_IMODE((tmp_path / "accounts.json").stat().st_mode) == 0o600
    assert (await accounts.authenticate("amal", PASSWORD)) is not None  # names are case-insensitive
    assert await accounts.authenticate("Amal", "wrong password!") is None
    assert await accounts.authenticate("Nobody", PASSWORD) is None
    with pytest.raises(AccountError, match="already"):
        await accounts.add("AMAL", [], "staff", PASSWORD)
    with pytest.raises(AccountError, match="at least"):
        await accounts.add("Carla", [], "staff", "short")
    [amal, boris] = await accounts.all()
    assert (amal.name, amal.languages, boris.name) == ("Amal", ["ar", "fr"], "Boris")


async def test_accounts_in_redis_are_shared_by_workers(redis_server: str) -> None:
    name = f"guichet-test-{uuid.uuid4().hex}:staff:accounts"
    first = Accounts(RedisRecords(redis_server, name))
    second = Accounts(RedisRecords(redis_server, name))
    try:
        await first.add("Olena", ["uk"], "admin", PASSWORD)
        account = await second.authenticate("olena", PASSWORD)
        assert account is not None and account.admin and account.languages == ["uk"]
        await second.set_password("Olena", "another long password")
        assert (await first.get("Olena")).session_version == 2  # type: ignore[union-attr]
        await first.remove("Olena")
        assert await second.all() == []
    finally:
        await first.close()
        await second.close()


def test_guichet_staff_add_and_list(tmp_path: Path) -> None:
    env = {**os.environ, "GUICHET_STAFF_DIR": str(tmp_path)}
    env.pop("GUICHET_REDIS_URL", None)

    def guichet(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", "staff", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )

    added = guichet(
        "add", "Olena", "--languages", "uk,ru", "--role", "admin", "--password-stdin", stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    assert "Olena" in added.stdout
    refused = guichet("add", "Ivan", "--languages", "ukrainian", "--password-stdin", stdin=PASSWORD)
    assert refused.returncode == 2 and "language codes" in refused.stderr
    assert guichet("list").stdout.split() == ["Olena", "admin", "uk,ru"]


# -- sign-in, sessions, CSRF (HTTP level) ---------------------------------------------------------


@asynccontextmanager
async def console_client(
    engine: ConversationEngine, config: Config, tmp_path: Path, base_url: str = "http://guichet"
) -> AsyncIterator[tuple[httpx.AsyncClient, StaffConsole, Runtime]]:
    runtime = Runtime(config, engine)
    runtime.add_channel(RecordingChannel())
    console = StaffConsole(
        runtime,
        console_config(config, tmp_path),
        accounts=await accounts_with_staff(tmp_path),
        clock=lambda: OPEN_TIME,
    )
    app = create_app(runtime, staff=console)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        yield client, console, runtime


async def sign_in(client: httpx.AsyncClient, name: str = "Amal", password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/staff/signin")
    token = CSRF_INPUT.search(page.text)
    assert token
    return await client.post(
        "/staff/signin", data={"csrf": token.group(1), "name": name, "password": password}
    )


def csrf_of(page: httpx.Response) -> str:
    found = CSRF_INPUT.search(page.text)
    assert found, page.text
    return found.group(1)


async def test_nothing_answers_without_a_signed_in_staff_member(
    engine: ConversationEngine, config: Config, tmp_path: Path
) -> None:
    async with console_client(engine, config, tmp_path) as (client, _, runtime):
        await say(runtime, user_text("amal", UNSURE_AR))
        key = engine.key_for("test", "amal")
        page = await client.get("/staff/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/staff/signin"
        for path in ("/staff/queue", "/staff/events", f"/staff/c/{key}", f"/staff/c/{key}/live"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert "amal" not in response.text and UNSURE_AR not in response.text
        refused = await client.post(f"/staff/c/{key}/reply", data={"text": "hi"})
        assert refused.status_code == 401
        # A forged or expired cookie is no session either.
        client.cookies.set("guichet_staff", "eyJjc3JmIjoieCIsInN0YWZmIjoiQW1hbCJ9.forged", path="/staff")
        assert (await client.get("/staff/queue")).status_code == 401
        conversation = await engine.storage.get(key)
        assert conversation is not None and conversation.handoff and conversation.handoff.claimed_by is None


async def test_every_post_needs_the_sessions_csrf_token(
    engine: ConversationEngine, config: Config, tmp_path: Path
) -> None:
    async with console_client(engine, config, tmp_path) as (client, _, runtime):
        await say(runtime, user_text("amal", UNSURE_AR))
        key = engine.key_for("test", "amal")
        form_without = await client.post("/staff/signin", data={"name": "Amal", "password": PASSWORD})
        assert form_without.status_code == 403
        signed_in = await sign_in(client)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/staff/"
        page = await client.get(f"/staff/c/{key}")
        assert page.status_code == 200 and UNSURE_AR in page.text
        token = csrf_of(page)
        assert (await client.post(f"/staff/c/{key}/claim")).status_code == 403
        assert (await client.post(f"/staff/c/{key}/claim", data={"csrf": "forged"})).status_code == 403
        assert (
            await client.post(f"/staff/c/{key}/claim", headers={"x-csrf-token": "forged"})
        ).status_code == 403
        assert (await client.post("/staff/signout")).status_code == 403
        conversation = await engine.storage.get(key)
        assert conversation and conversation.handoff and conversation.handoff.claimed_by is None
        claimed = await client.post(f"/staff/c/{key}/claim", data={"csrf": token})
        assert claimed.status_code == 303
        conversation = await engine.storage.get(key)
        assert conversation and conversation.handoff and conversation.handoff.claimed_by == "Amal"
        # The token in a header works too (for scripts and fetch()).
        noted = await client.post(f"/staff/c/{key}/note", data={"text": "n"}, headers={"x-csrf-token": token})
        assert noted.status_code == 303


async def test_session_cookie_is_httponly_samesite_and_secure_over_https(
    engine: ConversationEngine, config: Config, tmp_path: Path
) -> None:
    async with console_client(engine, config, tmp_path, base_url="https://guichet.example") as (
        client,
        _,
        _r,
    ):
        response = await sign_in(client)
        cookie = response.headers["set-cookie"].lower()
        for flag in ("httponly", "samesite=lax", "secure", "path=/staff"):
            assert flag in cookie
        page = await client.get("/staff/")
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in page.headers["content-security-policy"]
    async with console_client(engine, config, tmp_path / "http") as (client, _, _r):
        assert "secure" not in (await sign_in(client)).headers["set-cookie"].lower()


async def test_sign_in_attempts_are_rate_limited(
    engine: ConversationEngine, config: Config, tmp_path: Path
) -> None:
    async with console_client(engine, config, tmp_path) as (client, _, _r):
        for _ in range(SIGNIN_PER_ACCOUNT):
            wrong = await sign_in(client, password="not the password")
            assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        blocked = await sign_in(client)
        assert blocked.status_code == 429 and "Too many sign-in attempts" in blocked.text
        assert (await client.get("/staff/queue")).status_code == 401
        # Another account is not blocked by the attempts on Amal's.
        assert (await sign_in(client, "Boris")).status_code == 303


async def test_a_new_password_ends_open_sessions(
    engine: ConversationEngine, config: Config, tmp_path: Path
) -> None:
    async with console_client(engine, config, tmp_path) as (client, console, _r):
        await sign_in(client)
        assert (await client.get("/staff/queue")).status_code == 200
        await console.accounts.set_password("Amal", "a brand new password")
        assert (await client.get("/staff/queue")).status_code == 401


# -- the whole handoff in a browser ---------------------------------------------------------------


async def sign_in_browser(context: BrowserContext, base_url: str, name: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{base_url}/staff/")
    assert page.url.endswith("/staff/signin")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]:has-text('Sign in')")
    await page.wait_for_url(f"{base_url}/staff/")
    # Set once; still there later proves the page was updated live, not reloaded.
    await page.evaluate("window.loadedOnce = true")
    return page


async def not_reloaded(page: Page) -> bool:
    return bool(await page.evaluate("window.loadedOnce === true"))


def user_reads(telegram: TelegramBotAPI, chat: int) -> list[str]:
    return [m["text"] for m in telegram.chat_history(chat) if m["from"]["is_bot"]]


@pytest.mark.browser
async def test_staff_take_over_answer_and_hand_back_in_a_browser(
    engine: ConversationEngine, config: Config, tmp_path: Path
) -> None:
    chat = 7001
    with TelegramBotAPI() as telegram:
        runtime = Runtime(config, engine)
        channel = TelegramChannel(
            runtime, telegram.token or "", api_url=telegram.base_url, per_chat_interval=0.05
        )
        runtime.add_channel(channel)
        console = StaffConsole(
            runtime,
            console_config(config, tmp_path),
            accounts=await accounts_with_staff(tmp_path),
            clock=lambda: OPEN_TIME,
        )
        async with serving(create_app(runtime, staff=console)) as base_url, async_playwright() as playwright:
            await asyncio.wait_for(channel.ready.wait(), 10)
            browser = await playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            try:
                amal_context, boris_context = await browser.new_context(), await browser.new_context()
                amal = await sign_in_browser(amal_context, base_url, "Amal")
                boris = await sign_in_browser(boris_context, base_url, "Boris")
                assert await amal.locator(".empty").first.inner_text() == "Nobody is waiting for a person."

                # A newcomer asks something the bot has no answer for, in Arabic.
                telegram.push_text(chat, UNSURE_AR, language_code="ar")
                await telegram.wait_for_messages(chat, 1, timeout=30)
                notice = engine.handoff_notice("ar", OPEN_TIME)
                assert user_reads(telegram, chat) == [notice]

                # It appears live in both queues, with who speaks Arabic.
                card = amal.locator(".card", has_text=UNSURE_AR)
                await card.wait_for(timeout=15_000)
                assert await not_reloaded(amal)
                assert "Bot unsure" in await card.inner_text()
                assert await card.locator(".speakers").inner_text() == "Speak it: Amal"
                assert await card.locator(".badge.lang.mine").count() == 1
                await boris.locator(".card", has_text=UNSURE_AR).wait_for(timeout=15_000)

                # Amal claims it; Boris sees the claim without reloading.
                await card.locator("a.open").click()
                await amal.wait_for_url(re.compile(r"/staff/c/"))
                assert UNSURE_AR in await amal.locator(".transcript").inner_text()
                await amal.click("#claim")
                await amal.locator(".flash", has_text="You have claimed").wait_for()
                claimed = boris.locator(".card", has_text=UNSURE_AR).locator(".claimed-by")
                await claimed.wait_for(timeout=15_000)
                assert await claimed.inner_text() == "Amal" and await not_reloaded(boris)

                # One click sends the curated answer in Arabic; then a free reply.
                await amal.click("button[data-intent=language_courses]")
                await amal.locator(".flash", has_text="Sent the curated answer").wait_for()
                await telegram.wait_for_messages(chat, 2, timeout=15)
                curated = engine.curated("language_courses", "ar", OPEN_TIME)
                assert user_reads(telegram, chat)[1].startswith(curated.text.strip())
                await amal.fill("#reply-text", "مرحبا، سأرسل لك العنوان الآن.")
                await amal.click("#send")
                await amal.locator(".flash", has_text="Sent.").wait_for()
                await telegram.wait_for_messages(chat, 3, timeout=15)
                assert user_reads(telegram, chat)[2] == "مرحبا، سأرسل لك العنوان الآن."
                transcript = amal.locator(".transcript")
                assert await transcript.locator(".turn.staff").count() == 2

                # The user answers: it reaches the console live, not the bot.
                telegram.push_text(chat, "شكرا جزيلا", language_code="ar")
                await transcript.locator(".turn.user", has_text="شكرا جزيلا").wait_for(timeout=15_000)
                assert len(telegram.sent_messages(chat)) == 3

                # Refused without a CSRF token, even with Amal's session.
                key = amal.url.rsplit("/", 1)[1]
                forged = await amal_context.request.post(
                    f"{base_url}/staff/c/{key}/reply", form={"text": "x"}
                )
                assert forged.status == 403
                anonymous = await playwright.request.new_context()
                refused = await anonymous.post(f"{base_url}/staff/c/{key}/close", form={"csrf": "x"})
                assert refused.status == 401
                await anonymous.dispose()

                # Close: the user is told, in Arabic, and is back with the bot.
                await amal.click("#close")
                await amal.wait_for_url(f"{base_url}/staff/")
                await telegram.wait_for_messages(chat, 4, timeout=15)
                closing = engine.catalogs.gettext(
                    "ar",
                    "This conversation with %(centre)s is closed. You are back with the assistant: "
                    "write your question any time.",
                    centre=config.organisation.centre_name,
                )
                assert user_reads(telegram, chat)[3] == closing
                await boris.locator(".card", has_text=UNSURE_AR).wait_for(state="detached", timeout=15_000)

                telegram.push_text(chat, HOUSING_AR, language_code="ar")
                await telegram.wait_for_messages(chat, 5, timeout=30)
                housing = engine.curated("housing_search", "ar", OPEN_TIME)
                assert user_reads(telegram, chat)[4].startswith(housing.text.strip())
            finally:
                await browser.close()
