"""One chaos run: servers of its own, simulators as processes, supervised worker processes, a
dispatch enqueued by ``omvant dispatch`` and a fault schedule played while it runs; then the
checks at the simulators and the verdict table.

Everything it starts listens on 127.0.0.1 in ``PORTS`` and lives in a temporary folder, and
everything is stopped at the end (kept with ``keep``); the shared servers of the machine are
never touched.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet

from contracts.send_case import case_id_for
from producers.chaos.checks import Expected, Observed, Record, Row, evaluate, summary_counts
from producers.chaos.faults import OMVANT, FaultLog, FaultSchedule, Supervisor, Timeline
from producers.chaos.servers import (
    PostgresServer,
    RabbitServer,
    RedisServer,
    ServerError,
    free_port,
)
from workers.adapters.account_directory import SimulatedAccountDirectory
from workers.adapters.population import draw_residents
from workers.adapters.smtp_email import message_id
from workers.recipient_validation import check_recipients
from workers.store import notifications
from workers.store.engine import make_engine, upgrade
from workers.store.notifications import key_for
from workers.store.schema import cases, notification_ledger, sweep_runs

PORTS = (25000, 25999)
SWEEP_EVERY = 15
"""The sweep runs as a service of the deployment (``omvant sweep --every``), as compose and
the CronJob run it, with limits scaled to a run of minutes."""
SWEEP_LIMITS = {"notification": 45.0, "delivered": 45.0, "cleared": 180.0}
"""``cleared`` outlasts a broker restart with a backlog: a case the sweep re-drives from there
had its message lost (a miss of its own, though the resident is still served)."""
CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"
TEMPLATE = "kallelse-screening"
FRAGMENTS = ("tid",)

Say = Callable[[str], None]


@dataclass(frozen=True)
class ChaosConfig:
    """The size and shape of a run."""

    broker: str = "rabbitmq"
    cases: int = 20_000
    groups: int = 3
    """``omvant worker`` processes (each one dramatiq worker process) under the supervisor."""
    threads: int = 4
    seed: int = 1177
    timeline: Timeline = field(default_factory=Timeline)
    min_seconds: float = 75.0
    """The notification rates are set so that the dispatch lasts at least this long: every
    fault must meet cases in flight."""
    stall_seconds: float = 240.0
    """Give up waiting when no case has settled for this long after the last fault."""
    timeout: float = 3600.0
    keep: Path | None = None
    email: str = "smtp"
    """``smtp`` (the SMTP sink: an in-doubt e-mail is settled by ``OMVANT_EMAIL_IN_DOUBT``) or
    ``api`` (the e-mail API simulator: settled by asking it by key; it is down with the SMS
    gateway)."""


class Simulator:
    """A shipped simulator run as a process of its own (``omvant sim ...``)."""

    def __init__(self, args: list[str], port: int, log_path: Path) -> None:
        self.port = port
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own command
                [OMVANT, "sim", *args, "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM it; SIGKILL it after 10 s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_port(port: int, timeout: float, what: str) -> None:
    from producers.chaos.servers import port_open

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.1)
    raise ServerError(f"{what} did not listen on {port} within {timeout:.0f} s")


def expected_cases(residents: list[str], batch_id: str, seed: int) -> list[Expected]:
    """Each line's case id (as the dispatch derives it) and the directory's verdict."""
    checks = check_recipients(residents, SimulatedAccountDirectory(seed))
    return [
        Expected(case_id_for(CLINIC, f"{batch_id}:{index}"), check.reachable, check.channels)
        for index, check in enumerate(checks)
    ]


def channel_rates(expected: list[Expected], seconds: float) -> dict[str, int]:
    """Per-channel send rates that make the notifications take ``seconds`` (at least 5/s)."""
    sms = sum("sms" in e.channels for e in expected if e.reachable)
    email = sum("email" in e.channels for e in expected if e.reachable)
    return {"sms": max(5, int(sms / seconds)), "email": max(5, int(email / seconds))}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as answer:  # noqa: S310 - our simulators
        return json.loads(answer.read())


def observe(
    root: Path,
    inbox_url: str,
    gateway_url: str,
    expected: list[Expected],
    email_api_url: str | None = None,
) -> tuple[Observed, int]:
    """What the simulators received, per case; and how many SMS POSTs repeated a key.

    The inbox and the gateway are asked over their APIs (each message under its idempotency
    key: ``CASE:inbox``, ``CASE:sms``); the SMTP sink's record file has one line per mail
    taken, whose Message-ID is derived from ``CASE:email``; the e-mail API simulator (when the
    run uses it) is asked for its messages (one per key ``CASE:email``).
    """

    def per_case(keys: list[str], suffix: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for key in keys:
            case_id, _, channel = key.rpartition(":")
            found[case_id if channel == suffix else key] += 1
        return found

    inbox = per_case(_get_json(f"{inbox_url}/v1/messages")["keys"], "inbox")
    stats = _get_json(f"{inbox_url}/v1/stats")
    taken = _get_json(f"{gateway_url}/messages")
    sms = per_case([str(m["key"]) for m in taken["messages"]], "sms")
    repeated_keys = len(taken["sends"]) - len(taken["messages"])
    by_message_id = {message_id(key_for(e.case_id, "email")): e.case_id for e in expected}
    email: Counter[str] = Counter()
    mail_file = root / "mails.jsonl"
    if email_api_url:
        keys = [str(m["key"]) for m in _get_json(f"{email_api_url}/v1/messages")["messages"]]
        email = per_case(keys, "email")
    elif mail_file.exists():
        for line in mail_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                mid = json.loads(line)["message_id"]
                email[by_message_id.get(mid, mid)] += 1
    observed = Observed(
        inbox=inbox,
        sms=sms,
        email=email,
        inbox_refused_duplicates=int(stats.get("duplicates_refused", 0)),
    )
    return observed, repeated_keys


def read_records(engine: sa.Engine, batch_id: str) -> dict[str, Record]:
    """The batch's cases and their first-round ledger rows."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(cases.c.id, cases.c.state, cases.c.channels, cases.c.inbox_message_id).where(
                cases.c.batch_id == batch_id
            )
        ).all()
        ledger: dict[str, dict[str, str]] = {}
        resolutions: dict[str, dict[str, str]] = {}
        ids = [r.id for r in rows]
        for start in range(0, len(ids), 5000):
            for entry in conn.execute(
                sa.select(
                    notification_ledger.c.case_id,
                    notification_ledger.c.channel,
                    notification_ledger.c.status,
                    notification_ledger.c.resolution,
                ).where(
                    notification_ledger.c.case_id.in_(ids[start : start + 5000]),
                    notification_ledger.c.round == 1,
                )
            ):
                ledger.setdefault(entry.case_id, {})[entry.channel] = entry.status
                if entry.resolution:
                    resolutions.setdefault(entry.case_id, {})[entry.channel] = entry.resolution
    return {
        r.id: Record(
            r.id,
            r.state,
            tuple(c for c in (r.channels or "").split(",") if c),
            r.inbox_message_id,
            ledger.get(r.id, {}),
            resolutions.get(r.id, {}),
        )
        for r in rows
    }


