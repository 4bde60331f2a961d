"""The ``omvant`` command: one sub-command module per concern."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from producers.cli import errors
from producers.cli.commands import COMMANDS, LazyCommands
from workers.reasons import Reason

_CLICK_ERRORS: dict[str, Any] = {kind.__name__: kind for kind in typer.BadParameter.__mro__}
"""click's exception classes, wherever this typer keeps click (typer 0.2x vendors its own)."""


class OmvantGroup(TyperGroup):
    """The root command: a configuration error anywhere below is one line and exit 2; with
    ``--json`` on the command line every error is one ``{"error": ...}`` object on stderr.
    Its sub-commands are imported when run (``producers.cli.commands``); its own help lists
    them without importing any."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: LazyCommands = LazyCommands(self.commands, COMMANDS)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        """The sub-commands' names in the order they are listed, none imported."""
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The sub-command; while the root's help lists them, a stand-in with its help line
        for one not imported yet."""
        if self._listing and cmd_name in COMMANDS and not self.commands.built(cmd_name):
            import click

            return click.Command(cmd_name, help=COMMANDS[cmd_name].help)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """``omvant --help``: every sub-command's line, none of their modules imported."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        """The root context, noting first whether ``--json`` is on the command line."""
        errors.note_command_line(list(args))
        return super().make_context(info_name, args, parent, **extra)

    def main(self, args: Any = None, *params: Any, **extra: Any) -> Any:
        """Run ``omvant``; with ``--json``, a usage error (unknown option, missing argument, bad
        value) is the JSON object too, with reason ``usage-error`` and exit status 2."""
        given = list(sys.argv[1:] if args is None else args)
        if "--json" not in given or extra.get("standalone_mode") is False:
            return super().main(given, *params, **extra)
        try:
            code = super().main(given, *params, **{**extra, "standalone_mode": False})
        except _CLICK_ERRORS["ClickException"] as exc:
            where = getattr(getattr(exc, "ctx", None), "command_path", "")
            message = exc.format_message() + (f" (see {where} --help)" if where else "")
            errors.report(errors.Problem(Reason.USAGE_ERROR, message), as_json=True)
            sys.exit(exc.exit_code)
        except (typer.Abort, _CLICK_ERRORS.get("Abort", typer.Abort)):
            errors.report(errors.Problem(Reason.ABORTED, "aborted"), as_json=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        """Run the sub-command; turn configuration errors into ``errors.report``."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if type(exc).__module__.startswith(("typer", "click")):
                raise  # exits and usage errors the command chose (typer.Exit, BadParameter)
            from producers.cli.options import current_settings

            problem = errors.classify(exc, current_settings())
            if problem is not None:
                errors.report(problem)
                raise typer.Exit(errors.EXIT_CONFIGURATION) from None
            if not errors.json_asked():
                raise
            # a bug: under --json the one JSON object all the same (the traceback without it)
            from workers.log import mask_identity_numbers

            message = mask_identity_numbers(f"{type(exc).__name__}: {exc}")[:500]
            errors.report(errors.Problem(Reason.INTERNAL_ERROR, message))
            raise typer.Exit(1) from None


def omvant_version() -> str:
    """The installed package's version."""
    try:
        return version("omvant")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


app = typer.Typer(
    name="omvant",
    cls=OmvantGroup,
    help="Omvänt: messages from care staff to residents' 1177 inboxes, at regional scale.",
    no_args_is_help=True,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"omvant {omvant_version()}")
        raise typer.Exit


@app.callback()
def root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Omvänt: messages from care staff to residents' 1177 inboxes, at regional scale."""


def main() -> None:
    """Entry point of the ``omvant`` console script."""
    app()
