"""``omvant contracts``: the published JSON Schemas, for integration teams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from contracts.schemas import all_schemas

app = typer.Typer(help="Versioned message contracts.", no_args_is_help=True)


@app.command("export")
def export(directory: Annotated[Path, typer.Argument(help="Folder to write into.")]) -> None:
    """Write one JSON Schema file per contract version (and the envelope).

    Exit status 2 when DIRECTORY is a file or cannot be written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for filename, schema in all_schemas().items():
            (directory / filename).write_text(
                json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
            typer.echo(directory / filename)
    except OSError as exc:
        typer.echo(f"cannot write the schemas into {directory}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
