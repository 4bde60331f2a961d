"""Whether a deployment file's command line names an ``omvant`` command that exists."""

from __future__ import annotations

import shlex
from typing import Any

import typer.main

from producers.cli import app
from producers.cli.worker_command import ALL_LANES, consumed_queues
from workers.routes import STAGES


def resolves(args: list[str]) -> bool:
    """Whether ``omvant ARGS`` names a command that exists and takes these options."""
    command: Any = typer.main.get_command(app)
    rest = list(args)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    if hasattr(command, "commands"):
        return False
    try:
        command.make_context("omvant", rest)
    except Exception:  # any parse error: no such command or option
        return False
    return True


def omvant_commands_in_shell(script: str) -> list[list[str]]:
    """The ``omvant ...`` command lines inside a shell script (``a; omvant x; sleep 9``)."""
    found = []
    for part in script.replace("&&", ";").replace("||", ";").split(";"):
        words = shlex.split(part)
        while words and words[0] in {"do", "then", "while", "true", "exec"}:
            words = words[1:]
        if words[:1] == ["omvant"]:
            found.append(words[1:])
    return found


def worker_queues(args: list[str]) -> list[str]:
    """The queues (every lane, no prefix) an ``omvant worker ...`` command line consumes:
    its stages (default all) and its ``--lanes``; none for another command."""
    if args[:1] != ["worker"]:
        return []
    options = [i for i, a in enumerate(args) if a.startswith("--")]
    stages = args[1 : options[0] if options else len(args)] or list(STAGES)
    lanes = args[args.index("--lanes") + 1] if "--lanes" in args else ALL_LANES
    return consumed_queues(stages, lanes=lanes)
