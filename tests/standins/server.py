"""Run an ASGI app with uvicorn in a background thread, on a free port of 127.0.0.1.

The stand-ins must keep answering while the code under test runs in the test's own event
loop (python-telegram-bot, httpx): a server in that same loop would deadlock as soon as a
test blocks on it, so each stand-in gets a thread and an event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    """uvicorn checks `should_exit` every 0.1 s; waking it up saves that wait on each stop()
    (uvicorn's shutdown itself still takes 0.1 s), which adds up when every test starts and
    stops its own stand-ins."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def wake(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may close in between
                loop.call_soon_threadsafe(wake.set)


class BackgroundServer:
    """One uvicorn server in a daemon thread; `start()` returns once it accepts connections."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str = "standin"):
        self._app = app
        self._host = host
        self._requested_port = port
        self._name = name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None
        self.port: int = 0

    @property
    def url(self) -> str:
        """Root URL of the running server, without a trailing slash."""
        if not self.port:
            raise RuntimeError(f"{self._name} server is not started")
        return f"http://{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> Self:
        """Bind first, then serve: binding ourselves means no race for the free port."""
        if self.running:
            return self
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
        # and without it every response waits ~40 ms (Nagle + delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        self._server = _Server(config)
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"{self._name} server failed to start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self._name} server did not start within {timeout}s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # surfaced by start(); a thread cannot raise to the test
            self._error = exc

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
            self._server.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None
        self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class StandIn(ABC):
    """Base of the stand-ins: owns the app's BackgroundServer and the start/stop protocol.

    Use as `with Stand() as api:` (sync tests and fixtures) or `async with Stand() as api:`;
    starting and stopping are fast and thread-based, so both forms are the same thing.
    """

    name = "standin"

    def __init__(self) -> None:
        self._server = BackgroundServer(self.build_app(), name=self.name)
        self._closing = threading.Event()

    @abstractmethod
    def build_app(self) -> ASGIApp:
        """The stand-in's Starlette application."""

    @property
    def url(self) -> str:
        """Root URL (scheme, host and port) of the running stand-in."""
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> Self:
        self._closing.clear()
        self._server.start()
        return self

    def stop(self) -> None:
        # Long polls check this flag, so a pending getUpdates does not hold the shutdown.
        self._closing.set()
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await asyncio.to_thread(self.stop)
