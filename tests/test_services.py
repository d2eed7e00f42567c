"""The local services directory: files, opening hours, ranking, the chat, the CLI and /services.

Everything runs for real: the shipped demo directory and config.yml, the engine with the
embedded NLU, the Starlette app through httpx, and, end to end, the Telegram and WhatsApp
channels against the local stand-ins of tests/standins/.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from ruamel.yaml import YAML

from bot.config import Config
from bot.conversation import Role
from bot.engine import ConversationEngine
from bot.messages import INTENT_PAYLOAD, IncomingMessage, Kind, Location
from bot.runtime import Runtime
from bot.services import (
    Gazetteer,
    Point,
    Service,
    ServiceDirectory,
    ServicesError,
    distance_m,
    load_services,
    map_url,
)
from bot.services.describe import localized, status_text, week_text
from bot.web.app import create_app
from bot.web.services import ServicesPage
from tests.conftest import CONTENT_LANGUAGES, OPEN_TIME, ROOT

TALLINN = ZoneInfo("Europe/Tallinn")
_ids = itertools.count()


def at(*args: int) -> dt.datetime:
    """A moment on Tallinn's clock."""
    return dt.datetime(*args, tzinfo=TALLINN)


def service(**fields: Any) -> Service:
    """A synthetic service; every field can be overridden."""
    data: dict[str, Any] = {
        "id": "s",
        "name": {"en": "Service"},
        "topics": ["housing_search"],
        "address": "Somewhere 1, Tallinn",
        "latitude": 59.4370,
        "longitude": 24.7536,
        "hours": {"monday-friday": ["09:00-17:00"]},
        "languages": ["et"],
        "cost": "free",
        "description": {"en": "Helps."},
    }
    data.update(fields)
    return Service.model_validate(data)


def directory(*services: Service, holidays: tuple[dt.date, ...] = ()) -> ServiceDirectory:
    return ServiceDirectory(services, zone=TALLINN, public_holidays=holidays)


@pytest.fixture(scope="module")
def demo(config: Config) -> ServiceDirectory:
    topics = [path.stem for path in config.responses_dir.glob("*.yml")]
    return ServiceDirectory.from_config(config, topics=topics)


def text(user: str, body: str, *, hint: str | None = None) -> IncomingMessage:
    return IncomingMessage("test", user, Kind.TEXT, text=body, message_id=str(next(_ids)), language_hint=hint)


def location(user: str, latitude: float, longitude: float) -> IncomingMessage:
    return IncomingMessage("test", user, Kind.LOCATION, location=Location(latitude, longitude))


# -- the shipped demo directory -----------------------------------------------------------------


def test_demo_directory_is_complete_and_in_tallinn(demo: ServiceDirectory, config: Config) -> None:
    assert len(demo.services) >= 15
    assert {"housing_search", "language_courses", "job_search", "health_care", "residence_permit"} <= set(
        demo.topics
    )
    for each in demo.services:
        assert set(each.description) == set(CONTENT_LANGUAGES), each.id
        assert 59.35 < each.latitude < 59.50 and 24.55 < each.longitude < 24.95, each.id
    # One file per service area, each commented for admins.
    files = sorted((config.services_dir).glob("*.yml"))
    assert len(files) >= 5 and all(f.read_text(encoding="utf-8").startswith("#") for f in files)


