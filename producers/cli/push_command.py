"""``omvant push FILE.jsonl``: the integration teams' path onto the intake queue."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from contracts.send_case import SendCaseV2
from producers.cli.options import BrokerOption, settings_from
from producers.intake import LineError, push_chunk, read_send_cases
from workers.broker import build_broker
from workers.log import mask_identity_numbers


def push(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="SendCase JSONL.")],
    broker: BrokerOption = None,
    contract_version: Annotated[
        int | None, typer.Option("--contract-version", help="SendCase version of the lines.")
    ] = None,
    correlation_id: Annotated[str | None, typer.Option(help="Correlation id to carry.")] = None,
) -> None:
    """Put each line's SendCase on the intake queue, in chunks; report invalid lines."""
    settings = settings_from(broker, None)
    if settings.broker_url.startswith("memory"):
        typer.echo("push needs a real broker: --broker amqp://... or redis://...", err=True)
        raise typer.Exit(2)
    target = build_broker(settings.broker_url)
    correlation = correlation_id or uuid.uuid4().hex
    errors: list[LineError] = []
    pushed = 0
    chunk: list[SendCaseV2] = []
    total = sum(1 for _ in file.open(encoding="utf-8"))
    with Progress() as bar, file.open(encoding="utf-8") as lines:
        task = bar.add_task("pushing", total=total)
        for result in read_send_cases(lines, version=contract_version):
            bar.advance(task)
            if isinstance(result, LineError):
                errors.append(result)
                continue
            chunk.append(result)
            if len(chunk) >= settings.chunk_size:
                push_chunk(target, chunk, correlation_id=correlation, prefix=settings.queue_prefix)
                pushed += len(chunk)
                chunk = []
        if chunk:
            push_chunk(target, chunk, correlation_id=correlation, prefix=settings.queue_prefix)
            pushed += len(chunk)
    target.close()
    for error in errors:
        typer.echo(
            f"line {error.line}: {error.reason}: {mask_identity_numbers(error.detail)}", err=True
        )
    typer.echo(f"pushed {pushed} cases, {len(errors)} invalid lines, correlation {correlation}")
    if errors:
        raise typer.Exit(1)
