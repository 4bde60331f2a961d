"""``omvant attachments``: check files before sending, store them, collect garbage, benchmark.

``check`` runs exactly the checks the attachment-check worker runs (same limits, same virus
scanner from ``OMVANT_*``), so staff and integration teams can see a verdict before they send.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from producers.cli.errors import fail
from producers.cli.options import DatabaseOption, JsonOption, settings_from
from workers import server_probe as servers
from workers.adapters.blobs import BlobStore, blob_store_from
from workers.attachments.checker import check_file
from workers.attachments.limits import Limits
from workers.attachments.scanner import ScannerUnavailable, VirusScanner, scanner_from
from workers.attachments.verdict import Verdict
from workers.reasons import Reason
from workers.settings import Settings

app = typer.Typer(help="Check, store and clean up attachment files.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"not a duration like 30d, 12h or 90m: {text!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _blobs(settings: Settings) -> BlobStore:
    return blob_store_from(settings.blob_dir, settings.blob_url, settings.s3_endpoint_url)


def _scanner(settings: Settings) -> VirusScanner:
    return scanner_from(settings.clamd_socket, settings.clamd_url, settings.clamd_timeout)


def verdict_record(file: str, verdict: Verdict) -> dict[str, Any]:
    """The object ``check --json`` prints for one file."""
    return {
        "file": file,
        "ok": verdict.ok,
        "type": verdict.type,
        "reason": None if verdict.reason is None else verdict.reason.value,
        "detail": verdict.detail,
    }


@app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="Files to check.", show_default=False)],
    as_json: JsonOption = False,
    declared_type: Annotated[
        str, typer.Option("--type", help="Media type the sender declares for every file.")
    ] = "application/octet-stream",
) -> None:
    """Check files as the attachment-check worker would; exit 1 if any is refused.

    With --json, one JSON object per file: {"file", "ok", "type", "reason", "detail"}.
    """
    settings = settings_from(require=(servers.CLAMD,))
    limits = Limits.from_settings(settings)
    scanner = _scanner(settings)
    refused = 0
    for path in files:
        try:
            data = _read_at_most(path, limits.max_bytes)
        except OSError as exc:
            record = {
                "file": str(path),
                "ok": False,
                "type": None,
                "reason": "attachment-missing",
                "detail": f"cannot read the file: {exc.strerror or exc}",
            }
        else:
            if len(data) > limits.max_bytes:
                size = _size_of(path)
                record = {
                    "file": str(path),
                    "ok": False,
                    "type": None,
                    "reason": Reason.ATTACHMENT_TOO_LARGE.value,
                    "detail": (
                        f"{size:,} bytes is over the limit of {limits.max_bytes:,}"
                        if size
                        else f"over the limit of {limits.max_bytes:,} bytes"
                    ),
                }
                refused += 1
                _print(record, path, as_json)
                continue
            try:
                verdict = check_file(
                    data,
                    filename=path.name,
                    declared_type=declared_type,
                    limits=limits,
                    scanner=scanner,
                )
            except ScannerUnavailable as exc:
                fail(Reason.CLAMD_UNREACHABLE, f"the virus scanner is unavailable: {exc}")
            record = verdict_record(str(path), verdict)
        refused += not record["ok"]
        _print(record, path, as_json)
    if refused:
        raise typer.Exit(1)


def _read_at_most(path: Path, limit: int) -> bytes:
    """The file's bytes, but never more than ``limit + 1``: a file over the size limit (or a
    device like /dev/zero) is refused without being read into memory whole."""
    with path.open("rb") as handle:
        return handle.read(limit + 1)


def _size_of(path: Path) -> int | None:
    """The size of a regular file, or ``None`` (a device or pipe has none)."""
    stat = path.stat()
    return stat.st_size if stat.st_size > 0 else None


def _print(record: dict[str, Any], path: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False))
    elif record["ok"]:
        typer.echo(f"ok       {path}  ({record['type']})")
    else:
        typer.echo(f"refused  {path}  {record['reason']}: {record['detail']}")


@app.command("put")
def put(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="File to store.")],
    clinic: Annotated[
        str | None,
        typer.Option(
            "--clinic",
            help="The HSA-id of the clinic that owns the file: only its cases may send it.",
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            help="Share the file for every clinic through this national or regional template.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="File name to declare (default: its own).")
    ] = None,
    declared_type: Annotated[
        str, typer.Option("--type", help="Media type to declare.")
    ] = "application/octet-stream",
    database: DatabaseOption = None,
) -> None:
    """Store a file for a clinic (or shared by a template); print the AttachmentRef JSON a
    SendCase carries. A case may send only its own clinic's files (``attachment-not-owned``)."""
    from workers.attachments.ownership import store_attachment
    from workers.store.engine import check_schema, make_engine

    settings = settings_from(None, database, require=(servers.DATABASE,))
    owner, shared = _owner_of(clinic, template, settings)
    limit = Limits.from_settings(settings).max_bytes
    data = _read_at_most(file, limit)
    if len(data) > limit:
        fail(
            Reason.ATTACHMENT_TOO_LARGE,
            f"over the limit of {limit:,} bytes; not stored",
            1,
            coded=True,
        )
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
        ref = store_attachment(
            engine,
            _blobs(settings),
            data,
            owner_hsa_id=owner,
            filename=name or file.name,
            declared_type=declared_type,
            shared=shared,
            template_id=template,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(Reason.INVALID_PAYLOAD, f"{where}: {first['msg']}; not stored", coded=True)
    finally:
        engine.dispose()
    typer.echo(ref.model_dump_json())


def _owner_of(clinic: str | None, template: str | None, settings: Settings) -> tuple[str, bool]:
    """Who owns an upload: ``--clinic`` (the clinic's own file), or ``--template`` (shared by a
    national or regional template's owner for every clinic). Exit 2 on anything else."""
    from workers.hsa import is_hsa_id

    if (clinic is None) == (template is None):
        fail(Reason.USAGE_ERROR, "give the owning --clinic HSA-ID, or --template ID to share")
    if clinic is not None:
        if not is_hsa_id(clinic):
            fail(
                Reason.INVALID_HSA_ID,
                "--clinic must be an HSA-id like SE2321000016-ABCD",
                coded=True,
            )
        return clinic, False
    from workers.store.engine import check_schema, make_engine
    from workers.templates.database import DatabaseTemplateLibrary

    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
        found = DatabaseTemplateLibrary(engine).get(str(template))
    finally:
        engine.dispose()
    if found is None or found.scope == "local":
        fail(
            Reason.TEMPLATE_UNKNOWN,
            f"--template must name a national or regional template: {template}",
            coded=True,
        )
    return found.owner, True


@app.command("gc")
def gc(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Retention, e.g. 30d, 12h, 90m.")
    ] = "30d",
    database: DatabaseOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete blobs older than the retention that no live case refers to."""
    from workers.attachments.gc import collect
    from workers.store.engine import check_schema, make_engine

    retention = parse_duration(older_than)
    settings = settings_from(None, database, require=(servers.DATABASE,))
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
        report = collect(engine, _blobs(settings), older_than=retention, dry_run=dry_run)
    finally:
        engine.dispose()
    figures = {**report.as_dict(), "dry_run": dry_run}
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        verb = "would delete" if dry_run else "deleted"
        typer.echo(
            f"{verb} {report.deleted} blobs ({report.bytes_freed:,} bytes); kept "
            f"{report.kept_referenced} referenced by live cases and {report.kept_recent} recent"
            f" of {report.examined}"
        )


@app.command("corpus")
def corpus(
    folder: Annotated[Path, typer.Argument(file_okay=False, help="Folder to write into.")],
) -> None:
    """Write a sample of every kind of file (valid, renamed, polyglot, bombs, ...) with a
    manifest of the verdict each must get."""
    from producers.attachment_samples import corpus as build

    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for sample in build():
        target = folder / sample.name / sample.filename
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(sample.data)
        manifest.append(
            {
                "file": str(target),
                "declared_type": sample.declared_type,
                "reason": sample.reason,
                "type": sample.type,
                "ok": not sample.reason,
            }
        )
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    typer.echo(f"wrote {len(manifest)} files and manifest.json to {folder}")


@app.command("bench")
def bench(
    rounds: Annotated[int, typer.Option(min=1, help="Times to check the whole mix.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Check throughput (MB/s, files/s) over a typical mix of letters, brochures, phone photos,
    screenshots and some files that are refused, with the configured virus scanner."""
    from producers.attachment_samples import typical_mix

    settings = settings_from(require=(servers.CLAMD,))
    limits = Limits.from_settings(settings)
    scanner = _scanner(settings)
    mix = typical_mix()
    files = 0
    size = 0
    refused = 0
    by_kind: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for _ in range(rounds):
        for sample in mix:
            began = time.perf_counter()
            verdict = check_file(
                sample.data, filename=sample.filename, limits=limits, scanner=scanner
            )
            kind = "refused" if not verdict.ok else str(verdict.type)
            tally = by_kind.setdefault(kind, {"files": 0, "megabytes": 0.0, "seconds": 0.0})
            tally["files"] += 1
            tally["megabytes"] += len(sample.data) / 1e6
            tally["seconds"] += time.perf_counter() - began
            files += 1
            size += len(sample.data)
            refused += not verdict.ok
    seconds = time.perf_counter() - started
    figures: dict[str, Any] = {
        "files": files,
        "megabytes": round(size / 1e6, 2),
        "refused": refused,
        "seconds": round(seconds, 3),
        "files_per_second": round(files / seconds, 1),
        "megabytes_per_second": round(size / 1e6 / seconds, 1),
        "scanner": scanner.name,
        "by_kind": {
            kind: {
                "files": int(t["files"]),
                "megabytes": round(t["megabytes"], 2),
                "ms_per_file": round(1000 * t["seconds"] / t["files"], 1),
            }
            for kind, t in sorted(by_kind.items())
        },
    }
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        typer.echo(
            f"{files} files, {figures['megabytes']} MB in {figures['seconds']} s: "
            f"{figures['files_per_second']} files/s, {figures['megabytes_per_second']} MB/s "
            f"({refused} refused; scanner {scanner.name})"
        )
