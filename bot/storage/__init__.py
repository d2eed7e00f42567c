"""Conversation storage behind one interface: in memory (default) or Redis."""

from bot.storage.base import Lease, Storage, StorageUnavailable
from bot.storage.memory import MemoryStorage

__all__ = ["Lease", "MemoryStorage", "Storage", "StorageUnavailable"]
