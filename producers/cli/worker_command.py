"""``omvant worker`` and ``omvant db``: how the system runs in production."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.exc import OperationalError

from producers.cli import errors
from producers.cli.errors import fail
from producers.cli.options import BrokerOption, DatabaseOption, settings_from
from workers import server_probe as servers
from workers.queues import URGENT, lane_queue, lanes_of, queue_name
from workers.reasons import Note, Reason
from workers.routes import STAGES
from workers.server_checks import (
    Check,
    ServerUnreachable,
    quiet_libraries,
    wait_for_servers,
)
from workers.settings import Settings
from workers.store.engine import (
    SchemaOutdated,
    check_schema,
    make_engine,
    refuse_a_missing_sqlite_file,
    upgrade,
)

if TYPE_CHECKING:
    from workers import readiness

EXIT_UNREACHABLE = 2
DRAMATIQ_MAIN = "workers.dramatiq_main"
"""dramatiq's main process, its own INFO lines quiet below DEBUG (``workers/dramatiq_main.py``)."""
FORK_WAIT_MS = 500
"""How long dramatiq's main process waits for each worker process to boot before it watches
them (its default, 30 s, is how long ``omvant worker`` took to exit when its worker processes
died while starting). The wait is for fork processes that worker processes declare as they
import; the metrics server is named on dramatiq's command line instead (``METRICS_FORK``), so
the main process knows it from the start and the wait stays short with ``--metrics-port``."""
METRICS_FORK = "workers.metrics_server:serve"
"""The metrics server, one fork process per ``omvant worker`` (``--fork-function``)."""
SHUTDOWN_GRACE_MS = 30_000
"""How long a worker process finishes the messages it holds when told to stop (dramatiq's
default is 10 minutes); what it has not finished goes back to the broker unacknowledged."""

db_app = typer.Typer(help="The system of record.", no_args_is_help=True)


DEFAULT_THREADS = 8
"""Threads per worker process; an urgent lanes' worker has this many per lane it consumes."""

ALL_LANES = "all"
URGENT_LANES = "urgent"
OTHER_LANES = "others"
LANE_CHOICES = (ALL_LANES, URGENT_LANES, OTHER_LANES)
"""``omvant worker --lanes``: every lane; only the urgent lanes; every lane but urgent."""


def consumed_queues(stages: list[str], prefix: str = "", *, lanes: str = ALL_LANES) -> list[str]:
    """The queues a worker of ``stages`` consumes: every lane of each stage, or only its
    urgent lane (``URGENT_LANES``), or all but that (``OTHER_LANES``)."""
    return [
        queue_name(lane_queue(STAGES[s].queue, lane), prefix)
        for s in stages
        for lane in lanes_of(STAGES[s].queue)
        if lanes == ALL_LANES or (lane == URGENT) == (lanes == URGENT_LANES)
    ]


def threads_for(queues: list[str], lanes: str) -> int:
    """The default threads of a worker process consuming ``queues``: ``DEFAULT_THREADS``, and
    as many per lane for an urgent lanes' worker. Its messages are single cases whose time goes
    mostly to PostgreSQL round trips, not the interpreter, so it needs threads to wait in
    rather than cores: with 8 threads for five stages' lanes a busy machine kept urgent cases
    queueing for seconds (issue 14's measurements, README)."""
    return DEFAULT_THREADS * len(queues) if lanes == URGENT_LANES else DEFAULT_THREADS


