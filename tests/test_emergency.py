"""The emergency detector: recall on every emergency we wrote down, few false alarms, never a crash."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nlu.emergency import DEFAULT_LEXICON, EmergencyDetector, EmergencyMatch

DATA = Path(__file__).parent / "data"
MAX_FALSE_ALARM_RATE = 0.02


def _lines(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _emergencies(path: Path) -> list[str]:
    return [line["text"] for line in _lines(path) if line["intent"] == "emergency"]


def _non_emergencies() -> list[str]:
    """Every line that is not an emergency: held-out topics, out-of-scope, hard negatives."""
    paths = [
        *sorted((DATA / "heldout").glob("*.jsonl")),
        DATA / "out_of_scope.jsonl",
        DATA / "emergency.jsonl",
    ]
    return [line["text"] for path in paths for line in _lines(path) if line["intent"] != "emergency"]


@pytest.fixture(scope="module")
def detector() -> EmergencyDetector:
    return EmergencyDetector.from_file()


def _misses(detector: EmergencyDetector, texts: list[str]) -> list[str]:
    return [text for text in texts if detector.detect(text) is None]


def test_recall_is_total_on_our_emergency_set(detector: EmergencyDetector) -> None:
    texts = _emergencies(DATA / "emergency.jsonl")
    assert len(texts) >= 7 * 15 + 8 * 3
    assert _misses(detector, texts) == []


def test_recall_is_total_on_heldout_emergencies(detector: EmergencyDetector) -> None:
    texts = _emergencies(DATA / "heldout" / "emergency.jsonl")
    assert len(texts) >= 49
    assert _misses(detector, texts) == []


def test_recall_is_total_on_unseen_language_emergencies(detector: EmergencyDetector) -> None:
    texts = _emergencies(DATA / "unseen_languages.jsonl")
    assert len(texts) >= 8 * 2
    assert _misses(detector, texts) == []


def test_false_alarms_stay_under_two_percent(detector: EmergencyDetector) -> None:
    texts = _non_emergencies()
    alarms = [(text, detector.detect(text)) for text in texts if detector.detect(text) is not None]
    assert len(alarms) <= MAX_FALSE_ALARM_RATE * len(texts), alarms


def test_hard_negatives_are_mostly_recognised_as_safe(detector: EmergencyDetector) -> None:
    texts = [
        line["text"] for line in _lines(DATA / "emergency.jsonl") if line["slice"] == "emergency_negative"
    ]
    assert len(texts) >= 7 * 15
    assert len([text for text in texts if detector.detect(text)]) <= MAX_FALSE_ALARM_RATE * len(texts)


# Misses found while building the lexicon, each fixed by a phrase, a folding rule or the matcher.
FIXED_MISSES = [
    ("i don't want to live anymore", "suicide"),  # the apostrophe used to split "don" + "t"
    ("jai envie den finir", "suicide"),  # elision typed without apostrophe
    ("ana 3ayez amoot msh 2adra akamel", "suicide"),  # Arabizi "oo" for "ou"
    ("за мною йде якийсь чоловік від зупинки", "threat"),  # word order
    ("за мной идет мужчина от остановки, мне страшно", "threat"),
    ("Ce soir il m'a encore frappée et il dit qu'il me renvoie au pays", "violence"),  # words in between
    ("mon ex m'a menacée de mort, il est devant la porte", "threat"),  # "-ée" must stay a prefix match
    ("Vanavond sloeg hij me weer en zei dat hij me terugstuurt", "violence"),  # Dutch inversion
    ("mon fils a bu un produit menager, il vomit", "medical"),
    ("my son drank something from the bottle under the sink", "medical"),
    ("ik kan niet meer, ik heb de pillen al in mijn hand", "suicide"),
    ("ne mozhu bilshe, tabletky vzhe v rutsi", "suicide"),  # transliterated Ukrainian
    ("on skazal chto ub'et menya", "threat"),  # the soft sign typed as an apostrophe
    ("do mene v kvartyru khtos vlamavsia, v noho nizh", "threat"),
    ("fama wa7ed dkhal l dar 3ando mous", "violence"),  # Tunisian Arabizi
    ("sa7bi 5da bzaf dyal l7bob w mab9ach kayfi9", "medical"),  # Moroccan Arabizi: pills, not waking
    ("khti akhad 7boob kteer w ma 3am yfi2", "medical"),
    ("الحقوووني", "danger"),  # repeated Arabic letters
    ("علقانين بالطابق الخامس وفي دخان", "fire"),  # the conjunction و joined to the next word
    ("mi pareja me está golpeando, ayuda", "violence"),
    ("köök põlelb apppi", "danger"),  # typo on a short word; the cry for help still counts
    ("somone is trying to brake into my apartment", "threat"),
    ("a man keeps our passports and won't let us leave the house", "trafficking"),
    ("she cut her wrists", "suicide"),
    ("вона порізала вени", "suicide"),
    ("there are flames coming out of the kitchen", "fire"),
    ("сосед лежит на полу и не отвечает", "medical"),
    ("I was hit by a car", "medical"),
    # Phrasings missed by blind probes and by intents/*/emergency.yml, then added to the lexicon.
    ("my neighbour is screaming and i hear him beating his wife", "violence"),
    ("he pushed me down the stairs", "violence"),
    ("i took 20 paracetamol", "medical"),
    ("i am hiding in the bathroom he is looking for me", "violence"),
    ("I am going to jump", "suicide"),
    ("j'ai pris toute la boite de doliprane", "medical"),
    ("mon fils est tout bleu il respire mal", "medical"),
    ("hij heeft me geduwd van de trap", "violence"),
    ("ik heb alle pillen genomen", "medical"),
    ("كسر ايدي وهلق عم يدق عالباب", "violence"),
    ("ibni wa9e3 w ma kayt7errekch", "medical"),
    ("я выпила все таблетки", "medical"),
    ("он сказал что зарежет меня", "violence"),
    ("ta lõi mul pea lõhki", "violence"),
    ("laps on sinine", "medical"),
    ("my husband just threw boiling water on me", "violence"),
    ("nobody would miss me if i was gone", "suicide"),
    ("ma fille a mangé de la mort aux rats", "medical"),
    ("ze heeft haar polsen doorgesneden", "suicide"),
    ("ما حدا رح يشتاقلي اذا مت", "suicide"),
    ("jouzi kabb 3alayi may sekhne", "violence"),
    ("муж облил меня кипятком", "violence"),
    ("keegi ei igatseks mind", "suicide"),
    ("ya vahitna i duzhe krovyt", "medical"),
    ("ضربوني وسرقوا تلفوني", "violence"),
    ("أفكار انتحارية ما عم تروح", "suicide"),
    ("fi wa7ed la7e2ni", "threat"),
    ("3tqoni 3afakom", "danger"),
    ("the man who brought me here keeps my documents and i have to sleep with clients", "trafficking"),
    ("mijn dochter is meegenomen door een man en ik kan haar niet vinden", "trafficking"),
    ("мою дочь увел какой-то мужчина, не могу ее найти", "trafficking"),
    ("mu tütre viis keegi mees ära ja ma ei leia teda", "trafficking"),
    ("üks mees tuleb mul kuni koduni järel", "threat"),
    ("ya khochu pomeryty", "suicide"),
    ("i swallowed a whole pack of sleeping pills", "medical"),
    ("y a des flammes dans la cuisine", "fire"),
    ("ik ga mezelf vanavond van het leven beroven", "suicide"),
    ("رفيقي واقع عالأرض وما عم يرد", "medical"),
    ("я випила цілу пачку снодійного", "medical"),
    ("toanaaber lamab põrandal ja ei vasta", "medical"),
    ("mein freund liegt am boden und antwortet nicht", "medical"),
    ("my son is having an asthma attack and the inhaler doesnt work", "medical"),
    ("someone broke the window and is inside", "threat"),
    ("my dad is shaking and foaming at the mouth", "medical"),
    ("i have the rope ready", "suicide"),
    ("у мами інсульт", "medical"),
    ("laps kukkus aknast alla", "medical"),
    ("meu filho caiu e não acorda", "medical"),
    ("chcę się zabić", "suicide"),
]


@pytest.mark.parametrize(("text", "category"), FIXED_MISSES)
def test_fixed_misses_stay_fixed(detector: EmergencyDetector, text: str, category: str) -> None:
    match = detector.detect(text)
    assert match is not None
    assert match.category == category


# False alarms found along the way: real words one typo or one fold away from a danger word.
FIXED_FALSE_ALARMS = [
    "mijn bankpas is gestolen, hoe blokkeer ik hem",  # gestoken (stabbed)
    "ik heb gisteren in het busstation geslapen",  # geslagen (beaten)
    "waar kan ik naar een huisarts",  # "naar" folded to Arabizi "nar" (fire)
    "quelqu'un peut me rappeler ?",  # "rape*"
    "ищу работу на стройкэ",  # "stroke"
    "mon patron viole mes droits",  # violée
    "хто виграє чемпіонат світу",  # вмирає
    "tem auxílio para famílias com crianças",  # Spanish "¡auxilio!"
    "3andi 5of dima bla sabab",  # Arabizi "bla3" (swallowed) vs "bla" (without)
    "немаю рахунку в банку",  # Polish "ratunku"
    "як швидко схуднути",  # швидкої (ambulance)
    "siin ma tööd ei leia",  # Spanish "lejía" folded to "leia"
    "Я подписал бумагу, а теперь говорят что я должен большую сумму",  # Swahili "sumu"
    "платять менше ніж естонцям за ту саму роботу",  # French "samu"
    "mon ado reste enfermé dans sa chambre",
    "need emergency shelter for tonight",
    "how to call the police to report a lost wallet",
    "i saw a fire department job offer",
    "my phone is dying, can i charge it",
    "الاسعار هون نار",
    "can i get a fire extinguisher for my flat",
]


@pytest.mark.parametrize("text", FIXED_FALSE_ALARMS)
def test_fixed_false_alarms_stay_fixed(detector: EmergencyDetector, text: str) -> None:
    assert detector.detect(text) is None


@pytest.mark.parametrize(
    "text",
    ["", " ", "\x00\x01\x02\u200b", "🆘" * 3, "😂" * 5000, "a" * 20_000, "kill " * 4000, "\ud800", "ﷺ" * 100],
)
def test_never_raises(detector: EmergencyDetector, text: str) -> None:
    result = detector.detect(text)
    assert result is None or isinstance(result, EmergencyMatch)


def test_sos_emoji_is_a_cry_for_help(detector: EmergencyDetector) -> None:
    assert detector.detect("🆘🆘") == EmergencyMatch(category="danger", phrase="sos")


def test_match_names_the_lexicon_entry_never_the_message(detector: EmergencyDetector) -> None:
    match = detector.detect("PLEASE my husband is HITTING me!!!")
    assert match == EmergencyMatch(category="violence", phrase="hit* me")


def test_fast_enough_for_every_message(detector: EmergencyDetector) -> None:
    texts = [line["text"] for path in DATA.rglob("*.jsonl") for line in _lines(path)]
    durations = []
    for text in texts:
        start = time.perf_counter()
        detector.detect(text)
        durations.append(time.perf_counter() - start)
    durations.sort()
    assert durations[len(durations) // 2] < 0.001


def _detector(tmp_path: Path, lexicon: str) -> EmergencyDetector:
    path = tmp_path / "lexicon.yml"
    path.write_text(lexicon, encoding="utf-8")
    return EmergencyDetector.from_file(path)


def test_lexicon_syntax(tmp_path: Path) -> None:
    detector = _detector(
        tmp_path,
        """
