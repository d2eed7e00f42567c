"""Real ``redis-server`` processes for the tests: one server, or a 3-node Redis Cluster, on loopback.

A server keeps its port and its directory across ``stop()``/``kill()`` and ``start()``, so a test
can restart Redis (with its append-only file) under workers that stay connected to the same URL.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self


def redis_binary(name: str = "redis-server") -> str:
    found = shutil.which(name)
    assert found, f"{name} is needed (make test installs it: scripts/system-deps.sh)"
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free port of 127.0.0.1; ``with_bus``: port + 10000 free too (the cluster bus)."""
    if not with_bus:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    for _ in range(200):
        port = random.randint(20000, 29999)
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.02)


class RedisServer:
    """One ``redis-server`` in ``directory``; ``appendonly`` turns the AOF on (fsync at every write)."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        appendfsync: str = "always",
        cluster: bool = False,
    ) -> None:
        self.directory = directory
        self.port = port or free_port(with_bus=cluster)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.cluster = cluster
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        command = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--protected-mode", "no",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        if self.cluster:
            command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            command += ["--cluster-node-timeout", "2000"]
        return command

    def start(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until the server answers PING (not LOADING its append-only file any more)."""
        deadline = time.monotonic() + timeout
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on {self.port} is not ready")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        """Run one command with ``redis-cli`` and return its raw output."""
        result = subprocess.run(
            [redis_binary("redis-cli"), "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Redis flushes its append-only file."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL): only what was fsynced survives."""
        self._end(signal.SIGKILL)

    def _end(self, how: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(how)
            self.process.wait(20)
        self.process = None

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class RedisClusterNodes:
    """Three masters on loopback, joined with ``redis-cli --cluster create`` (no replicas)."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.nodes = [RedisServer(directory / f"node{n}", cluster=True) for n in range(size)]

    @property
    def url(self) -> str:
        """The URL guichet takes for a cluster: any one node, with the ``redis+cluster`` scheme."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> Self:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(
            [
                redis_binary("redis-cli"),
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 30
        while not all("cluster_state:ok" in node.cli("CLUSTER", "INFO") for node in self.nodes):
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