def settled_count(engine: sa.Engine, batch_id: str) -> int:
    """How many of the batch's cases the pipeline has finished with, as the product counts
    them (``notifications.count_settled``: a delivered case with a notification still open,
    or sent but not yet recorded notified, is still moving); -1 while the database is away."""
    try:
        with engine.connect() as conn:
            return notifications.count_settled(conn, batch_id=batch_id)
    except sa.exc.DBAPIError:
        return -1


def open_notifications(engine: sa.Engine, batch_id: str) -> int:
    """How many of the batch's notifications are still open (queued, pending or retry: e.g.
    an in-doubt e-mail waiting for its one resend beside a case already notified); -1 while
    the database is away. The run waits for none, by the same rule as its "stuck" row."""
    query = (
        sa.select(sa.func.count())
        .select_from(notification_ledger.join(cases, cases.c.id == notification_ledger.c.case_id))
        .where(
            cases.c.batch_id == batch_id,
            notification_ledger.c.status.in_(sorted(notifications.OPEN)),
        )
    )
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    except sa.exc.DBAPIError:
        return -1


def redis_clients(redis: RedisServer) -> int:
    """How many client connections the run's Redis has now (-1 if it cannot say)."""
    client: Any = redis.client()
    try:
        return len(client.client_list()) - 1  # not this one
    except Exception:  # noqa: BLE001 - a figure, not a verdict
        return -1
    finally:
        with contextlib.suppress(Exception):
            client.close()


