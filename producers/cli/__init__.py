"""The ``omvant`` command: one sub-command module per concern."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from producers.cli import (
    api_keys_command,
    attachments_command,
    bench_command,
    cases_command,
    chaos_command,
    clinics_command,
    contracts_command,
    delivery_command,
    demo_command,
    deploy_command,
    dispatch_command,
    dlq_command,
    errors,
    intake_command,
    loadtest_command,
    push_command,
    recipients_command,
    rejects_command,
    serve_command,
    sim_command,
    status_command,
    sweep_command,
    templates_command,
    users_command,
    webhooks_command,
    worker_command,
)
from producers.cli.options import current_settings
from workers.log import mask_identity_numbers
from workers.reasons import Reason

_CLICK_ERRORS: dict[str, Any] = {kind.__name__: kind for kind in typer.BadParameter.__mro__}
"""click's exception classes, wherever this typer keeps click (typer 0.2x vendors its own)."""


class OmvantGroup(TyperGroup):
    """The root command: a configuration error anywhere below is one line and exit 2; with
    ``--json`` on the command line every error is one ``{"error": ...}`` object on stderr."""

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
            problem = errors.classify(exc, current_settings())
            if problem is not None:
                errors.report(problem)
                raise typer.Exit(errors.EXIT_CONFIGURATION) from None
            if not errors.json_asked():
                raise
            # a bug: under --json the one JSON object all the same (the traceback without it)
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


app.command("demo")(demo_command.demo)
app.command("worker")(worker_command.worker)
app.command("push")(push_command.push)
app.add_typer(contracts_command.app, name="contracts")
app.add_typer(worker_command.db_app, name="db")
app.command("dispatch")(dispatch_command.dispatch)
app.add_typer(dispatch_command.batches_app, name="batches")
app.command("intake")(intake_command.intake)
app.command("bench")(bench_command.bench)
app.command("chaos")(chaos_command.chaos)
app.add_typer(loadtest_command.app, name="loadtest")
app.add_typer(attachments_command.app, name="attachments")
app.add_typer(recipients_command.app, name="recipients")
app.add_typer(sim_command.app, name="sim")
app.add_typer(templates_command.app, name="templates")
app.add_typer(cases_command.app, name="cases")
app.add_typer(clinics_command.app, name="clinics")
app.add_typer(rejects_command.app, name="rejects")
app.add_typer(users_command.app, name="users")
app.add_typer(dlq_command.app, name="dlq")
app.command("status")(status_command.status)
app.command("exporter")(status_command.exporter)
app.add_typer(deploy_command.app, name="deploy")
app.command("serve")(serve_command.serve)
app.add_typer(api_keys_command.app, name="api-keys")
app.add_typer(webhooks_command.app, name="webhooks")
sim_command.app.command("webhook-receiver")(webhooks_command.webhook_receiver)
app.command("inbox-events")(delivery_command.inbox_events)
app.command("sweep")(sweep_command.sweep)
sim_command.app.command("sms-gateway")(delivery_command.sms_gateway)
sim_command.app.command("smtp-sink")(delivery_command.smtp_sink)


def main() -> None:
    """Entry point of the ``omvant`` console script."""
    app()