def test_an_admin_adds_a_service_by_editing_one_file(config: Config, tmp_path: Path) -> None:
    for path in config.services_dir.glob("*.yml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    before = len(load_services(tmp_path))
    with (tmp_path / "language.yml").open("a", encoding="utf-8") as handle:
        handle.write(
            "\n  - id: new-language-club\n"
            "    name: {en: New Language Club}\n"
            "    topics: [language_courses]\n"
            "    address: Kopli 1, Tallinn\n"
            "    latitude: 59.45\n"
            "    longitude: 24.72\n"
            "    hours:\n"
            '      saturday: ["10:00-12:00"]\n'
            "    languages: [et, ar]\n"
            "    cost: free\n"
            "    description: {en: Conversation club.}\n"
        )
    after = load_services(tmp_path)
    assert len(after) == before + 1 and "new-language-club" in {s.id for s in after}


# -- files: every mistake with its file and line ----------------------------------------------

GOOD = """\
services:
  - id: club
    name: {en: Club}
    topics: [housing_search]
    address: Kopli 1, Tallinn
    latitude: 59.45
    longitude: 24.72
    hours:
      monday: ["09:00-17:00"]
    languages: [et]
    cost: free
    description:
      en: Helps.
"""


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (('["09:00-17:00"]', '["9-17"]'), 9, "HH:MM-HH:MM"),
        (("[housing_search]", "[housing_search, housing]"), 4, "unknown topic 'housing'"),
        (("    cost: free\n", "    cost: free\n    opening: yes\n"), 12, "Extra inputs"),
        (("      en: Helps.", "      xx: Helps."), 13, "'xx' is not a content language"),
        (("    languages: [et]", "    languages: [et, zz-qq]"), 10, "unknown language code"),
        (("      monday:", "      mondya:"), 9, "unknown day 'mondya'"),
        (("    latitude: 59.45", "    latitude: 159.45"), 6, "less than or equal to 90"),
        (("cost: free", "cost: cheap"), 11, "'free' or 'paid'"),
        (("    name: {en: Club}\n", "    name: {en: Club\n"), 4, "flow mapping on line 3"),
        (('    hours:\n      monday: ["09:00-17:00"]\n', ""), 2, "give the opening `hours`"),
        (
            ('      monday: ["09:00-17:00"]', '      monday-sunday: ["00:00-24:00"]'),
            2,
            "write `always_open: true`",
        ),
    ],
)
def test_mistakes_are_reported_with_file_and_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    path = tmp_path / "area.yml"
    assert change[0] in GOOD
    path.write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(ServicesError) as error:
        load_services(tmp_path, topics=["housing_search"], languages=CONTENT_LANGUAGES)
    assert f"{path}:{line}:" in str(error.value)
    assert message in str(error.value)


def test_the_error_names_the_service(tmp_path: Path) -> None:
    (tmp_path / "area.yml").write_text(GOOD.replace('"09:00-17:00"', '"17:00-09:00"'), encoding="utf-8")
    with pytest.raises(ServicesError, match=r"services\[0\] \(club\)\.hours\.monday"):
        load_services(tmp_path)


def test_a_service_id_is_used_once_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yml").write_text("# another area\n" + GOOD, encoding="utf-8")
    with pytest.raises(
        ServicesError,
        match=rf"{re.escape(str(tmp_path / 'b.yml'))}:3: id 'club' is already used at .*a\.yml:2",
    ):
        load_services(tmp_path)


def test_no_directory_means_no_services(tmp_path: Path) -> None:
    assert load_services(tmp_path / "missing") == []


# -- opening hours ------------------------------------------------------------------------------


def test_open_now_until_and_opens_next_with_a_lunch_break() -> None:
    one = service(hours={"monday-friday": ["08:30-12:00", "13:00-17:00"]})
    d = directory(one)
    catalogs_free = d.status(one, at(2026, 11, 18, 11, 0))
    assert catalogs_free.open and catalogs_free.until == at(2026, 11, 18, 12, 0)
    lunch = d.status(one, at(2026, 11, 18, 12, 30))
    assert not lunch.open and lunch.opens == at(2026, 11, 18, 13, 0)
    weekend = d.status(one, at(2026, 11, 21, 10, 0))
    assert weekend.opens == at(2026, 11, 23, 8, 30)


def test_holidays_exceptions_and_open_on_holidays() -> None:
    christmas = (dt.date(2026, 12, 24), dt.date(2026, 12, 25), dt.date(2026, 12, 26))
    usual = service(id="usual")
    short_day = service(id="short", exceptions={dt.date(2026, 12, 23): ["09:00-12:00"]})
    own_leave = service(id="leave", holidays=[dt.date(2026, 12, 28)])
    shelter = service(id="shelter", hours={"monday-sunday": ["08:00-22:00"]}, public_holidays=False)
    d = directory(usual, short_day, own_leave, shelter, holidays=christmas)
    assert d.status(usual, at(2026, 12, 23, 13, 0)).open
    assert d.status(short_day, at(2026, 12, 23, 13, 0)).opens == at(2026, 12, 28, 9, 0)
    assert d.status(own_leave, at(2026, 12, 24, 10, 0)).opens == at(2026, 12, 29, 9, 0)
    assert d.status(shelter, at(2026, 12, 25, 10, 0)).open


