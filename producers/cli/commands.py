"""The ``omvant`` sub-commands, imported only when run: ``omvant worker`` loads the worker's
module and not the web console, the benchmarks or the chaos kit (about a second of imports).

``COMMANDS`` names each sub-command's module and object and the one line ``omvant --help``
lists it with, so that the root's help needs no module either (a test keeps each line equal to
the command's own help). ``LazyCommands`` is the root group's ``commands``: a mapping whose
values are built on first use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Lazy:
    """Where a sub-command lives: ``producers.cli.<module>``'s ``attribute``, a function (a
    command) or a ``typer.Typer`` (a group), listed by ``omvant --help`` with ``help``."""

    module: str
    attribute: str
    help: str
    extra: tuple[tuple[str, str, str], ...] = ()
    """Commands of other modules that the group takes: ``(name, module, attribute)``."""


COMMANDS: dict[str, Lazy] = {
    # commands, then groups: the order ``omvant --help`` has always listed them in
    "demo": Lazy(
        "demo_command",
        "demo",
        "Run the whole pipeline on a realistic dispatch and print a summary.",
    ),
    "worker": Lazy(
        "worker_command",
        "worker",
        "Run stage workers (dramatiq processes) against the configured broker and database.",
    ),
    "push": Lazy(
        "push_command",
        "push",
        "Put each line's SendCase on the intake queue, in chunks; report invalid lines.",
    ),
    "dispatch": Lazy(
        "dispatch_command",
        "dispatch",
        "Send one template to every resident in FILE as one batch, with a progress bar.",
    ),
    "intake": Lazy(
        "intake_command",
        "intake",
        "Take signed JSON SendCase records from omvant.intake into the pipeline until stopped.",
    ),
    "bench": Lazy(
        "bench_command",
        "bench",
        "Measure dramatiq's no-op rate (before and after), the pipeline's rate and latencies,\n"
        "urgent latency, and CPU time per case of each stage, PostgreSQL and the broker.",
    ),
    "chaos": Lazy(
        "chaos_command",
        "chaos",
        "Dispatch under faults on servers of its own; check at the simulators; exit 1 on a miss.",
    ),
    "status": Lazy(
        "status_command",
        "status",
        "Queues and lanes, dead letters, dispatches in flight, stuck cases: one screen.",
    ),
    "exporter": Lazy(
        "status_command",
        "exporter",
        "Serve queue depths, failures, dispatches, stuck cases, notifications and latency.",
    ),
    "serve": Lazy(
        "serve_command",
        "serve",
        "Serve the HTTP API (/v1, /openapi.json), the probes and the web console until stopped.",
    ),
    "inbox-events": Lazy(
        "delivery_command",
        "inbox_events",
        "Consume the inbox's opened/answered events and feed the read-receipt stage.",
    ),
    "sweep": Lazy(
        "sweep_command",
        "sweep",
        "Re-drive stalled notifications and cases from their last recorded step and run the due\n"
        "unread follow-ups; print the counts of what it found and did (one line per run).",
    ),
    "contracts": Lazy("contracts_command", "app", "Versioned message contracts."),
    "db": Lazy("worker_command", "db_app", "The system of record."),
    "batches": Lazy(
        "dispatch_command",
        "batches_app",
        "Dispatches (batches): progress, pause, resume, cancel.",
    ),
    "loadtest": Lazy(
        "loadtest_command",
        "app",
        "Record send bursts and replay them against a test environment.",
    ),
    "attachments": Lazy(
        "attachments_command", "app", "Check, store and clean up attachment files."
    ),
    "recipients": Lazy(
        "recipients_command",
        "app",
        "Check residents before sending: a valid number, an active 1177 login, notifications.",
    ),
    "sim": Lazy(
        "sim_command",
        "app",
        "Simulators of outside systems, for tests and load tests.",
        extra=(
            ("webhook-receiver", "webhooks_command", "webhook_receiver"),
            ("sms-gateway", "delivery_command", "sms_gateway"),
            ("smtp-sink", "delivery_command", "smtp_sink"),
        ),
    ),
    "templates": Lazy(
        "templates_command", "app", "Message templates: list, adopt, edit, activate, preview."
    ),
    "cases": Lazy("cases_command", "app", "The clinic's cases: sent by care, read / unread."),
    "clinics": Lazy("clinics_command", "app", "A clinic's settings: answer alerts."),
    "rejects": Lazy(
        "rejects_command",
        "app",
        "Rejected messages (rejected_messages and the intake's rejects queue).",
    ),
    "users": Lazy("users_command", "app", "Web console users: add, list, disable."),
    "dlq": Lazy(
        "dlq_command", "app", "Dead letters and rejected messages: list, show, replay, purge."
    ),
    "deploy": Lazy("deploy_command", "app", "Deployment files written from the routing table."),
    "api-keys": Lazy(
        "api_keys_command",
        "app",
        "API keys per integration: HTTP API tokens and intake signing keys.",
    ),
    "webhooks": Lazy("webhooks_command", "app", "Status callbacks (webhooks) to integrations."),
}


def _attribute(module: str, attribute: str) -> Any:
    return getattr(importlib.import_module(f"producers.cli.{module}"), attribute)


@functools.cache
def _typer_of(name: str) -> Any:
    """The sub-command's function or ``typer.Typer``, its group's extra commands registered
    on it (once per process)."""
    import typer

    lazy = COMMANDS[name]
    found = _attribute(lazy.module, lazy.attribute)
    if isinstance(found, typer.Typer):
        for command, module, attribute in lazy.extra:
            found.command(command)(_attribute(module, attribute))
    return found


def load(name: str) -> Any:
    """The click command ``omvant NAME`` runs, built as typer builds a sub-command."""
    import typer
    import typer.main

    found = _typer_of(name)
    parent = typer.Typer()
    if isinstance(found, typer.Typer):
        parent.add_typer(found, name=name)
    else:
        parent.command(name)(found)
    return typer.main.get_group(parent).commands[name]


class LazyCommands(MutableMapping[str, Any]):
    """The root group's sub-commands by name, each built (its module imported) on first use."""

    def __init__(self, given: Mapping[str, Any], lazy: Mapping[str, Lazy]) -> None:
        self._built: dict[str, Any] = dict(given)
        self._lazy = lazy

    def built(self, name: str) -> bool:
        """Whether ``name``'s command is built (its module imported) already."""
        return name in self._built

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._lazy:
                raise KeyError(name)
            self._built[name] = load(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._lazy, *self._built]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._lazy, *self._built]))