emergency:
  medical:
    en: ["call* .. ambulance", "overdos*"]
    uk: ["не дихає", "допомога негайно"]
    ar: ["7ari2"]
not_emergency:
  en: ["ambulance bill"]
""",
    )
    assert detector.detect("please call an ambulance now") == EmergencyMatch("medical", "call* .. ambulance")
    assert detector.detect("calling her an ambulance") is not None
    assert detector.detect("call ambulance") is not None
    assert detector.detect("call my mother then the ambulance") is None  # more than 3 words between
    assert detector.detect("he overdosed") == EmergencyMatch("medical", "overdos*")
    assert detector.detect("dytyna ne dykhaye") == EmergencyMatch("medical", "не дихає")
    assert detector.detect("dopomoha nehaino") == EmergencyMatch("medical", "допомога негайно")  # г as h
    assert detector.detect("fi hari2 hon") == EmergencyMatch("medical", "7ari2")
    assert detector.detect("can i call about the ambulance bill") is None  # guarded
    assert detector.detect("overdoze") is None  # a prefix matches exactly


def test_one_typo_is_tolerated_on_long_words(tmp_path: Path) -> None:
    detector = _detector(tmp_path, "emergency:\n  medical:\n    en: [unconscious]\n")
    for typed in ["unconsious", "unconscoius", "unconsciouss", "unkonscious"]:
        assert detector.detect(f"he is {typed}") is not None, typed
    assert detector.detect("he is nconscious") is None  # never the first letter
    assert detector.detect("he is uncnsicous") is None  # two typos


@pytest.mark.parametrize(
    "lexicon",
    [
        "nothing: here\n",
        "emergency: [unclosed\n",
        "emergency: [a, b]\n",
        "emergency:\n  medical: [a]\n",
        "emergency:\n  medical:\n    en: [ok, '']\n",
        "emergency:\n  medical:\n    en: ['.. bleeding']\n",
        "emergency:\n  medical:\n    en: ['*']\n",
    ],
)
def test_malformed_lexicon_is_reported(tmp_path: Path, lexicon: str) -> None:
    with pytest.raises(ValueError):
        _detector(tmp_path, lexicon)


def test_shipped_lexicon_covers_every_language() -> None:
    from ruamel.yaml import YAML

    document = YAML(typ="safe").load(DEFAULT_LEXICON.read_text(encoding="utf-8"))
    languages = {"fr", "en", "nl", "ar", "uk", "ru", "et", "es", "de", "pt", "tr", "it", "pl", "fa", "sw"}
    for category, by_language in document["emergency"].items():
        assert set(by_language) == languages, category