def test_time_zone_is_the_centres_whatever_the_season() -> None:
    one = service()
    d = directory(one)
    # Winter: Tallinn is UTC+2, so 06:30 UTC is 08:30 (closed) and 07:30 UTC is 09:30 (open).
    assert not d.status(one, dt.datetime(2026, 11, 23, 6, 30, tzinfo=dt.UTC)).open
    assert d.status(one, dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC)).open
    # Summer: UTC+3, so 06:30 UTC is 09:30 (open).
    assert d.status(one, dt.datetime(2026, 6, 15, 6, 30, tzinfo=dt.UTC)).open


def test_open_past_midnight(demo: ServiceDirectory, config: Config) -> None:
    from bot.i18n import Catalogs

    catalogs = Catalogs(CONTENT_LANGUAGES)
    [pharmacy] = [s for s in demo.services if s.id == "late-pharmacy-kesklinn"]
    friday_night = at(2026, 11, 20, 23, 30)
    status = demo.status(pharmacy, friday_night)
    assert status.open and status.until == at(2026, 11, 21, 1, 0)
    assert (
        status_text(status, "fr", TALLINN, friday_night, catalogs)
        == "Ouvert maintenant, jusqu'à samedi 01:00"
    )
    after_midnight = at(2026, 11, 21, 0, 30)
    assert status_text(demo.status(pharmacy, after_midnight), "en", TALLINN, after_midnight, catalogs) == (
        "Open now, until 01:00"
    )
    closed = at(2026, 11, 21, 2, 0)
    assert status_text(demo.status(pharmacy, closed), "uk", TALLINN, closed, catalogs) == (
        "Зараз зачинено, відчиняється сьогодні о 08:00"
    )


def test_status_in_the_readers_language(config: Config) -> None:
    from bot.i18n import Catalogs

    catalogs = Catalogs(CONTENT_LANGUAGES)
    one = service()
    shelter = service(id="night", hours={}, always_open=True)
    d = directory(one, shelter)
    saturday = at(2026, 11, 21, 20, 0)
    assert status_text(d.status(one, saturday), "en", TALLINN, saturday, catalogs) == (
        "Closed now, opens Monday 09:00"
    )
    assert status_text(d.status(one, saturday), "ar", TALLINN, saturday, catalogs) == (
        "مغلق الآن، يفتح الاثنين 09:00"
    )
    assert (
        status_text(d.status(shelter, saturday), "ru", TALLINN, saturday, catalogs) == "Открыто круглосуточно"
    )


def test_the_week_in_one_line() -> None:
    hours = service(hours={"monday-thursday": ["09:00-17:00"], "friday": ["09:00-15:00"]}).weekly
    assert week_text(hours, "en") == "Mon–Thu 09:00–17:00; Fri 09:00–15:00"
    assert week_text(hours, "fr") == "lun.–jeu. 09:00–17:00; ven. 09:00–15:00"


# -- ranking ------------------------------------------------------------------------------------


def test_the_users_language_first_then_open_now_then_opening_soonest() -> None:
    wednesday = at(2026, 11, 18, 11, 0)
    closed_arabic = service(id="a-closed", languages=["ar"], hours={"thursday": ["09:00-17:00"]})
    open_arabic = service(id="b-open", languages=["ar", "en"], hours={"wednesday": ["10:00-13:00"]})
    open_late = service(id="c-open-late", languages=["et"], hours={"wednesday": ["09:00-19:00"]})
    open_short = service(id="d-open-short", languages=["et"], hours={"wednesday": ["09:00-12:00"]})
    opens_friday = service(id="e-friday", languages=["et"], hours={"friday": ["09:00-17:00"]})
    d = directory(opens_friday, open_short, closed_arabic, open_late, open_arabic)
    ranked = [m.service.id for m in d.find(now=wednesday, lang="ar")]
    assert ranked == ["b-open", "a-closed", "c-open-late", "d-open-short", "e-friday"]
    assert [m.service.id for m in d.find(now=wednesday, lang="ar", open_now=True)] == [
        "b-open",
        "c-open-late",
        "d-open-short",
    ]
    assert [m.service.id for m in d.find(now=wednesday, spoken="ar")] == ["b-open", "a-closed"]


def test_a_ukrainian_speaker_is_not_matched_with_russian_only_services() -> None:
    russian = service(id="ru-only", languages=["ru", "et"])
    ukrainian = service(id="uk-too", languages=["uk", "et"], hours={"saturday": ["10:00-12:00"]})
    [first, second] = directory(russian, ukrainian).find(now=at(2026, 11, 18, 11, 0), lang="uk")
    assert (first.service.id, first.speaks, second.speaks) == ("uk-too", True, False)


