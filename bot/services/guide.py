"""The directory in the chat: the services under an answer, the nearest ones, typed places."""

from __future__ import annotations

import datetime as dt

from bot.config import Config
from bot.content import AnswerBook
from bot.i18n import Catalogs
from bot.messages import Link, OutgoingMessage
from bot.services.describe import cost_text, distance_text, language_list, localized, status_text
from bot.services.directory import ServiceDirectory
from bot.services.geo import Found, Gazetteer, Point, map_url
from bot.services.ranking import Match


class ServiceGuide:
    """Writes the chat messages about local services, in the user's language."""

    def __init__(
        self,
        directory: ServiceDirectory,
        gazetteer: Gazetteer,
        config: Config,
        answers: AnswerBook,
        catalogs: Catalogs,
    ) -> None:
        self.directory = directory
        self.gazetteer = gazetteer
        self._config = config
        self._answers = answers
        self._catalogs = catalogs
        self._limit = config.services.max_listed

    @classmethod
    def from_config(cls, config: Config, answers: AnswerBook, catalogs: Catalogs) -> ServiceGuide:
        directory = ServiceDirectory.from_config(config, topics=answers.intents)
        return cls(directory, Gazetteer(config.services.gazetteer), config, answers, catalogs)

    def covers(self, topic: str | None) -> bool:
        return self.directory.covers(topic)

    def place_in(self, text: str) -> Found | None:
        return self.gazetteer.find(text)

    def _t(self, lang: str, msgid: str, **params: object) -> str:
        return self._catalogs.gettext(lang, msgid, **params)

    def after_answer(self, topic: str, lang: str, now: dt.datetime) -> OutgoingMessage | None:
        """The best services for ``topic`` (language, open now or next), with a "share location" offer."""
        matches = self.directory.find(now=now, topic=topic, lang=lang)[: self._limit]
        if not matches:
            return None
        blocks = [self._block(number, match, lang, now) for number, match in enumerate(matches, start=1)]
        invitation = self._t(
            lang,
            "To see the nearest places, share your location or write your postcode or district "
            "(for example %(example)s).",
            example=self.gazetteer.example,
        )
        text = "\n\n".join([self._t(lang, "Places that can help you:"), *blocks, invitation])
        return OutgoingMessage(text, request_location=True)

    def nearest(
        self, topic: str | None, near: Point, lang: str, now: dt.datetime, place: str | None = None
    ) -> OutgoingMessage:
        """The services nearest to ``near`` for ``topic`` (every topic when None), with map links."""
        topic = topic if self.covers(topic) else None
        matches = self.directory.find(now=now, topic=topic, lang=lang, near=near)[: self._limit]
        if topic and place:
            title = self._t(
                lang,
                "Nearest places for %(topic)s near %(place)s:",
                topic=self._answers.title(topic, lang),
                place=place,
            )
        elif topic:
            title = self._t(lang, "Nearest places for %(topic)s:", topic=self._answers.title(topic, lang))
        elif place:
            title = self._t(lang, "Places near %(place)s:", place=place)
        else:
            title = self._t(lang, "Nearest places:")
        blocks = [self._block(number, match, lang, now) for number, match in enumerate(matches, start=1)]
        links = tuple(
            Link(
                self._t(lang, "Map: %(name)s", name=self._name(match, lang)),
                map_url(Point(match.service.latitude, match.service.longitude)),
            )
            for match in matches
        )
        return OutgoingMessage("\n\n".join([title, *blocks]), links=links)

    def unknown_postcode(self, postcode: str, lang: str) -> OutgoingMessage:
        text = self._t(
            lang,
            "I do not know the postcode %(postcode)s. Write the name of your district (for example "
            "%(example)s) or share your location.",
            postcode=postcode,
            example=self.gazetteer.example,
        )
        return OutgoingMessage(text, request_location=True)

    def _name(self, match: Match, lang: str) -> str:
        return localized(match.service.name, self._config.languages.chain(lang))

    def _block(self, number: int, match: Match, lang: str, now: dt.datetime) -> str:
        """One service in a few short lines: name, open or not, what it does, languages, where."""
        service, chain = match.service, self._config.languages.chain(lang)
        heading = f"{number}. {self._name(match, lang)}"
        if match.distance_m is not None:
            heading += f" ({distance_text(match.distance_m, lang)})"
        status = status_text(match.status, lang, self.directory.zone, now, self._catalogs)
        lines = [heading, f"{status} · {cost_text(service.cost, lang, self._catalogs)}"]
        if service.audience:
            lines.append(self._t(lang, "For: %(audience)s", audience=localized(service.audience, chain)))
        lines.append(localized(service.description, chain))
        lines.append(
            self._t(lang, "Languages: %(languages)s", languages=language_list(service.languages, lang))
        )
        lines.append(" · ".join(part for part in (service.address, service.phone) if part))
        return "\n".join(lines)
