"""``omvant deploy``: the deployment files that follow from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from producers import deploy_manifests

app = typer.Typer(help="Deployment files written from the routing table.", no_args_is_help=True)

DEFAULT_ROOT = Path("deploy/kubernetes")


@app.command("kubernetes")
def kubernetes(
    out: Annotated[
        Path, typer.Option(help="The kustomize tree to write (base, components, overlays).")
    ] = DEFAULT_ROOT,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a file is stale.")
    ] = False,
) -> None:
    """Write (or check) the Kubernetes manifests: a Deployment and KEDA ScaledObject per stage."""
    if check:
        stale = deploy_manifests.stale(out)
        for path in stale:
            typer.echo(f"stale: {out / path}")
        raise typer.Exit(1 if stale else 0)
    for path in deploy_manifests.write(out):
        typer.echo(f"wrote {out / path}")
