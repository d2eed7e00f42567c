"""The unanswered-questions inbox: what the bot handed off or answered unsure, grouped by similarity.

Like Botpress's "misunderstood" inbox. A question is kept without the user's identity (only a
keyed hash, so that ``/forget`` can still delete it) and for ``privacy.retention_days``. Admins
assign a group to a topic (it becomes a training example, see :mod:`bot.admin.teach`) or dismiss it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sklearn.feature_extraction.text import TfidfVectorizer

from bot.admin.store import AdminStore
from nlu.normalize import normalize

STREAM = "inbox"
# Two questions whose character n-grams have at least this cosine similarity are one group.
SIMILARITY = 0.5
OUTCOMES = {
    "handoff": "Handed to a person",
    "clarify": "Asked which topic",
    "unsure": "Answered, unsure",
}


@dataclass(frozen=True)
class MissedQuestion:
    id: str
    text: str
    lang: str | None
    outcome: str  # a key of OUTCOMES
    guesses: tuple[tuple[str, float], ...]  # the bot's best intents, most likely first
    at: dt.datetime

    @property
    def outcome_label(self) -> str:
        return OUTCOMES.get(self.outcome, self.outcome)


@dataclass(frozen=True)
class QuestionGroup:
    """Similar questions; the newest stands for the group."""

    questions: tuple[MissedQuestion, ...]

    @property
    def id(self) -> str:
        return self.questions[0].id

    @property
    def text(self) -> str:
        return self.questions[0].text

    @property
    def lang(self) -> str | None:
        return self.questions[0].lang

    @property
    def count(self) -> int:
        return len(self.questions)

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.questions]

    @property
    def languages(self) -> list[str]:
        return sorted({q.lang for q in self.questions if q.lang})

    @property
    def last_at(self) -> dt.datetime:
        return max(q.at for q in self.questions)

    def guesses(self, limit: int = 3) -> list[tuple[str, float]]:
        """The bot's guesses over the whole group: mean confidence of each intent, best first."""
        totals: dict[str, float] = defaultdict(float)
        for question in self.questions:
            for intent, score in question.guesses:
                totals[intent] += score
        ranked = sorted(totals.items(), key=lambda item: -item[1])[:limit]
        return [(intent, total / self.count) for intent, total in ranked]


def owner_of(key: str) -> str:
    """A hash of the conversation key: the inbox cannot be linked to a conversation, /forget can find it."""
    return hashlib.sha256(f"inbox:{key}".encode()).hexdigest()[:20]


class Inbox:
    """The missed questions, in the admin store."""

    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def add(
        self,
        *,
        key: str,
        text: str,
        lang: str | None,
        outcome: str,
        guesses: Sequence[tuple[str, float]],
        at: dt.datetime,
    ) -> str:
        record = {
            "text": text,
            "lang": lang,
            "outcome": outcome,
            "guesses": [[intent, round(score, 4)] for intent, score in guesses[:3]],
            "at": at.timestamp(),
        }
        return await self._store.append(STREAM, record, owner=owner_of(key))

    async def questions(self) -> list[MissedQuestion]:
        """Newest first."""
        return [
            MissedQuestion(
                id=record_id,
                text=str(record["text"]),
                lang=record.get("lang"),
                outcome=str(record.get("outcome", "handoff")),
                guesses=tuple((str(i), float(s)) for i, s in record.get("guesses", [])),
                at=dt.datetime.fromtimestamp(float(record["at"]), dt.UTC),
            )
            for record_id, record in await self._store.items(STREAM)
        ]

    async def groups(self, similarity: float = SIMILARITY) -> list[QuestionGroup]:
        """Similar questions together; the biggest groups first, then the most recent."""
        found = group_similar(await self.questions(), similarity)
        return sorted(found, key=lambda g: (-g.count, -g.last_at.timestamp()))

    async def group(self, group_id: str) -> QuestionGroup | None:
        return next((g for g in await self.groups() if group_id in g.ids), None)

    async def remove(self, ids: Iterable[str]) -> None:
        await self._store.remove(STREAM, ids)

    async def forget(self, key: str) -> None:
        await self._store.remove_owner(STREAM, owner_of(key))


def group_similar(questions: Sequence[MissedQuestion], similarity: float) -> list[QuestionGroup]:
    """Each question joins the first group whose first question is similar enough (TF-IDF cosine of
    character n-grams, on the text as the classifier normalises it), else starts a new group."""
    if not questions:
        return []
    texts = [normalize(q.text) or q.text for q in questions]
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit_transform(texts)
    similarities = (vectors @ vectors.T).toarray()
    heads: list[int] = []
    members: dict[int, list[int]] = {}
    for index in range(len(questions)):
        best = max(heads, key=lambda head: similarities[index, head], default=None)
        if best is not None and similarities[index, best] >= similarity:
            members[best].append(index)
        else:
            heads.append(index)
            members[index] = [index]
    return [QuestionGroup(tuple(questions[i] for i in members[head])) for head in heads]
