"""Where things are: distances on the globe, map links, and the districts users may type."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from bot.config import Place

EARTH_RADIUS_M = 6_371_008.8
# A typed place is taken as a place only in a short message ("Lasnamäe", "I live in Kopli").
MAX_WORDS_AROUND_A_PLACE = 4
_POSTCODE = re.compile(r"(?<!\d)\d{5}(?!\d)")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Point:
    latitude: float
    longitude: float


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres (haversine): walking distance is longer, the order is the same."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def map_url(point: Point) -> str:
    """An OpenStreetMap link centred on ``point``, with a marker (no API key needed)."""
    lat, lon = f"{point.latitude:.5f}", f"{point.longitude:.5f}"
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"


def _words(text: str) -> tuple[str, ...]:
    """Lower-case words without accents, so ``Lasnamae`` finds ``Lasnamäe``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return tuple(_WORD.findall(bare))


@dataclass(frozen=True)
class Found:
    """What a typed message named: a known place, or a postcode the gazetteer does not know."""

    place: Place | None
    postcode: str | None = None

    @property
    def point(self) -> Point | None:
        return Point(self.place.latitude, self.place.longitude) if self.place else None


class Gazetteer:
    """The districts and postcodes of ``config.yml`` (``services.gazetteer``)."""

    def __init__(self, places: Iterable[Place]) -> None:
        self.places = tuple(places)
        self._names = sorted(
            ((_words(name), place) for place in self.places for name in (place.name, *place.aliases)),
            key=lambda item: -len(item[0]),
        )
        self._postcodes = {code: place for place in self.places for code in place.postcodes}

    @property
    def example(self) -> str:
        """A place name to show users, e.g. in "write your district (for example Kalamaja)"."""
        return self.places[0].name if self.places else ""

    def find(self, text: str) -> Found | None:
        """The place a short message names (by name, alias or postcode), if any."""
        words = _words(text)
        if not words or len(words) > MAX_WORDS_AROUND_A_PLACE:
            return None
        for code in _POSTCODE.findall(text):
            if code in self._postcodes:
                return Found(self._postcodes[code])
        for name, place in self._names:
            if name and any(words[i : i + len(name)] == name for i in range(len(words) - len(name) + 1)):
                return Found(place)
        postcodes = _POSTCODE.findall(text)
        return Found(None, postcodes[0]) if postcodes else None
