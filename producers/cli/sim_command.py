"""``omvant sim ...``: the shipped simulators of outside systems, served on their own."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Simulators of outside systems, for tests and load tests.")


@app.command("directory")
def directory(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 0,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated population.")] = None,
    delay: Annotated[float, typer.Option(min=0, help="Seconds before each answer.")] = 0.0,
    fail_status: Annotated[
        int | None, typer.Option(help="Answer every look-up with this HTTP status.")
    ] = None,
) -> None:
    """Serve the simulated 1177 account directory over HTTP (HttpAccountDirectory's JSON)."""
    from producers.cli.options import settings_from
    from workers.adapters.account_directory import SimulatedAccountDirectory
    from workers.adapters.directory_server import DirectoryServer, Faults

    chosen_seed = settings_from().seed if seed is None else seed
    server = DirectoryServer(
        SimulatedAccountDirectory(chosen_seed),
        host=host,
        port=port,
        faults=Faults(delay=delay, status=fail_status),
    )
    typer.echo(f"account directory simulator on {server.url}", err=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
