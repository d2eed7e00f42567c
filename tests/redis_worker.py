"""A bot worker for the Redis Cluster tests: ``python -m tests.redis_worker PORT``.

It runs what ``guichet serve`` runs for WhatsApp (the real engine, Runtime, dispatcher and
WhatsApp channel behind uvicorn), configured from the same environment, with one difference:
the admin journal stays in memory. The admin records (bot/admin/store.py) are not written for
a Redis Cluster, and they are not what these tests are about.
"""

from __future__ import annotations

import sys

import uvicorn

from bot.admin.journal import Journal
from bot.admin.store import MemoryAdminStore
from bot.app import build_engine
from bot.config import load_config
from bot.runtime import Runtime
from bot.server import add_whatsapp
from bot.web.app import create_app


def main(port: int) -> None:
    config = load_config()
    retention = config.privacy.retention_days * 24 * 3600
    journal = Journal(MemoryAdminStore(retention), config.feedback)
    runtime = Runtime(config, build_engine(config, journal=journal))
    add_whatsapp(runtime)
    uvicorn.run(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
