"""``omvant bench``: the benchmark that proves the speed (see ``producers/bench.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts.envelope import MAX_CHUNK
from producers.bench import BenchConfig, run_bench, threads_for_cores
from producers.bench_workers import LAYOUTS
from producers.cli.errors import fail, note
from producers.cli.options import BrokerOption, DatabaseOption, JsonOption, settings_from
from workers import server_probe as servers
from workers.log import configure
from workers.reasons import Note, Reason
from workers.routes import STAGES

KEYS = (
    "noop_msgs_per_s",
    "pipeline_cases_per_s",
    "ratio",
    "pipeline_p99_ms",
    "urgent_p50_ms",
    "urgent_p99_ms",
    "broker",
    "cases",
    "complete",
    "layout",
    "worker_niceness",
    "urgent_threads",
    "threads",
    "noop_threads",
    "enqueue_cases_per_s",
    "enqueue_cpu_ms_per_case",
    "cpu_ms_per_case",
    "postgres_writes_per_case",
    "noop_before",
    "noop_after",
    "load_average",
    "profile",
)


def bench(
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    cases: Annotated[int, typer.Option(min=1, help="Cases in the dispatch (b).")] = 100_000,
    noop_messages: Annotated[
        int | None, typer.Option(min=1, help="Messages for the no-op actor (a); default --cases.")
    ] = None,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Threads per worker process (default: 2 per core, 4 to 8: 4 on 2 cores).",
            show_default=False,
        ),
    ] = None,
    noop_threads: Annotated[
        int,
        typer.Option(min=1, help="Threads per process of the no-op drain (dramatiq's default)."),
    ] = 8,
    chunk_size: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_CHUNK, help="Cases per message on urgent and normal lanes."),
    ] = None,
    bulk_chunk_size: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_CHUNK, help="Cases per message on the bulk lanes (the dispatch's)."
        ),
    ] = None,
    log_dir: Annotated[Path, typer.Option(help="Where worker logs go.")] = Path("bench-logs"),
    urgent_every: Annotated[
        float,
        typer.Option(min=0.01, help="Seconds between the urgent probe's single cases (c)."),
    ] = 0.1,
    layout: Annotated[
        str,
        typer.Option(
            help="stages: one worker process per stage (CPU per stage; --processes is for the "
            "no-op drain only); shared: --processes processes consume every stage."
        ),
    ] = "stages",
    urgent_worker: Annotated[
        bool,
        typer.Option(
            help="The urgent lanes of every stage in a worker process of their own (as "
            "omvant worker --lanes urgent beside --lanes others); its CPU is 'urgent-lanes'."
        ),
    ] = True,
    bulk_nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="With --urgent-worker: the other worker processes run this much nicer (lower "
            "CPU priority, as omvant worker --nice), so the urgent lanes' process gets a core "
            "first.",
        ),
    ] = 10,
    urgent_processes: Annotated[
        int,
        typer.Option(min=1, help="With --urgent-worker: the urgent lanes' worker processes."),
    ] = 1,
    urgent_nice: Annotated[
        int,
        typer.Option(
            min=-20,
            max=19,
            help="With --urgent-worker: the urgent lanes' processes' niceness; below 0 it is a "
            "CPU reservation (as a deployment gives the urgent worker a core of its own) and "
            "needs the right to (root or CAP_SYS_NICE).",
        ),
    ] = 0,
    urgent_threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --urgent-worker: threads per urgent lanes' process (default --threads "
            "per urgent lane, as omvant worker --lanes urgent).",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            metavar="STAGE",
            help=f"Profile one stage's worker processes (cProfile): {', '.join(STAGES)}.",
        ),
    ] = None,
    profile_clock: Annotated[
        str,
        typer.Option(help="cpu: each thread's CPU time (what costs CPU); wall: waits included."),
    ] = "cpu",
    as_json: JsonOption = False,
    details: Annotated[bool, typer.Option(help="With --json: every figure measured.")] = False,
) -> None:
    """Measure dramatiq's no-op rate (before and after), the pipeline's rate and latencies,
    urgent latency, and CPU time per case of each stage, PostgreSQL and the broker."""
    if layout not in LAYOUTS:
        fail(Reason.USAGE_ERROR, f"--layout is one of {', '.join(LAYOUTS)}")
    if profile is not None and profile not in STAGES:
        fail(Reason.USAGE_ERROR, f"unknown stage {profile!r}; stages: {', '.join(STAGES)}")
    if profile_clock not in ("cpu", "wall"):
        fail(Reason.USAGE_ERROR, "--profile-clock is cpu or wall")
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(Reason.USAGE_ERROR, f"cannot use --log-dir {log_dir}: {exc.strerror or exc}")
    # the benchmark creates its own database: only the broker must be there already
    settings = settings_from(broker, database, require=(servers.BROKER,))
    if settings.broker_url.startswith("memory"):
        fail(
            Reason.USAGE_ERROR,
            "omvant bench needs a real broker: --broker amqp://... or redis://...",
        )
    if chunk_size:
        settings = settings.model_copy(update={"chunk_size": chunk_size})
    if bulk_chunk_size:
        settings = settings.model_copy(update={"bulk_chunk_size": bulk_chunk_size})
    configure("WARNING")
    config = BenchConfig(
        cases=cases,
        noop_messages=noop_messages or cases,
        processes=processes,
        threads=threads or threads_for_cores(),
        noop_threads=noop_threads,
        log_dir=log_dir,
        urgent_every=urgent_every,
        layout=layout,
        profile=profile,
        profile_clock=profile_clock,
        urgent_worker=urgent_worker,
        bulk_nice=bulk_nice,
        urgent_processes=urgent_processes,
        urgent_nice=urgent_nice,
        urgent_threads=urgent_threads,
    )
    figures = run_bench(
        settings, config, say=None if as_json else lambda m: typer.echo(m, err=True)
    )
    if as_json:
        shown = figures if details else {k: figures[k] for k in KEYS}
        typer.echo(json.dumps(shown))
    else:
        for line in table(figures):
            typer.echo(line)
    if figures["profile"]:
        where = figures["profile"]["pstats"] or "nothing written (no profiled process stopped)"
        summary = figures["profile"]["summary"]
        note(
            Note.PROFILE_WRITTEN,
            f"profile of {figures['profile']['stage']}: {where}; summary: {summary}",
            as_json=as_json,
        )
    if not figures["complete"]:
        settled = figures["details"]["settled"]
        fail(
            Reason.BENCH_INCOMPLETE,
            f"{settled} of {figures['cases']} cases settled before the timeout; "
            "the rates above are not a measurement of the whole dispatch",
            1,
        )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.0f}"
    return str(value)


def table(figures: dict[str, Any]) -> list[str]:
    """The human output: rates and ratios, then CPU milliseconds per case."""
    cpu = figures["cpu_ms_per_case"]
    before, after, load = figures["noop_before"], figures["noop_after"], figures["load_average"]
    rows = [
        ("broker / database", f"{figures['broker']} / {figures['database']}"),
        ("cases (complete)", f"{figures['cases']} ({figures['complete']})"),
        ("layout, threads", _layout_cell(figures)),
        (
            "no-op before / after (msgs/s)",
            f"{_cell(before['msgs_per_s'])} / {_cell(after['msgs_per_s'])}",
        ),
        ("pipeline (cases/s)", _cell(figures["pipeline_cases_per_s"])),
        ("ratio to no-op before / after", f"{_cell(before['ratio'])} / {_cell(after['ratio'])}"),
        ("dispatch enqueue (cases/s)", _cell(figures["enqueue_cases_per_s"])),
        ("dispatch enqueue CPU (ms per case)", _cell(figures["enqueue_cpu_ms_per_case"])),
        ("pipeline p99 (ms)", _cell(figures["pipeline_p99_ms"])),
        (
            "urgent p50 / p99 (ms)",
            f"{_cell(figures['urgent_p50_ms'])} / {_cell(figures['urgent_p99_ms'])}",
        ),
        ("load average start / end", f"{load['start']} / {load['end']}"),
        (
            "no-op CPU ms per message before / after",
            f"{_cell(before['cpu_ms_per_message'])} / {_cell(after['cpu_ms_per_message'])}",
        ),
    ]
    rows += [(f"CPU ms/case {name}", _cell(value)) for name, value in cpu["stages"].items()]
    rows += [
        ("CPU ms/case workers total", _cell(cpu["workers_total"])),
        ("CPU ms/case postgres (cluster)", _cell(cpu["postgres"])),
        ("CPU ms/case postgres (bench database)", _cell(cpu["postgres_bench_database"])),
        ("CPU ms/case broker", _cell(cpu["broker"])),
        ("CPU ms/case bench process", _cell(cpu["dispatching_client"])),
    ]
    idle = ", ".join(f"{k} {_cell(v)}" for k, v in cpu["idle_cpu_percent"].items())
    rows.append(("idle CPU % of a core, before", idle))
    written = figures["postgres_writes_per_case"]
    if written:
        rows.append(("PostgreSQL per case", ", ".join(f"{k} {v}" for k, v in written.items())))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines.append(f"CPU: {cpu['how']}")
    return lines


def _layout_cell(figures: dict[str, Any]) -> str:
    threads, noop = figures["threads"], figures["noop_threads"]
    return f"{figures['layout']}, {threads} threads per process (no-op drain {noop})"
