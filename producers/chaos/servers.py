"""Servers of the chaos suite's own, on loopback ports of its choosing, in a temporary folder:
a Redis, a RabbitMQ node and a PostgreSQL cluster that it may stop, crash and restart without
touching anyone else's (the shared servers of a machine are never used by it)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ServerError(RuntimeError):
    """A server of the suite's own would not start (the message says which and why)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise ServerError(f"{what} did not come up within {timeout:.0f} s")


def require(binary: str) -> str:
    """The path of ``binary``, or a clear error naming the Debian package that has it."""
    found = shutil.which(binary) or next(
        (str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{binary}")), None
    )
    if not found:
        raise ServerError(
            f"{binary} is not installed (Debian: redis-server, rabbitmq-server, postgresql)"
        )
    return found


class RedisServer:
    """``redis-server`` on its own port with an append-only file, so a restart keeps the queues."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = root / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it answers."""
        argv = [require("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.dir), "--save", "", "--appendonly", "yes"]
        argv += ["--appendfsync", "everysec", "--logfile", str(self.dir / "redis.log")]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        _wait(lambda: port_open(self.port), 20, f"redis-server on port {self.port}")
        return self

    def client(self) -> object:
        """A redis client for this server."""
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def stop(self) -> None:
        """Stop it (SIGTERM: Redis writes its append-only file and exits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> float:
        """Stop and start again; returns how many seconds it was away."""
        started = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - started

    def cut_clients(self) -> int:
        """``CLIENT KILL TYPE normal``: every client connection is cut; returns how many."""
        client = self.client()
        try:
            return int(client.execute_command("CLIENT", "KILL", "TYPE", "normal"))  # type: ignore[attr-defined]
        finally:
            with contextlib.suppress(Exception):
                client.close()  # type: ignore[attr-defined]

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
