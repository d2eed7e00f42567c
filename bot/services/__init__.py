"""The local services directory: which service does what, where, when, and in which languages.

Services are content (``responses/services/*.yml``), loaded by :mod:`bot.services.loader`,
ranked for one user by :mod:`bot.services.directory`, and written into chat messages by
:mod:`bot.services.guide` and into the public ``/services`` page by :mod:`bot.web.services`.
"""

from bot.services.directory import ServiceDirectory
from bot.services.geo import Found, Gazetteer, Point, distance_m, map_url
from bot.services.guide import ServiceGuide
from bot.services.loader import ServicesError, load_services, load_services_file
from bot.services.model import Service
from bot.services.ranking import Match
from bot.services.schedule import ServiceHours, Status

__all__ = [
    "Found",
    "Gazetteer",
    "Match",
    "Point",
    "Service",
    "ServiceDirectory",
    "ServiceGuide",
    "ServiceHours",
    "ServicesError",
    "Status",
    "distance_m",
    "load_services",
    "load_services_file",
    "map_url",
]
