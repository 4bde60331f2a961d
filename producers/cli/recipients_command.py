"""``omvant recipients check`` and ``omvant recipients bench``: the pre-send check.

1177 tells staff to check, before sending, that the resident has an active login and has turned
on SMS or e-mail notifications. ``check`` does that for a few numbers or a whole dispatch list,
with the same verdicts and reason codes as the pipeline's recipient validation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from producers.cli.errors import fail
from producers.cli.options import JsonOption, settings_from
from producers.recipient_check import CheckSummary, run_check
from workers import server_probe as servers
from workers.adapters.account_directory import DirectoryUnavailable
from workers.bootstrap import build_directory
from workers.reasons import Reason
from workers.server_probe import require
from workers.settings import Settings

EXIT_ALL_REACHABLE, EXIT_SOME_UNREACHABLE, EXIT_USAGE, EXIT_DIRECTORY_DOWN = 0, 1, 2, 3

app = typer.Typer(
    help="Check residents before sending: a valid number, an active 1177 login, notifications.",
    no_args_is_help=True,
)

DirectoryOption = Annotated[
    str | None,
    typer.Option(
        "--directory",
        help="Account directory URL (default: OMVANT_DIRECTORY_URL, else the simulator).",
    ),
]


def _settings(directory: str | None) -> Settings:
    """Settings with ``--directory`` on top; a directory URL that is not http(s) is a usage
    error (exit 2), not an unreachable directory (exit 3)."""
    settings = settings_from(directory_url=directory)
    url = settings.directory_url
    if url and not url.lower().startswith(("http://", "https://")):
        fail(
            Reason.INVALID_SETTING,
            f"the account directory URL must be http:// or https://, not {url!r}",
            EXIT_USAGE,
        )
    require(settings, (servers.DIRECTORY, servers.REDIS))
    return settings


@app.command("check")
def check(
    numbers: Annotated[
        list[str] | None, typer.Argument(help="Identity numbers, in any common written form.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A dispatch list: one number per line ('-': stdin)."),
    ] = None,
    as_json: JsonOption = False,
    directory: DirectoryOption = None,
    retries: Annotated[
        int, typer.Option(min=0, help="Retries while the directory is unavailable.")
    ] = 3,
) -> None:
    """Say for each number whether the resident can be reached through 1177, and why not.

    With --json, one JSON object per line (input, valid, normalized, kind, reachable, channels,
    reason, detail); with --file, a closing summary of counts per reason ({"summary": ...} with
    --json). Exit status: 0 every number reachable, 1 some not, 2 usage error or a directory that
    does not answer at the start, 3 the directory stopped answering during the check.
    """
    if bool(numbers) == (file is not None):
        fail(Reason.USAGE_ERROR, "give identity numbers, or --file FILE, but not both", EXIT_USAGE)
    if file is not None and str(file) != "-" and not file.is_file():
        fail(Reason.USAGE_ERROR, f"no such file: {file}", EXIT_USAGE)
    target = build_directory(_settings(directory))
    try:
        if file is None:
            summary = run_check(numbers or [], target, sys.stdout, as_json=as_json, retries=retries)
        elif str(file) == "-":
            summary = run_check(sys.stdin, target, sys.stdout, as_json=as_json, retries=retries)
        else:
            with file.open(encoding="utf-8", errors="replace") as lines:
                summary = run_check(lines, target, sys.stdout, as_json=as_json, retries=retries)
    except DirectoryUnavailable as exc:
        sys.stdout.flush()
        fail(
            Reason.DIRECTORY_UNREACHABLE,
            f"the account directory could not be reached: {exc}",
            EXIT_DIRECTORY_DOWN,
        )
    finally:
        target.close()
    if file is not None:
        _print_summary(summary, as_json=as_json)
    raise typer.Exit(EXIT_ALL_REACHABLE if summary.unreachable == 0 else EXIT_SOME_UNREACHABLE)


def _print_summary(summary: CheckSummary, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.as_json()))
        return
    typer.echo(
        f"checked {summary.checked}: {summary.reachable} reachable, "
        f"{summary.unreachable} not reachable"
    )
    for reason, count in sorted(summary.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        typer.echo(f"  {reason}\t{count}")


@app.command("bench")
def bench(
    as_json: JsonOption = False,
    numbers: Annotated[int, typer.Option(min=1, help="Numbers to parse.")] = 200_000,
    lines: Annotated[int, typer.Option(min=1, help="Lines of the list to pre-check.")] = 100_000,
    http: Annotated[
        bool, typer.Option("--http", help="Also pre-check through HTTP (simulator on loopback).")
    ] = False,
    directory: DirectoryOption = None,
) -> None:
    """Measure parse throughput (one core) and the pre-check of a large dispatch list with the
    configured directory (the simulator by default)."""
    from producers.recipient_bench import bench_check_file, bench_check_over_http, bench_parse

    settings = _settings(directory)
    target = build_directory(settings)
    try:
        figures = {
            "parse": bench_parse(numbers, seed=settings.seed),
            "check_file": {
                "directory": type(target).__name__,
                **bench_check_file(lines, target, seed=settings.seed),
            },
        }
    finally:
        target.close()
    if http:
        figures["check_file_http"] = bench_check_over_http(lines, seed=settings.seed)
    if as_json:
        typer.echo(json.dumps(figures))
        return
    parse = figures["parse"]
    typer.echo(
        f"parse: {parse['numbers']:,} numbers in {parse['seconds']} s, "
        f"{parse['numbers_per_second']:,} numbers/s (one core)"
    )
    for key in ("check_file", "check_file_http"):
        if key in figures:
            run = figures[key]
            extra = f", {run['http_requests']} HTTP requests" if "http_requests" in run else ""
            typer.echo(
                f"{key.replace('_', ' ')}: {run['lines']:,} lines in {run['seconds']} s "
                f"({run['reachable']:,} reachable, {run['unreachable']:,} not{extra})"
            )
