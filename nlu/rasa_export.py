"""``guichet nlu export-rasa DIR``: the centre's content as a Rasa 3 project, to move to Rasa with it.

The project holds every training example (``data/nlu.yml``), one rule per answered intent
(``data/rules.yml``), the curated answers as responses with one variation per language, chosen
by a ``language`` slot (``domain.yml``, placeholders already filled from ``config.yml``), and
Rasa's default NLU pipeline with its FallbackClassifier (``config.yml``). ``rasa data validate``
accepts it as written.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from bot.config import Config
from bot.content import AnswerBook
from bot.i18n import Catalogs
from nlu.data import Example, load_examples
from nlu.understanding import OUT_OF_SCOPE

RASA_VERSION = "3.1"  # the training-data format version of Rasa 3
# Rasa's default number of DIET epochs.
DEFAULT_EPOCHS = 100
LANGUAGE_SLOT = "language"
# Rasa's FallbackClassifier predicts this intent when DIET is unsure.
RASA_FALLBACK = "nlu_fallback"
# Intents answered with the contact details of the guichet when there is no person to hand over to.
_TO_A_PERSON = (OUT_OF_SCOPE, RASA_FALLBACK)
_HANDOFF_INTENT = "human_handoff"


class ExportError(ValueError):
    """The content cannot be expressed as a valid Rasa project; the message says what to fix."""


def nlu_data(examples: Iterable[Example]) -> dict[str, Any]:
    """``data/nlu.yml``: one block per intent, in first-seen order, each example once.

    Raises ExportError when one text is an example of two intents (Rasa's validator refuses it).
    """
    by_intent: dict[str, dict[str, None]] = {}
    owner: dict[str, str] = {}
    for example in examples:
        text = " ".join(example.text.split())
        if owner.setdefault(text, example.intent) != example.intent:
            raise ExportError(
                f"the example {text!r} is under both {owner[text]!r} and {example.intent!r}: keep it in one"
            )
        by_intent.setdefault(example.intent, {})[text] = None
    return {
        "version": RASA_VERSION,
        "nlu": [
            {"intent": intent, "examples": LiteralScalarString("".join(f"- {t}\n" for t in texts))}
            for intent, texts in by_intent.items()
        ],
    }


def rasa_config(*, epochs: int = DEFAULT_EPOCHS, assistant_id: str = "guichet") -> dict[str, Any]:
    """``config.yml``: Rasa 3.6's default NLU pipeline (DIET, FallbackClassifier) and a rule policy."""
    return {
        "recipe": "default.v1",
        "assistant_id": assistant_id,
        "language": "xx",  # several languages; the whitespace tokenizer needs no language model
        "pipeline": [
            {"name": "WhitespaceTokenizer"},
            {"name": "RegexFeaturizer"},
            {"name": "LexicalSyntacticFeaturizer"},
            {"name": "CountVectorsFeaturizer"},
            {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
            {"name": "DIETClassifier", "epochs": epochs, "constrain_similarities": True},
            {"name": "EntitySynonymMapper"},
            {"name": "ResponseSelector", "epochs": epochs, "constrain_similarities": True},
            {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.1},
        ],
        "policies": [{"name": "RulePolicy"}],
    }


def domain(
    intents: Sequence[str], answers: AnswerBook, languages: Sequence[str], default_lang: str
) -> dict[str, Any]:
    """``domain.yml``: the intents, a ``language`` slot, and one response per answered intent.

    Each response has one variation per language (Rasa's ``condition`` on the slot) and a
    default variation in ``default_lang`` for conversations whose language is not set.
    """
    responses: dict[str, list[dict[str, Any]]] = {}
    for intent in intents:
        if not answers.has(intent):
            continue
        variations = []
        for lang in languages:
            condition = [{"type": "slot", "name": LANGUAGE_SLOT, "value": lang}]
            variations.append({"condition": condition, **_response(answers, intent, lang)})
        variations.append(_response(answers, intent, default_lang))
        responses[f"utter_{intent}"] = variations
    return {
        "version": RASA_VERSION,
        "intents": list(intents),
        "slots": {
            LANGUAGE_SLOT: {
                "type": "categorical",
                "values": list(languages),
                "influence_conversation": False,
                # Set by a custom action, e.g. from the channel's metadata or the user's choice.
                "mappings": [{"type": "custom"}],
            }
        },
        "responses": responses,
        "session_config": {"session_expiration_time": 60, "carry_over_slots_to_new_session": True},
    }


def rules(intents: Sequence[str], answers: AnswerBook) -> dict[str, Any]:
    """``data/rules.yml``: each answered intent gets its answer; unsure or out of scope, the contacts."""
    steps = [(intent, intent) for intent in intents if answers.has(intent)]
    if answers.has(_HANDOFF_INTENT):
        steps += [(intent, _HANDOFF_INTENT) for intent in _TO_A_PERSON if intent in (*intents, RASA_FALLBACK)]
    return {
        "version": RASA_VERSION,
        "rules": [
            {"rule": f"{intent} is answered", "steps": [{"intent": intent}, {"action": f"utter_{answer}"}]}
            for intent, answer in steps
        ],
    }


def export_rasa(config: Config, directory: Path, *, epochs: int = DEFAULT_EPOCHS) -> list[Path]:
    """Write the Rasa project for ``config``'s content into ``directory``; the files written."""
    examples = load_examples(config.intents_dir)
    catalogs = Catalogs(config.languages.content)
    answers = AnswerBook.from_config(config, catalogs)
    intents = list(dict.fromkeys(example.intent for example in examples))
    content = config.languages.content
    default_lang = "en" if "en" in content else content[0]  # as the bot's own default
    files = {
        "data/nlu.yml": nlu_data(examples),
        "data/rules.yml": rules(intents, answers),
        "domain.yml": domain(intents, answers, content, default_lang),
        "config.yml": rasa_config(epochs=epochs, assistant_id=_assistant_id(config)),
    }
    written = []
    for name, document in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(document), encoding="utf-8")
        written.append(path)
    return written


def dump_yaml(document: dict[str, Any]) -> str:
    """YAML as Rasa's own files look: block style, long lines kept, Unicode as is."""
    yaml = YAML()
    yaml.width = 4096
    yaml.allow_unicode = True
    yaml.indent(mapping=2, sequence=2, offset=0)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _response(answers: AnswerBook, intent: str, lang: str) -> dict[str, Any]:
    """One response variation: the curated text (links appended), follow-up topics as buttons."""
    answer = answers.answer(intent, lang)
    text = answer.text + "".join(f"\n\n{link.label}\n{link.url}" for link in answer.links)
    variation: dict[str, Any] = {"text": LiteralScalarString(text.strip())}
    if answer.buttons:
        variation["buttons"] = [
            {"title": answers.title(button, lang), "payload": f"/{button}"} for button in answer.buttons
        ]
    return variation


def _assistant_id(config: Config) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in config.organisation.centre_name.lower()).strip("-")
    return f"guichet-{slug or 'centre'}"