def worker(
    stages: Annotated[
        list[str] | None,
        typer.Argument(help=f"Stages to run (default all): {', '.join(STAGES)}."),
    ] = None,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"Threads per process (default {DEFAULT_THREADS}; with --lanes urgent "
            f"{DEFAULT_THREADS} per urgent lane).",
        ),
    ] = None,
    lanes: Annotated[
        str,
        typer.Option(
            help="all: every lane; urgent: only the urgent lanes (a process of their own, so "
            "an urgent case never waits behind bulk chunks); others: every lane but urgent."
        ),
    ] = ALL_LANES,
    nice: Annotated[
        int,
        typer.Option(
            min=-20,
            max=19,
            envvar="OMVANT_WORKER_NICE",
            help="Run the worker processes this much nicer (lower CPU priority). Beside an "
            "--lanes urgent worker on the same machine, give the --lanes others worker e.g. 10, "
            "so an urgent case gets a core first while bulk chunks keep the rest busy; below 0 "
            "(the urgent worker, a CPU reservation) needs the right to (CAP_SYS_NICE).",
        ),
    ] = 0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="OMVANT_METRICS_PORT",
            min=0,
            help="Serve /metrics and /healthz on this port (0: any free port; unset: none).",
        ),
    ] = None,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Say startup waits and errors as JSON on stderr.")
    ] = False,
) -> None:
    """Run stage workers (dramatiq processes) against the configured broker and database."""
    del as_json  # read from the command line by producers.cli.errors (json_asked)
    by_queue = {str(route.queue): name for name, route in STAGES.items()}
    # a stage's queue name (README's table: message-composition) names the stage too
    chosen = list(dict.fromkeys(by_queue.get(s, s) for s in stages or list(STAGES)))
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        fail(
            Reason.USAGE_ERROR,
            f"unknown stage(s): {', '.join(unknown)}; stages: {', '.join(STAGES)} "
            "(or their queues' names)",
        )
    if lanes not in LANE_CHOICES:
        fail(Reason.USAGE_ERROR, f"--lanes is one of {', '.join(LANE_CHOICES)}")
    if nice:
        try:
            os.nice(nice)  # dramatiq's main process and the worker processes it forks inherit it
        except PermissionError:
            fail(Reason.USAGE_ERROR, f"--nice {nice} needs the right to (CAP_SYS_NICE)")
    settings = settings_from(broker, database)
    if settings.broker_url.startswith("memory"):
        fail(
            Reason.USAGE_ERROR,
            "omvant worker needs a real broker (amqp:// or redis://); "
            "omvant demo runs everything in one process",
        )
    from workers.answer_seal import answer_seal

    answer_seal(settings)  # no OMVANT_ANSWER_KEY outside the embedded default: one line, exit 2
    wait_or_exit(settings, chosen)
    refuse_a_stale_schema(settings.database_url)
    os.environ["OMVANT_BROKER_URL"] = settings.broker_url
    os.environ["OMVANT_DATABASE_URL"] = settings.database_url
    os.environ["dramatiq_worker_timeout"] = str(settings.idle_poll_ms)  # noqa: SIM112 - dramatiq reads this name
    if metrics_port is not None:
        prepare_metrics(metrics_port)
    queues = consumed_queues(chosen, settings.queue_prefix, lanes=lanes)
    if not queues:
        fail(Reason.USAGE_ERROR, f"the stage(s) {', '.join(chosen)} have no {lanes} lanes")
    argv = dramatiq_argv(
        queues,
        processes=processes,
        threads=threads or threads_for(queues, lanes),
        log_level=settings.log_level,
        forks=[] if metrics_port is None else [METRICS_FORK],
    )
    from workers.readiness import READY_VARIABLE  # here: the checks above start fast
    from workers.server_watch import MAIN_PID_VARIABLE

    # dramatiq's main process keeps this pid: its worker processes watch for it (server_watch)
    os.environ[MAIN_PID_VARIABLE] = str(os.getpid())
    os.environ[READY_VARIABLE] = ready_plan(chosen, lanes, processes).to_env()
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with dramatiq's


def wait_or_exit(settings: Settings, stages: list[str] | None = None) -> None:
    """Wait for the broker, the database and each server ``stages`` call that the settings
    configure (``OMVANT_STARTUP_TIMEOUT_SECONDS``), one line per failed attempt on stderr; exit
    with status 2 and one line if they do not answer in time."""
    quiet_libraries()

    as_json = errors.json_asked()

    def say(line: str) -> None:
        errors.note(Note.SERVER_WAITING, line if as_json else f"omvant worker: {line}")

    from producers import STARTED

    deadline = STARTED + settings.startup_timeout_seconds
    names = [servers.BROKER, servers.DATABASE]
    names += [c.name for c in stage_checks(settings, stages or list(STAGES)) if c.name not in names]
    checks = [
        Check(name, functools.partial(probe_server, settings, name, deadline)) for name in names
    ]
    try:
        wait_for_servers(checks, timeout=settings.startup_timeout_seconds, say=say, started=STARTED)
    except ServerUnreachable as exc:
        if as_json:
            probed = exc.__cause__.__cause__ if exc.__cause__ else None
            reason = getattr(probed, "reason", "server-unreachable")
            errors.fail(reason, str(exc), EXIT_UNREACHABLE, as_json=True)
        say(str(exc))
        raise typer.Exit(EXIT_UNREACHABLE) from None


def stage_checks(settings: Settings, stages: list[str]) -> list[Check]:
    """A check of each outside server ``stages`` call (``Route.servers``), once each, in the
    order the stages name them; one the settings do not configure passes at once."""
    names = list(dict.fromkeys(server for stage in stages for server in STAGES[stage].servers))
    return [Check(name, functools.partial(probe_server, settings, name)) for name in names]


