"""Servers of the chaos suite's own, on loopback ports of its choosing, in a temporary folder:
a Redis, a RabbitMQ node and a PostgreSQL cluster that it may stop, crash and restart without
touching anyone else's (the shared servers of a machine are never used by it)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path


class ServerError(RuntimeError):
    """A server of the suite's own would not start (the message says which and why)."""


RESERVED_PORTS = frozenset({25672})
"""Never chosen: a RabbitMQ node listening on 5672 has its distribution port at 25672."""


def free_port(low: int | None = None, high: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now: any the kernel gives, or one
    in ``low..high`` (tried at random)."""
    if low is None or high is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    candidates = [p for p in range(low, high + 1) if p not in RESERVED_PORTS]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not port_open(port):
            return port
    raise ServerError(f"no free port in {low}..{high}")


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


def require(binary: str, *folders: str) -> str:
    """The path of ``binary`` (in ``folders`` first, then on the PATH), or a clear error naming
    the Debian packages that have it."""
    found = next((f"{d}/{binary}" for d in folders if Path(f"{d}/{binary}").exists()), None)
    found = found or shutil.which(binary)
    found = found or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{binary}"))), None
    )
    if not found:
        raise ServerError(
            f"{binary} is not installed (Debian: redis-server, rabbitmq-server, postgresql)"
        )
    return found


class RedisServer:
    """``redis-server`` on its own port with an append-only file, so a restart keeps the queues."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.chosen = port is None
        """Whether the port is ours to choose again (another process took it before ours bound)."""
        self.port = port or free_port()
        self.restarts = 0
        self.dir = root / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 5) -> RedisServer:
        """Start it and wait until it answers: this server, not another process that took a
        port chosen free a moment before (then ours cannot bind and exits, and a port of our
        own choosing is chosen again)."""
        for _attempt in range(attempts):
            argv = [require("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
            argv += ["--dir", str(self.dir), "--save", "", "--appendonly", "yes"]
            argv += ["--appendfsync", "everysec", "--logfile", str(self.dir / "redis.log")]
            process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
            self.process = process
            _wait(partial(self._up_or_gone, process), 20, f"redis-server on port {self.port}")
            if process.poll() is None:
                return self
            if not self.chosen:
                break
            self.port = free_port()
            self.dir = self.root / f"redis-{self.port}"
            self.dir.mkdir(parents=True, exist_ok=True)
        raise ServerError(f"redis-server could not listen on port {self.port}")

    def _up_or_gone(self, process: subprocess.Popen[bytes]) -> bool:
        return process.poll() is not None or self._answers_as(process.pid)

    def _answers_as(self, pid: int) -> bool:
        """Whether the server on the port is the process ``pid`` (INFO's ``process_id``)."""
        if not port_open(self.port):
            return False
        try:
            info = self.client().info("server")  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - loading, or not Redis: not ours (yet)
            return False
        return bool(info.get("process_id") == pid)

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
        self.restarts += 1
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


RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"
"""Where Debian keeps RabbitMQ's own scripts (``/usr/sbin``'s wrappers switch user)."""


class RabbitServer:
    """A RabbitMQ node of its own: ``RABBITMQ_NODENAME``, AMQP and distribution ports, its
    own mnesia and log folders and config, no plugins (so no management listener)."""

    def __init__(self, root: Path, port: int | None = None, dist_port: int | None = None) -> None:
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.node = f"omvant-chaos-{self.port}@localhost"
        self.dir = root / f"rabbitmq-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "enabled_plugins").write_text("[].\n", encoding="ascii")
        (self.dir / "rabbitmq.conf").write_text("loopback_users = none\n", encoding="ascii")
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/%2F``."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def env(self) -> dict[str, str]:
        """The environment of ``rabbitmq-server`` and ``rabbitmqctl`` for this node."""
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_PID_FILE=str(self.dir / "rabbitmq.pid"),
        )
        return env

    def start(self, timeout: float = 120) -> RabbitServer:
        """Start the node and wait until it takes AMQP connections."""
        log = (self.dir / "server.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - RabbitMQ's own script
            [require("rabbitmq-server", RABBITMQ_BIN)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait(lambda: self._answers() or self._exited(), timeout, f"RabbitMQ node {self.node}")
        if self._exited():
            raise ServerError(f"RabbitMQ node {self.node} stopped: see {self.dir}/server.log")
        return self

    def _exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def _answers(self) -> bool:
        if not port_open(self.port):
            return False
        from workers.server_probe import ServerUnreachable, probe_broker

        try:
            probe_broker(self.url, timeout=2)
        except ServerUnreachable:
            return False
        return True

    def stop(self) -> None:
        """``rabbitmqctl stop``: the node stops (durable queues and persistent messages stay)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # then it is killed, below
                subprocess.run(  # noqa: S603 - RabbitMQ's own script
                    [require("rabbitmqctl", RABBITMQ_BIN), "-n", self.node, "stop"],
                    env=self.env(),
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def restart(self) -> float:
        """Stop the node and start it again; returns how many seconds it was away."""
        started = time.monotonic()
        self.stop()
        self.start()
        self.restarts += 1
        return time.monotonic() - started

    def __enter__(self) -> RabbitServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``argv`` as the ``postgres`` user."""
    if os.geteuid() != 0:
        return argv
    return [require("runuser"), "-u", "postgres", "--", *argv]


class PostgresServer:
    """A PostgreSQL cluster of its own (``initdb`` + ``pg_ctl`` on its own port and folder),
    trust authentication on loopback, the user ``postgres``."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = root / f"postgresql-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.restarts = 0
        if os.geteuid() == 0:
            shutil.chown(self.dir, user="postgres")

    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/DATABASE``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str, timeout: float = 120) -> None:
        argv = [require("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log")]
        done = subprocess.run(  # noqa: S603 - PostgreSQL's own tools
            _as_postgres([*argv, "-w", "-t", str(int(timeout)), *args]),
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"pg_ctl {' '.join(args)}: {(done.stderr or done.stdout)[-300:]}")

    def start(self) -> PostgresServer:
        """``initdb`` (the first time) and ``pg_ctl start``."""
        if not (self.data / "PG_VERSION").exists():
            done = subprocess.run(  # noqa: S603 - PostgreSQL's own tools
                _as_postgres(
                    [
                        *(require("initdb"), "-D", str(self.data), "-A", "trust"),
                        *("-U", "postgres", "-E", "UTF8", "--no-sync"),
                    ]
                ),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise ServerError(f"initdb: {(done.stderr or done.stdout)[-300:]}")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options + " -c max_connections=200", "start")
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def crash_restart(self) -> float:
        """``pg_ctl restart -m immediate``: every backend dies at once, as in a crash, and the
        server recovers from its WAL; returns how many seconds it took."""
        started = time.monotonic()
        self._pg_ctl("-m", "immediate", "restart")
        self.restarts += 1
        return time.monotonic() - started

    def stop(self) -> None:
        """``pg_ctl stop -m fast``."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
                self._pg_ctl("-m", "fast", "stop", timeout=60)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
