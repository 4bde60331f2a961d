"""The faults of a chaos run: worker processes killed with ``kill -9`` under a supervisor that
restarts them, the broker restarted, PostgreSQL crash-restarted, the SMS gateway failing
(503) for a while, Redis client connections cut. ``FaultSchedule`` plays them on a timeline
and writes down each hit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producers.chaos.servers import PostgresServer, RabbitServer, RedisServer

OMVANT = str(Path(sys.executable).with_name("omvant"))
"""The ``omvant`` of this interpreter's environment."""


@dataclass
class Hit:
    """One fault as it happened: when (seconds into the run), what, and what it met."""

    at: float
    kind: str
    detail: str


@dataclass
class FaultLog:
    """Every hit of a run (thread-safe)."""

    started: float = field(default_factory=time.monotonic)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, detail: str) -> None:
        """Write down a hit now."""
        with self.lock:
            self.hits.append(Hit(round(time.monotonic() - self.started, 1), kind, detail))

    def count(self, kind: str) -> int:
        """How many hits of ``kind``."""
        with self.lock:
            return sum(1 for h in self.hits if h.kind == kind)

    def as_json(self) -> list[dict[str, Any]]:
        """The hits as JSON objects."""
        with self.lock:
            return [{"at": h.at, "kind": h.kind, "detail": h.detail} for h in self.hits]


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    except OSError:
        return []
    return [int(p) for p in found.split()]