def processes_of_run(database_url: str) -> list[int]:
    """Processes still running with this run's database in their environment (after the
    supervisor stopped its own: orphans, e.g. worker processes that outlived their main)."""
    marker = f"OMVANT_DATABASE_URL={database_url}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def in_doubt_resolutions(engine: sa.Engine) -> dict[str, int]:
    """How the run's in-doubt notifications were settled, per ``channel:resolution``."""
    with engine.connect() as conn:
        counts = notifications.count_resolutions(conn)
    return {f"{channel}:{how}": n for (channel, how), n in sorted(counts.items())}


def sweep_totals(engine: sa.Engine) -> dict[str, int]:
    """What the sweep runs of the run found and did, summed."""
    totals: Counter[str] = Counter()
    with engine.connect() as conn:
        for (counts,) in conn.execute(sa.select(sweep_runs.c.counts)):
            totals.update(json.loads(counts))
    return dict(sorted(totals.items()))


def write_list(path: Path, residents: list[str]) -> None:
    """The dispatch list as a region would give it: CSV with a personnummer column."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["personnummer"])
        writer.writerows([r] for r in residents)


def run_chaos(config: ChaosConfig, say: Say | None = None) -> dict[str, Any]:  # noqa: PLR0915 - the run, in order
    """Run the dispatch under the fault schedule; return the verdict and the figures."""
    say = say or (lambda _m: None)
    begun = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="omvant-chaos-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user and must reach its folder
    (root / "logs").mkdir()
    batch_id = f"chaos-{uuid.uuid4().hex[:10]}"
    residents = draw_residents(config.cases, seed=config.seed)
    expected = expected_cases(residents, batch_id, config.seed)
    log = FaultLog()
    with contextlib.ExitStack() as stack:
        say(f"servers of the run's own in {root}")
        postgres = PostgresServer(root, port=free_port(*PORTS)).start()
        stack.callback(postgres.stop)
        redis = RedisServer(root, port=free_port(*PORTS)).start()
        stack.callback(redis.stop)
        broker: RabbitServer | RedisServer = redis
        if config.broker == "rabbitmq":
            broker = RabbitServer(root, port=free_port(*PORTS), dist_port=free_port(*PORTS))
            broker.start()
            stack.callback(broker.stop)
        database_url = postgres.create_database("omvant")
        upgrade(database_url)
        gateway = Simulator(["sms-gateway"], free_port(*PORTS), root / "logs" / "sms-gateway.log")
        stack.callback(gateway.stop)
        email_api_url: str | None = None
        if config.email == "api":
            mail = Simulator(
                ["email-api", "--store", str(root / "email.sqlite3")],
                free_port(*PORTS),
                root / "logs" / "email-api.log",
            )
            email_api_url = f"http://127.0.0.1:{mail.port}"
            mail_env = {"OMVANT_EMAIL_API_URL": email_api_url}
        else:
            mail = Simulator(
                ["smtp-sink", "--record", str(root / "mails.jsonl")],
                free_port(*PORTS),
                root / "logs" / "smtp-sink.log",
            )
            mail_env = {"OMVANT_SMTP_URL": f"smtp://127.0.0.1:{mail.port}"}
        stack.callback(mail.stop)
        inbox = Simulator(
            ["inbox", "--store", str(root / "inbox.sqlite3")],
            free_port(*PORTS),
            root / "logs" / "inbox.log",
        )
        stack.callback(inbox.stop)
        inbox_url = f"http://127.0.0.1:{inbox.port}"
        _wait_port(inbox.port, 30, "the inbox simulator")
        _wait_port(gateway.port, 30, "the SMS gateway simulator")
        _wait_port(mail.port, 30, f"the e-mail simulator ({config.email})")
        gateway_url = f"http://127.0.0.1:{gateway.port}"
        rates = channel_rates(expected, config.min_seconds)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
        env.update(
            OMVANT_BROKER_URL=broker.url,
            OMVANT_DATABASE_URL=database_url,
            OMVANT_REDIS_URL=redis.url,
            OMVANT_QUEUE_PREFIX="chaos.",
            OMVANT_BLOB_DIR=str(root / "blobs"),
            OMVANT_SMS_GATEWAY_URL=gateway_url,
            OMVANT_INBOX_URL=inbox_url,
            **mail_env,
            OMVANT_SMS_PER_SECOND=str(rates["sms"]),
            OMVANT_EMAIL_PER_SECOND=str(rates["email"]),
            OMVANT_SEED=str(config.seed),
            OMVANT_LOG_LEVEL="WARNING",
            OMVANT_NOTIFIER_TIMEOUT_SECONDS="5",
            OMVANT_STARTUP_TIMEOUT_SECONDS="120",
            OMVANT_ANSWER_KEY=Fernet.generate_key().decode(),  # a run's own: servers need one
            OMVANT_SWEEP_LIMITS=json.dumps(SWEEP_LIMITS),
        )
        supervisor = Supervisor(
            env,
            root / "logs",
            groups=config.groups,
            threads=config.threads,
            services={"sweep": ["sweep", "--every", str(SWEEP_EVERY), "--json"]},
        )
        supervisor.start()
        stack.callback(supervisor.stop)
        deadline = time.monotonic() + 180
        while supervisor.ready() < config.groups and time.monotonic() < deadline:
            time.sleep(0.5)
        say(f"{supervisor.ready()} worker processes ready; rates {rates} per second")
        redis_clients_start = redis_clients(redis)
        listing = root / "residents.csv"
        write_list(listing, residents)
        enqueue_started = time.monotonic()
        done = subprocess.run(  # noqa: S603 - our own command
            [
                *(OMVANT, "dispatch", str(listing), "--template", TEMPLATE, "--clinic", CLINIC),
                *("--sender", SENDER, *(a for f in FRAGMENTS for a in ("--fragment", f))),
                *("--batch-id", batch_id, "--name", "chaos", "--json"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,  # about a second at ease; minutes on a machine loaded past 50
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"omvant dispatch failed: {done.stderr[-500:]}")
        enqueue_seconds = time.monotonic() - enqueue_started
        say(f"{config.cases} cases enqueued in {enqueue_seconds:.1f} s; faults begin")
        schedule = FaultSchedule(
            config.timeline,
            supervisor=supervisor,
            broker=broker,
            postgres=postgres,
            redis=redis,
            gateway_url=gateway_url,
            seed=config.seed,
            log=log,
            say=say,
            email_api_url=email_api_url,
        )
        schedule.start()
        engine = make_engine(database_url)
        last, last_change = (-1, -1), time.monotonic()
        while time.monotonic() - begun < config.timeout:
            time.sleep(2.0)
            settled = settled_count(engine, batch_id)
            still_open = open_notifications(engine, batch_id)
            if (settled, still_open) != last:
                last, last_change = (settled, still_open), time.monotonic()
                say(f"settled {max(settled, 0)}/{config.cases}, notifications open {still_open}")
            if settled >= config.cases and still_open == 0 and not schedule.is_alive():
                break
            if not schedule.is_alive() and time.monotonic() - last_change > config.stall_seconds:
                say(f"no case settled for {config.stall_seconds:.0f} s: giving up waiting")
                break
        schedule.join()
        dispatch_seconds = time.monotonic() - enqueue_started
        redis_clients_end = redis_clients(redis)
        supervisor.stop()
        time.sleep(2.0)
        orphans = processes_of_run(database_url)
        for pid in orphans:  # a run leaves nothing behind, and says what it had to end
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        records = read_records(engine, batch_id)
        resolutions = in_doubt_resolutions(engine)
        swept = sweep_totals(engine)
        engine.dispose()
        observed, repeated_keys = observe(root, inbox_url, gateway_url, expected, email_api_url)
        email_stats = _get_json(f"{email_api_url}/v1/stats") if email_api_url else {}
        worker_exits = Counter(supervisor.exits)
        if config.keep is not None:
            shutil.copytree(root / "logs", config.keep / "logs", dirs_exist_ok=True)
    rows = evaluate(expected, records, observed)
    rows.append(Row("worker processes outliving the run (orphans)", len(orphans)))
    rows.append(
        Row(
            "cases the sweep sent to inbox delivery again (their message lost)",
            swept.get("redriven-cleared", 0),
        )
    )
    kills = log.count("kill-9")
    fault_rows = [
        Row("worker processes killed (kill -9), at least", kills, limit=10**9),
        Row("broker restarts", log.count("broker-restart"), limit=10**9),
        Row("PostgreSQL crash-restarts", log.count("postgres-crash-restart"), limit=10**9),
        Row("SMS gateway 503 windows", log.count("sms-gateway-503"), limit=10**9),
        Row("e-mail API 503 windows", log.count("email-api-503"), limit=10**9),
        Row("Redis CLIENT KILLs", log.count("redis-client-kill"), limit=10**9),
        Row("Redis client connections cut", schedule.cut_connections, limit=10**9),
    ]
    faults_ok = (
        kills >= config.timeline.kills
        and log.count("broker-restart") >= 1
        and log.count("postgres-crash-restart") >= 1
        and log.count("sms-gateway-503") >= 1
        and schedule.cut_connections >= 1
        and not schedule.errors
    )
    if config.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    return {
        "ok": faults_ok and all(r.ok for r in rows),
        "broker": config.broker,
        "email": config.email,
        "cases": config.cases,
        "groups": config.groups,
        "threads": config.threads,
        "seconds": round(time.monotonic() - begun, 1),
        "dispatch_seconds": round(dispatch_seconds, 1),
        "enqueue_seconds": round(enqueue_seconds, 1),
        "load_average": [round(x, 2) for x in load],
        "rates_per_second": rates,
        "counts": summary_counts(expected, observed),
        "sms_posts_repeating_a_key": repeated_keys,
        "inbox_posts_repeating_a_key": observed.inbox_refused_duplicates,
        "email_api_posts_repeating_a_key": email_stats.get("duplicates_refused"),
        "worker_exits": {str(k): v for k, v in sorted(worker_exits.items())},
        "in_doubt_resolutions": resolutions,
        "redis_clients": {"start": redis_clients_start, "end": redis_clients_end},
        "sweep": swept,
        "faults": log.as_json(),
        "fault_errors": schedule.errors,
        "faults_ok": faults_ok,
        "checks": [
            {"check": r.check, "found": r.found, "ok": r.ok, "example": r.detail} for r in rows
        ],
        "fault_counts": {r.check: r.found for r in fault_rows},
    }


def render(result: dict[str, Any]) -> str:
    """The verdict table for people."""
    head = (
        f"chaos run: {result['broker']}, e-mail by {result['email']}, {result['cases']:,} "
        f"cases, {result['groups']} worker "
        f"processes x {result['threads']} threads, {result['seconds']:.0f} s "
        f"(dispatch {result['dispatch_seconds']:.0f} s), load average "
        f"{' '.join(str(x) for x in result['load_average'])}"
    )
    lines = [
        head,
        "",
        f"{'fault':<58} {'hits':>8}",
    ]
    for name, hits in result["fault_counts"].items():
        lines.append(f"{name:<58} {hits:>8}")
    lines += ["", f"{'check (from the simulators and the records)':<58} {'found':>8}  verdict"]
    for row in result["checks"]:
        example = f"  e.g. {row['example']}" if row["example"] and not row["ok"] else ""
        lines.append(
            f"{row['check']:<58} {row['found']:>8}  {'ok' if row['ok'] else 'MISS'}{example}"
        )
    counts = result["counts"]
    tail = (
        f"reachable {counts['reachable']:,} of {counts['cases']:,}; the inbox took "
        f"{counts['inbox_deliveries']:,}, the SMS gateway {counts['sms']:,}, the "
        f"{'e-mail API' if result['email'] == 'api' else 'SMTP sink'} {counts['emails']:,}; "
        f"repeated keys the inbox, the gateway and the e-mail API took as one: "
        f"{result['inbox_posts_repeating_a_key']}, {result['sms_posts_repeating_a_key']}, "
        f"{result['email_api_posts_repeating_a_key']}; "
        f"worker exits {result['worker_exits']}; Redis client connections "
        f"{result['redis_clients']['start']} at the start, {result['redis_clients']['end']} at "
        f"the end; in-doubt notifications settled "
        f"{result['in_doubt_resolutions'] or 'none'}; "
        f"the sweep {result['sweep'] or 'found nothing'}"
    )
    lines += ["", tail, "PASS" if result["ok"] else "FAIL"]
    return "\n".join(lines)


def main_say(line: str) -> None:
    """Progress on stderr, with the time into the run."""
    sys.stderr.write(f"chaos {time.strftime('%H:%M:%S')}: {line}\n")
    sys.stderr.flush()
