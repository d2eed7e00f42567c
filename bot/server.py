"""Assemble the runtime of ``guichet serve`` from the configuration and the environment."""

from __future__ import annotations

from bot.app import build_engine
from bot.config import Config
from bot.runtime import Runtime


def build_runtime(config: Config) -> Runtime:
    """The engine plus every channel whose settings are present (none is required)."""
    return Runtime(config, build_engine(config))