def test_nearest_first_by_great_circle_distance() -> None:
    kalamaja, lasnamae, nomme = Point(59.4463, 24.7386), Point(59.4340, 24.8450), Point(59.3840, 24.6860)
    assert 82_000 < distance_m(Point(59.4370, 24.7536), Point(60.1699, 24.9384)) < 83_000  # Tallinn-Helsinki
    services = [
        service(id=name, latitude=p.latitude, longitude=p.longitude)
        for name, p in (("kalamaja", kalamaja), ("lasnamae", lasnamae), ("nomme", nomme))
    ]
    d = directory(*services)
    near_kopli = d.find(now=at(2026, 11, 18, 11, 0), near=Point(59.4600, 24.6820))
    assert [m.service.id for m in near_kopli] == ["kalamaja", "nomme", "lasnamae"]
    assert near_kopli[0].distance_m == pytest.approx(distance_m(Point(59.4600, 24.6820), kalamaja))
    assert map_url(kalamaja) == (
        "https://www.openstreetmap.org/?mlat=59.44630&mlon=24.73860#map=17/59.44630/24.73860"
    )


def test_descriptions_fall_back_like_answers(config: Config) -> None:
    texts = {"ru": "По-русски", "en": "In English", "fr": "En français"}
    assert localized(texts, config.languages.chain("uk")) == "In English"  # never Russian for uk
    assert localized(texts, config.languages.chain("ar")) == "En français"
    assert localized(texts, config.languages.chain("ru")) == "По-русски"
    assert localized({"et": "Eesti keeles"}, config.languages.chain("nl")) == "Eesti keeles"


# -- typed places -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "place"),
    [
        ("Lasnamäe", "Lasnamäe"),
        ("lasnamae", "Lasnamäe"),
        ("я живу в Ласнамяэ", "Lasnamäe"),
        ("10412", "Kalamaja"),
        ("my postcode is 13417", "Lasnamäe"),
        ("Põhja-Tallinn", "Põhja-Tallinn"),
        ("pohja tallinn", "Põhja-Tallinn"),
        ("old town", "Vanalinn"),
    ],
)
def test_districts_and_postcodes_are_found(config: Config, typed: str, place: str) -> None:
    found = Gazetteer(config.services.gazetteer).find(typed)
    assert found is not None and found.place is not None and found.place.name == place


@pytest.mark.parametrize(
    "typed",
    ["where can I find a flat in Kalamaja for my family please", "центр занятости", "hello", "123456"],
)
def test_other_messages_are_not_places(config: Config, typed: str) -> None:
    assert Gazetteer(config.services.gazetteer).find(typed) is None


def test_an_unknown_postcode_is_recognised_as_one(config: Config) -> None:
    found = Gazetteer(config.services.gazetteer).find("99999")
    assert found is not None and found.place is None and found.postcode == "99999"


# -- in the chat --------------------------------------------------------------------------------


async def test_the_housing_answer_carries_the_housing_services(engine: ConversationEngine) -> None:
    replies = await engine.handle(text("housing-fr", "je cherche un appartement a louer"))
    assert replies[0].text == engine.curated("housing_search", "fr").text
    listing = replies[1]
    assert listing.text.startswith("Des lieux qui peuvent vous aider :")
    tenants = listing.text.index("1. Point conseil aux locataires")
    social = listing.text.index("2. Centre social de Tallinn-Nord")
    assert tenants < social  # both open; the one open until 18:00 before the one closing at 12:00
    assert "Ouvert maintenant, jusqu'à 18:00" in listing.text
    assert "Foyer de nuit" not in listing.text and "3." not in listing.text
    assert listing.request_location


async def test_arabic_language_courses_lists_where_arabic_is_spoken_with_arabic_hours(
    engine: ConversationEngine,
) -> None:
    replies = await engine.handle(text("courses-ar", "وين اقدر اتعلم اللغة الاستونية", hint="ar"))
    assert replies[0].text == engine.curated("language_courses", "ar").text
    listing = replies[1].text
    assert listing.startswith("أماكن يمكنها مساعدتك:")
    first, second, third = (listing.index(f"{n}. ") for n in (1, 2, 3))
    assert "للناطقين بالعربية" in listing[first:second]  # Estonian for Arabic speakers, open now
    assert "مفتوح الآن حتى 13:00" in listing[first:second]
    assert "مغلق الآن، يفتح الخميس 17:00" in listing[second:third]  # the language café, Arabic spoken
    assert "اللغات: العربية" in listing[first:second]