class WorkerGroup:
    """One ``omvant worker`` (dramatiq's main process and its worker processes)."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, dict(env), log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start it (again)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own command
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def exited(self) -> int | None:
        """Its exit status, or ``None`` while it runs."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the process group; SIGKILL what is left after ``timeout``."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                deadline = time.monotonic() + wait
                while _group_alive(self.process.pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not _group_alive(self.process.pid):
                    break
            except subprocess.TimeoutExpired:
                continue


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Supervisor:
    """Keeps ``groups`` worker groups running, as systemd or Kubernetes would: one that exits
    is started again a second later. ``kill_one`` is the ``kill -9`` of a chaos run."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        groups: int,
        threads: int,
        services: Mapping[str, list[str]] | None = None,
    ) -> None:
        argv = [OMVANT, "worker", "--processes", "1", "--threads", str(threads)]
        self.groups = [WorkerGroup(argv, env, log_dir / f"worker-{n}.log") for n in range(groups)]
        self.services = [
            WorkerGroup([OMVANT, *args], env, log_dir / f"{name}.log")
            for name, args in (services or {}).items()
        ]
        """Other processes of the deployment (the sweep), restarted alike, never killed."""
        self.exits: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        """Start every group and the watch."""
        for group in [*self.groups, *self.services]:
            group.start()
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for group in [*self.groups, *self.services]:
                status = group.exited()
                if status is not None and not self._stop.is_set():
                    if group in self.groups:
                        self.exits.append(status)
                    time.sleep(1.0)
                    if not self._stop.is_set():
                        group.start()

    def ready(self) -> int:
        """How many times a group has said ``worker.ready`` (all its processes consuming),
        over all starts."""
        return sum(
            g.log_path.read_text(errors="replace").count("worker.ready")
            for g in self.groups
            if g.log_path.exists()
        )

    def kill_one(self, rng: random.Random, log: FaultLog) -> bool:
        """``kill -9`` a worker process (mostly) or an ``omvant worker`` main process, of a
        group picked at random among those running; False when none was running."""
        running = [g for g in self.groups if g.process is not None and g.exited() is None]
        rng.shuffle(running)
        for group in running:
            assert group.process is not None
            children = children_of(group.process.pid)
            main = rng.random() < 0.25 or not children
            pid = group.process.pid if main else rng.choice(children)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            log.add("kill-9", f"{'main' if main else 'worker'} process {pid}")
            return True
        return False

    def stop(self) -> None:
        """Stop the watch, then every group."""
        self._stop.set()
        self._thread.join(timeout=5)
        for group in [*self.groups, *self.services]:
            group.stop()


def gateway_control(url: str, *, path: str = "/control", **changes: Any) -> None:
    """``POST /control`` to the SMS-gateway simulator (``path="/v1/control"``: the e-mail
    API simulator)."""
    request = urllib.request.Request(  # noqa: S310 - our simulator on loopback
        f"{url}{path}",
        data=json.dumps(changes).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        answer.read()


@dataclass
class Timeline:
    """When (seconds after the dispatch is enqueued) each fault comes."""

    kill_every: float = 4.5
    kills: int = 10
    gateway_at: float = 6.0
    gateway_seconds: float = 25.0
    broker_at: float = 14.0
    postgres_at: float = 36.0
    redis_at: tuple[float, ...] = (58.0, 64.0, 70.0, 76.0)
    """After the broker's restart (which can take a minute under load): with the workers
    waiting for the broker there would be no Redis connection to cut."""


class FaultSchedule(threading.Thread):
    """Plays a ``Timeline`` against the run's servers and workers, in a thread of its own."""

    def __init__(
        self,
        timeline: Timeline,
        *,
        supervisor: Supervisor,
        broker: RabbitServer | RedisServer,
        postgres: PostgresServer,
        redis: RedisServer,
        gateway_url: str,
        seed: int,
        log: FaultLog,
        say: Callable[[str], None],
        email_api_url: str | None = None,
    ) -> None:
        super().__init__(name="fault-schedule", daemon=True)
        self.timeline, self.supervisor, self.broker = timeline, supervisor, broker
        self.postgres, self.redis, self.gateway_url = postgres, redis, gateway_url
        self.email_api_url = email_api_url
        """The e-mail API simulator, if the run sends e-mail through it: it is down with the
        SMS gateway."""
        self.rng = random.Random(seed)
        self.log, self.say = log, say
        self.errors: list[str] = []
        self.cut_connections = 0

    def _events(self) -> list[tuple[float, str]]:
        t = self.timeline
        events = [(t.kill_every * (n + 1), "kill") for n in range(t.kills)]
        events += [(t.gateway_at, "gateway-down"), (t.gateway_at + t.gateway_seconds, "gateway-up")]
        events += [(t.broker_at, "broker"), (t.postgres_at, "postgres")]
        events += [(at, "redis") for at in t.redis_at]
        return sorted(events)

    def run(self) -> None:
        started = time.monotonic()
        slow: list[threading.Thread] = []
        for at, what in self._events():
            wait = started + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if what in {"broker", "postgres"}:  # a restart takes a while: the kills go on
                slow.append(threading.Thread(target=self._try, args=(what,), daemon=True))
                slow[-1].start()
            else:
                self._try(what)
        # a kill that found every worker process restarting did not count: try again
        deadline = time.monotonic() + 120
        while self.log.count("kill-9") < self.timeline.kills and time.monotonic() < deadline:
            time.sleep(2.0)
            self._try("kill")
        # cuts that met no connection (the workers were waiting for a restarted broker) neither
        while self.cut_connections == 0 and time.monotonic() < deadline:
            time.sleep(3.0)
            self._try("redis")
        for thread in slow:
            thread.join()

    def _try(self, what: str) -> None:
        try:
            self._do(what)
        except Exception as exc:  # noqa: BLE001 - a fault that fails is reported, not fatal
            self.errors.append(f"{what}: {exc}")
            self.say(f"fault {what} failed: {exc}")

    def _do(self, what: str) -> None:
        if what == "kill":
            if not self.supervisor.kill_one(self.rng, self.log):
                self.say("no worker process to kill")
        elif what == "gateway-down":
            gateway_control(self.gateway_url, fail_next=10**9)
            self.log.add("sms-gateway-503", f"for {self.timeline.gateway_seconds:g} s")
            self.say(f"SMS gateway answers 503 for {self.timeline.gateway_seconds:g} s")
            if self.email_api_url:
                seconds = self.timeline.gateway_seconds
                gateway_control(self.email_api_url, path="/v1/control", fail_for=seconds)
                self.log.add("email-api-503", f"for {seconds:g} s")
        elif what == "gateway-up":
            gateway_control(self.gateway_url, fail_next=0)
            self.say("SMS gateway answers again")
        elif what == "broker":
            self.say("restarting the broker")
            away = self.broker.restart()
            self.log.add("broker-restart", f"away {away:.1f} s")
            self.say(f"broker back after {away:.1f} s")
        elif what == "postgres":
            took = self.postgres.crash_restart()
            self.log.add("postgres-crash-restart", f"pg_ctl restart -m immediate, {took:.1f} s")
            self.say(f"PostgreSQL crash-restarted ({took:.1f} s)")
        elif what == "redis":
            cut = self.redis.cut_clients()
            self.cut_connections += cut
            self.log.add("redis-client-kill", f"{cut} connections cut")
            self.say(f"Redis: {cut} client connections cut")