def probe_server(settings: Settings, server: str, deadline: float | None = None) -> None:
    """Ask ``server`` as ``workers.server_probe`` does (its URL masked, what to check), within
    ``OMVANT_CONNECT_TIMEOUT`` and never much past ``deadline`` (``time.monotonic``).

    Raises
    ------
    ServerUnreachable
        It did not answer within ``OMVANT_CONNECT_TIMEOUT`` seconds.
    """
    if deadline is not None:
        left = max(0.5, min(settings.connect_timeout, deadline - time.monotonic()))
        settings = settings.model_copy(update={"connect_timeout": left})
    try:
        servers.require(settings, [server])
    except servers.ServerUnreachable as exc:
        raise ServerUnreachable(exc.message.removeprefix("cannot reach ")) from exc


def ready_plan(stages: list[str], lanes: str, processes: int) -> readiness.Plan:
    """What the worker processes say ``worker.ready`` with, and the fresh file they count
    themselves in (``workers/readiness.py``)."""
    from workers.readiness import Plan

    path = Path(tempfile.gettempdir()) / f"omvant-worker-{os.getpid()}.ready"
    path.unlink(missing_ok=True)  # a pid used again: an earlier start's leftover
    return Plan(file=str(path), processes=processes, stages=stages, lanes=lanes)


def prepare_metrics(port: int) -> str:
    """Set up the multi-process metrics of the worker processes dramatiq will fork: a fresh
    ``PROMETHEUS_MULTIPROC_DIR`` (the one given, emptied, else a new temporary one) and the
    port ``workers/metrics_server.py`` serves on. Returns the folder."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="omvant-metrics-"
    )
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    os.environ["OMVANT_METRICS_PORT"] = str(port)
    return str(path)


def dramatiq_argv(
    queues: list[str],
    *,
    processes: int,
    threads: int,
    log_level: str = "INFO",
    forks: list[str] | None = None,
) -> list[str]:
    """The dramatiq command line ``omvant worker`` becomes.

    dramatiq sets up the standard library's logging in its worker processes before our
    ``configure`` runs, so ``OMVANT_LOG_LEVEL=DEBUG`` reaches dramatiq and the libraries only
    through its ``--verbose`` (identity numbers stay masked by the filter ``configure`` adds);
    below DEBUG ``workers.dramatiq_main`` keeps dramatiq's own INFO lines quiet.
    """
    verbose = ["--verbose"] if log_level.strip().upper() == "DEBUG" else []
    return [
        sys.executable,
        "-m",
        DRAMATIQ_MAIN,
        "workers.app",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--worker-fork-timeout",
        str(FORK_WAIT_MS),
        *(arg for fork in forks or [] for arg in ("--fork-function", fork)),
        "--worker-shutdown-timeout",
        str(SHUTDOWN_GRACE_MS),
        *verbose,
        "--queues",
        *queues,
    ]


def refuse_a_stale_schema(database_url: str) -> None:
    """Workers never migrate (``omvant db upgrade`` does, once, with the rights to): on a
    database whose schema is not this code's they stop with one line and exit status 2
    (``SchemaOutdated``, ``schema-outdated``) before dramatiq starts."""
    engine = make_engine(database_url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()


SCHEMA_POLL_SECONDS = 2.0


def wait_for_schema(database_url: str, wait_seconds: float) -> None:
    """Return once the database's schema is this code's; until ``wait_seconds`` have passed
    keep asking (the database may still be starting, the migration still running), then
    raise what the last check found (``SchemaOutdated``, or the database's error). A SQLite
    file that does not exist (yet) is not created by asking."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            refuse_a_missing_sqlite_file(database_url)
            refuse_a_stale_schema(database_url)
        except (SchemaOutdated, OperationalError):
            if time.monotonic() + SCHEMA_POLL_SECONDS > deadline:
                raise
            time.sleep(SCHEMA_POLL_SECONDS)
        else:
            return


@db_app.command("check")
def db_check(
    database: DatabaseOption = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="Seconds to keep waiting for the schema (e.g. for the migration Job).",
        ),
    ] = 0.0,
) -> None:
    """Exit 0 when the database's schema is this code's, else one line and exit status 2
    (``schema-outdated``). Never migrates: a pod's init container waits with it for
    ``omvant db upgrade`` (the migration Job) before the workers start."""
    settings = settings_from(None, database)
    wait_for_schema(settings.database_url, wait)
    typer.echo(f"schema up to date: {servers.mask_url(settings.database_url)}")


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Bring the database's schema up to date."""
    settings = settings_from(None, database, require=(servers.DATABASE,))
    upgrade(settings.database_url)
    typer.echo(f"schema up to date: {servers.mask_url(settings.database_url)}")