async def test_a_topic_button_lists_its_services_too(engine: ConversationEngine) -> None:
    replies = await engine.handle(
        IncomingMessage(
            "test", "b-uk", Kind.BUTTON, payload=INTENT_PAYLOAD + "mental_health", language_hint="uk"
        )
    )
    assert replies[1].text.startswith("Місця, де вам можуть допомогти:")
    assert "Центр психосоціальної підтримки «Тиха гавань»" in replies[1].text


async def test_topics_without_services_get_no_listing(engine: ConversationEngine) -> None:
    replies = await engine.handle(text("thanks", "thank you very much"))
    assert replies and not any(
        r.text.startswith("Places that can help you:") or r.request_location for r in replies
    )


async def test_a_shared_location_lists_the_nearest_for_the_last_topic(engine: ConversationEngine) -> None:
    await engine.handle(IncomingMessage("test", "loc", Kind.BUTTON, payload=INTENT_PAYLOAD + "health_care"))
    [nearest] = await engine.handle(location("loc", 59.4040, 24.6900))  # Mustamäe
    assert nearest.text.startswith("Nearest places for ")
    assert nearest.text.index("Mustamäe Hospital Emergency Department") < nearest.text.index(
        "Kalamaja Family Health Centre"
    )
    assert re.search(r"1\. Mustamäe Hospital Emergency Department \(\d+ m\)", nearest.text)
    assert all(link.url.startswith("https://www.openstreetmap.org/?mlat=") for link in nearest.links)
    assert nearest.links[0].label == "Map: Mustamäe Hospital Emergency Department"
    conversation = await engine.storage.get(engine.key_for("test", "loc"))
    assert conversation is not None
    stored = " ".join(turn.text for turn in conversation.transcript)
    assert "59.40" not in stored and "24.69" not in stored  # where the user is, is not stored


async def test_a_location_without_a_topic_lists_the_nearest_of_any_kind(engine: ConversationEngine) -> None:
    [nearest] = await engine.handle(location("loc-any", 59.4455, 24.7375))  # at the desk, in Kalamaja
    assert nearest.text.startswith("Nearest places:")
    assert len(nearest.links) == engine.config.services.max_listed


async def test_a_typed_district_or_postcode_lists_the_nearest(engine: ConversationEngine) -> None:
    await engine.handle(
        IncomingMessage(
            "test", "typed", Kind.BUTTON, payload=INTENT_PAYLOAD + "housing_search", language_hint="ru"
        )
    )
    [nearest] = await engine.handle(text("typed", "Ласнамяэ", hint="ru"))
    assert nearest.text.startswith("Ближайшие места по теме «")
    assert "в районе Lasnamäe:" in nearest.text and "км)" in nearest.text
    [unknown] = await engine.handle(text("typed", "99999", hint="ru"))
    assert unknown.text.startswith("Я не знаю почтовый индекс 99999.") and unknown.request_location


async def test_a_place_never_delays_the_emergency_answer(engine: ConversationEngine) -> None:
    await engine.handle(text("fire", "ищу квартиру", hint="ru"))
    replies = await engine.handle(text("fire", "пожар Каламая помогите", hint="ru"))
    assert replies[0].urgent and "112" in replies[0].text


async def test_while_a_person_has_taken_over_a_location_goes_to_them(engine: ConversationEngine) -> None:
    await engine.handle(text("staffed", "i want to talk to a human"))
    [reply] = await engine.handle(location("staffed", 59.44, 24.74))
    assert "Nearest" not in reply.text
    conversation = await engine.storage.get(engine.key_for("test", "staffed"))
    assert conversation is not None and conversation.transcript[-2].text == "[location]"


@pytest.mark.parametrize("where", [Location(float("nan"), 24.7), Location(95.0, 24.7), None])
async def test_an_unusable_location_gets_a_polite_answer(
    engine: ConversationEngine, where: Location | None
) -> None:
    replies = await engine.handle(IncomingMessage("test", f"bad-{where}", Kind.LOCATION, location=where))
    assert len(replies) == 1 and replies[0].text and not replies[0].links


