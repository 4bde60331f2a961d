"""``omvant chaos``: the chaos suite (``producers/chaos/``), bounded, with a verdict table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from producers.cli.errors import fail, note
from producers.cli.options import JsonOption
from workers.reasons import Note, Reason


def chaos(
    broker: Annotated[
        str, typer.Option(envvar="CHAOS_BROKER", help="rabbitmq or redis (a server of its own).")
    ] = "rabbitmq",
    cases: Annotated[
        int, typer.Option(envvar="CHAOS_CASES", min=100, help="Cases in the dispatch.")
    ] = 20_000,
    groups: Annotated[int, typer.Option(min=1, help="omvant worker processes supervised.")] = 3,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker process.")] = 4,
    kills: Annotated[int, typer.Option(min=1, help="kill -9 hits, at least.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the residents and the kills.")] = 1177,
    keep: Annotated[Path | None, typer.Option(help="Copy the run's logs into this folder.")] = None,
    email: Annotated[
        str,
        typer.Option(
            envvar="CHAOS_EMAIL",
            help="smtp (the SMTP sink) or api (the e-mail API simulator, asked about doubts).",
        ),
    ] = "smtp",
    as_json: JsonOption = False,
) -> None:
    """Dispatch under faults on servers of its own; check at the simulators; exit 1 on a miss.

    Starts its own PostgreSQL cluster, Redis and (for rabbitmq) RabbitMQ node on loopback
    ports 25000-25999, the SMS gateway and SMTP (or, with --email api, e-mail API) simulators
    as processes and supervised
    ``omvant worker`` processes; kills workers with kill -9, restarts the broker,
    crash-restarts PostgreSQL, fails the SMS gateway for 25 s and cuts Redis connections.
    """
    from producers.chaos.faults import Timeline
    from producers.chaos.run import ChaosConfig, main_say, render, run_chaos

    if broker not in {"rabbitmq", "redis"}:
        fail(Reason.USAGE_ERROR, f"--broker must be rabbitmq or redis, not {broker!r}")
    if email not in {"smtp", "api"}:
        fail(Reason.USAGE_ERROR, f"--email must be smtp or api, not {email!r}")
    config = ChaosConfig(
        broker=broker,
        cases=cases,
        groups=groups,
        threads=threads,
        seed=seed,
        timeline=Timeline(kills=kills),
        keep=keep,
        email=email,
    )
    # progress under --json: one note object per line on stderr, as every command's notes
    say = (lambda line: note(Note.PROGRESS, line)) if as_json else main_say
    result = run_chaos(config, say=say)
    typer.echo(json.dumps(result, indent=2) if as_json else render(result))
    raise typer.Exit(0 if result["ok"] else 1)
