"""``/services`` in a real headless Chromium, with JavaScript off: filters, languages, print.

The app is served by uvicorn on 127.0.0.1; Playwright drives /usr/bin/chromium. The test also
refreshes docs/services.png, the screenshot shown in the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import async_playwright

from bot.engine import ConversationEngine
from bot.runtime import Runtime
from bot.web.app import create_app
from bot.web.services import ServicesPage
from tests.conftest import CONTENT_LANGUAGES, OPEN_TIME, ROOT
from tests.standins import BackgroundServer

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
SCREENSHOT = ROOT / "docs" / "services.png"
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


@pytest.fixture
def base_url(engine: ConversationEngine) -> Iterator[str]:
    """The whole app, with the page's clock on a Wednesday morning (the demo centre is open)."""
    assert engine.services is not None
    page = ServicesPage(
        engine.services, engine.answers, engine.config, engine.catalogs, clock=lambda: OPEN_TIME
    )
    app = create_app(Runtime(engine.config, engine), page.routes())
    with BackgroundServer(app, name="services-page") as server:
        yield server.url


@pytest.mark.browser
async def test_services_page_filters_and_prints_without_javascript(base_url: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(java_script_enabled=False, viewport=PHONE)
            page = await context.new_page()
            await page.goto(f"{base_url}/services?lang=en")
            assert await page.locator("h1").inner_text() == "Local services"
            assert await page.locator("article.service").count() >= 15

            # Filter by topic and spoken language with the plain GET form.
            await page.select_option("select[name=topic]", "language_courses")
            await page.select_option("select[name=spoken]", "ar")
            await page.click("button[type=submit]")
            await page.wait_for_url(re.compile(r"topic=language_courses&spoken=ar"))
            cards = page.locator("article.service")
            assert await cards.count() == 2
            for index in range(2):
                assert "Arabic" in await cards.nth(index).locator(".languages").inner_text()
            first = cards.first
            assert await first.locator("h2").inner_text() == "Estonian for Arabic Speakers, Kristiine"
            assert await first.locator(".status").inner_text() == "Open now, until 13:00"

            # Switch the page to Arabic: right to left, filters kept.
            await page.click("nav.languages a[hreflang=ar]")
            await page.wait_for_url(re.compile(r"lang=ar"))
            assert await page.locator("html").get_attribute("dir") == "rtl"
            assert await page.locator("h1").inner_text() == "الخدمات المحلية"
            assert await page.locator("select[name=topic]").input_value() == "language_courses"
            assert await cards.first.locator(".status").inner_text() == "مفتوح الآن حتى 13:00"

            # Nearest to a typed district, in English again, for the README screenshot.
            await page.goto(f"{base_url}/services?lang=en&topic=language_courses")
            await page.fill("input[name=near]", "Lasnamäe")
            await page.click("button[type=submit]")
            await page.wait_for_url(re.compile(r"near=Lasnam"))
            assert await cards.first.locator("h2").inner_text() == "Lasnamäe Language Café 2.1 km"
            # The form is usable with a thumb: controls at least 40 px high, nothing wider than the phone.
            for control in ("select[name=topic]", "input[name=near]", "button[type=submit]"):
                box = await page.locator(control).bounding_box()
                assert box is not None and box["height"] >= 40 and box["x"] + box["width"] <= PHONE["width"]
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert SCREENSHOT.stat().st_size > 10_000

            # Printed: no form, no language bar.
            await page.emulate_media(media="print")
            assert await page.locator("form.filters").is_hidden()
            assert await page.locator("nav.languages").is_hidden()

            # The brochure prints one A4 page per language.
            brochure = await context.new_page()
            await brochure.goto(f"{base_url}/services/brochure")
            assert await brochure.locator("section.sheet").count() == len(CONTENT_LANGUAGES)
            pdf = await brochure.pdf(format="A4")
            assert len(_PDF_PAGE.findall(pdf)) == len(CONTENT_LANGUAGES)
            await context.close()
        finally:
            await browser.close()