async def test_the_last_topic_is_remembered_as_an_event(engine: ConversationEngine) -> None:
    await engine.handle(text("remember", "i am looking for a job"))
    conversation = await engine.storage.get(engine.key_for("test", "remember"))
    assert conversation is not None
    events = [t for t in conversation.transcript if t.role is Role.EVENT and t.text == "services"]
    assert [e.intent for e in events] == ["job_search"]


# -- the terminal -------------------------------------------------------------------------------


def guichet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_services_list_in_the_terminal() -> None:
    result = guichet("services", "list", "--topic", "language_courses", "--lang", "ar")
    assert result.returncode == 0, result.stderr
    ids = re.findall(r"^(\S+)  ", result.stdout, flags=re.MULTILINE)
    assert ids == ["arabic-estonian-kristiine", "language-cafe-lasnamae"]
    assert "العربية" in result.stdout
    assert result.stderr.strip() == "2 of 22 services"


def test_services_list_open_now_shows_only_open_services() -> None:
    result = guichet("services", "list", "--open-now", "--near", "Kopli")
    assert result.returncode == 0, result.stderr
    statuses = [line.strip() for line in result.stdout.splitlines() if "·" in line and "Tallinn" not in line]
    assert statuses and all(s.startswith(("Open now", "Open day and night")) for s in statuses)
    distances = [float(d) for d in re.findall(r"\((\d+(?:\.\d)?) km\)", result.stdout)]
    assert distances == sorted(distances)


def test_services_list_reports_mistakes_with_file_and_line(tmp_path: Path) -> None:
    services = tmp_path / "services"
    services.mkdir()
    (services / "area.yml").write_text(GOOD.replace("[housing_search]", "[housing]"), encoding="utf-8")
    yaml = YAML(typ="safe")
    raw = yaml.load((ROOT / "config.yml").read_text(encoding="utf-8"))
    raw["services"]["directory"] = str(services)
    raw["responses_dir"] = str(ROOT / "responses")
    raw["intents_dir"] = str(ROOT / "intents")
    config = tmp_path / "config.yml"
    with config.open("w", encoding="utf-8") as handle:
        yaml.dump(raw, handle)
    result = guichet("--config", str(config), "services", "list")
    assert result.returncode == 2
    assert (
        f"{services / 'area.yml'}:4: services[0] (club).topics[0]: unknown topic 'housing'" in result.stderr
    )


def test_services_list_rejects_an_unknown_topic_and_place() -> None:
    assert "no service for topic 'housing'" in guichet("services", "list", "--topic", "housing").stderr
    assert "not in the gazetteer" in guichet("services", "list", "--near", "Mars").stderr


# -- the /services page -------------------------------------------------------------------------


