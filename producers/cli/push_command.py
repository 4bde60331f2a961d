"""``omvant push FILE.jsonl``: the integration teams' path onto the intake queue."""

from __future__ import annotations

import codecs
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError
from rich.progress import Progress

from contracts.envelope import CorrelationId
from contracts.registry import VERSIONS
from contracts.send_case import NAME as SEND_CASE
from contracts.send_case import SendCaseV2
from producers.cli.errors import fail, note
from producers.cli.options import BrokerOption, JsonOption, settings_from
from producers.intake import LineError, read_send_cases
from workers import server_probe as servers
from workers.broker import build_broker
from workers.enqueue import push_chunk
from workers.log import mask_identity_numbers
from workers.reasons import Note, Reason


def text_lines(path: Path, errors: list[LineError]) -> Iterator[str]:
    """The file's lines as text, for ``read_send_cases``.

    A UTF-8 byte-order mark at the start (as Windows tools write) is dropped. A line that is not
    UTF-8 is reported in ``errors`` (``malformed-message``) and read as a blank line, so the
    other lines keep their numbers and are still pushed.
    """
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            data = line.removeprefix(codecs.BOM_UTF8) if number == 1 else line
            try:
                yield data.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.append(
                    LineError(number, "malformed-message", f"not UTF-8 (byte {exc.start + 1})")
                )
                yield "\n"


def push(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="SendCase JSONL.")],
    broker: BrokerOption = None,
    contract_version: Annotated[
        int | None, typer.Option("--contract-version", help="SendCase version of the lines.")
    ] = None,
    correlation_id: Annotated[str | None, typer.Option(help="Correlation id to carry.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Put each line's SendCase on the intake queue, in chunks; report invalid lines.

    With --json: one object on stdout, {"pushed", "invalid_lines", "correlation_id", "lines":
    [{"line", "reason", "detail"}]}, and no progress bar; errors as {"error": ...} on stderr.
    """
    versions = sorted(VERSIONS[SEND_CASE])
    if contract_version is not None and contract_version not in versions:
        fail(
            Reason.USAGE_ERROR,
            f"SendCase has versions {versions}, not {contract_version}",
            as_json=as_json,
        )
    if correlation_id is not None:
        try:
            TypeAdapter(CorrelationId).validate_python(correlation_id)
        except ValidationError as exc:
            rule = exc.errors()[0]
            fail(
                Reason.USAGE_ERROR,
                f"--correlation-id: {rule['msg']} (1 to 64 characters, no control characters)",
                as_json=as_json,
            )
    settings = settings_from(broker, None)
    if settings.broker_url.startswith("memory"):
        fail(
            Reason.USAGE_ERROR,
            "push needs a real broker: --broker amqp://... or redis://...",
            as_json=as_json,
        )
    servers.require(settings, (servers.BROKER,))
    target = build_broker(settings.broker_url)
    correlation = correlation_id or uuid.uuid4().hex
    errors: list[LineError] = []
    pushed = 0
    chunk: list[SendCaseV2] = []
    with file.open("rb") as raw:
        total = sum(1 for line in raw if line.strip())
    with Progress(disable=as_json) as bar:
        task = bar.add_task("pushing", total=total)
        lines = text_lines(file, errors)
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
    errors.sort(key=lambda error: error.line)
    if as_json:
        summary = {
            "pushed": pushed,
            "invalid_lines": len(errors),
            "correlation_id": correlation,
            "lines": [
                {"line": e.line, "reason": e.reason, "detail": mask_identity_numbers(e.detail)}
                for e in errors
            ],
        }
        typer.echo(json.dumps(summary, ensure_ascii=False))
        if errors:
            raise typer.Exit(1)
        return
    for error in errors:
        note(
            Note.LINE_INVALID,
            f"line {error.line}: {error.reason}: {mask_identity_numbers(error.detail)}",
        )
    typer.echo(f"pushed {pushed} cases, {len(errors)} invalid lines, correlation {correlation}")
    if errors:
        raise typer.Exit(1)