@pytest.fixture
async def web(engine: ConversationEngine) -> Any:
    app = create_app(Runtime(engine.config, engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guichet") as client:
        yield client


def service_names(page: str) -> list[str]:
    return re.findall(r'<article class="service" id="([^"]+)"', page)


async def test_the_page_filters_by_topic_and_language(web: httpx.AsyncClient) -> None:
    page = await web.get("/services", params={"lang": "uk", "topic": "language_courses", "spoken": "ar"})
    assert page.status_code == 200
    assert '<html lang="uk" dir="ltr">' in page.text
    # Only where Arabic is spoken; the café, where Ukrainian is spoken too, first for this reader.
    assert service_names(page.text) == ["language-cafe-lasnamae", "arabic-estonian-kristiine"]
    assert '<option value="language_courses" selected>' in page.text
    assert "<script" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


async def test_the_page_speaks_the_readers_language(web: httpx.AsyncClient) -> None:
    arabic = await web.get("/services", headers={"accept-language": "ar-EG,ar;q=0.9,en;q=0.5"})
    assert '<html lang="ar" dir="rtl">' in arabic.text and "الخدمات المحلية" in arabic.text
    everything = service_names(arabic.text)
    assert len(everything) >= 15
    # Services speaking the reader's language come first.
    speaks_arabic = {
        "arabic-estonian-kristiine",
        "language-cafe-lasnamae",
        "safe-harbour-support",
        "legal-clinic-kalamaja",
    }
    assert set(everything[: len(speaks_arabic)]) == speaks_arabic


async def test_the_page_orders_by_distance_from_a_typed_district(web: httpx.AsyncClient) -> None:
    page = await web.get("/services", params={"lang": "en", "topic": "health_care", "near": "Mustamäe"})
    assert service_names(page.text)[0] == "emergency-department-mustamae"
    assert '<span class="distance">' in page.text
    unknown = await web.get("/services", params={"lang": "en", "near": "Atlantis"})
    assert "I do not know the place Atlantis." in unknown.text
    assert len(service_names(unknown.text)) >= 15


async def test_odd_filters_are_ignored_politely(web: httpx.AsyncClient) -> None:
    page = await web.get(
        "/services", params={"lang": "xx", "topic": "<script>", "spoken": "zz", "near": "x" * 500}
    )
    assert page.status_code == 200 and len(service_names(page.text)) >= 15
    assert "<script>" not in page.text


async def test_the_brochure_has_one_sheet_per_language(web: httpx.AsyncClient) -> None:
    brochure = await web.get("/services/brochure", params={"lang": "fr"})
    sheets = re.findall(r'<section class="sheet" lang="(\w+)" dir="(\w+)">', brochure.text)
    assert sheets == [(lang, "rtl" if lang == "ar" else "ltr") for lang in CONTENT_LANGUAGES]
    assert brochure.text.count('<article class="service"') == len(CONTENT_LANGUAGES) * 22
    one_topic = await web.get("/services/brochure", params={"topic": "housing_search"})
    assert "Finding" not in one_topic.text and "Bring your contract" in one_topic.text  # with descriptions
    css = await web.get("/services/static/services.css")
    assert css.status_code == 200 and "@media print" in css.text


async def test_page_status_uses_the_clock(engine: ConversationEngine) -> None:
    guide = engine.services
    assert guide is not None
    page = ServicesPage(guide, engine.answers, engine.config, engine.catalogs, clock=lambda: OPEN_TIME)
    app = create_app(Runtime(engine.config, engine), page.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guichet") as client:
        reply = await client.get("/services", params={"lang": "en", "topic": "bank_account"})
    assert "Open now, until 18:00" in reply.text


# -- end to end: Telegram and WhatsApp locations ------------------------------------------------


async def test_a_telegram_location_gets_the_nearest_services(engine: ConversationEngine) -> None:
    from tests.standins import TelegramBotAPI, location_content
    from tests.test_telegram import polling

    chat = 8101
    with TelegramBotAPI() as telegram:
        async with polling(engine, telegram) as bot:
            answer = await bot.say(chat, "je cherche un appartement a louer", "fr", count=2)
            assert any(m["text"].startswith("Des lieux qui peuvent vous aider :") for m in answer)
            [offer] = [m for m in telegram.sent_messages(chat) if "keyboard" in m.get("reply_markup", {})]
            [[button]] = offer["reply_markup"]["keyboard"]
            assert button == {
                "text": engine.catalogs.gettext("fr", "Share my location"),
                "request_location": True,
            }
            nearest = await bot.answer(
                chat,
                lambda: telegram.push_message(
                    chat, location=location_content(59.4340, 24.8450), language_code="fr"
                ),
            )
    reading = nearest[0]["text"]
    assert reading.startswith("Les lieux les plus proches pour « Logement » :")
    assert reading.index("Point conseil aux locataires") < reading.index("Centre social de Tallinn-Nord")
    urls = [e["url"] for message in nearest for e in message.get("entities", []) if e["type"] == "text_link"]
    assert urls and all(u.startswith("https://www.openstreetmap.org/?mlat=") for u in urls)


async def test_a_whatsapp_location_gets_the_nearest_services(engine: ConversationEngine) -> None:
    from tests.standins import GraphAPI, media_message_payload
    from tests.test_whatsapp import read, running

    user = "37255500042"
    with GraphAPI() as graph:
        async with running(engine, graph) as bot:
            answered = await bot.say(user, "how do i find a job here")
            assert any(
                body.get("interactive", {}).get("type") == "location_request_message" for body in answered
            )
            before = len(graph.sent_to(user))
            response = await bot.deliver(
                media_message_payload(user, "location", latitude=59.4465, longitude=24.7290)
            )
            assert response.status_code == 200
            nearest = graph.sent_to(user)[before:]
    reading = read(nearest)
    assert reading.startswith("Nearest places for ")
    assert "Newcomers' House" in reading and "Tallinn Job Centre" in reading
    assert "https://www.openstreetmap.org/?mlat=" in reading
