"""Every ``omvant`` command the Makefile and the README's examples name exists.

The quick start and the examples are what people type first; a command that is not there
(``make bench`` once ran ``omvant bench``, which never existed) makes the docs untrue.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from producers.cli import app

ROOT = Path(__file__).resolve().parents[2]


def documented_invocations() -> list[tuple[str, str]]:
    """``(where, words after 'omvant')`` for each command line in the Makefile and in the
    README's code blocks and inline code."""
    found: list[tuple[str, str]] = []
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if line.startswith("\t") and "omvant " in line:
            found.append(("Makefile", line.strip()))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(.*?)```", readme, flags=re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", readme)
    for text in [*blocks, *inline]:
        for line in text.splitlines():
            if re.match(r"\s*(?:time\s+)?omvant\s", line):
                found.append(("README.md", line.strip()))
    return found


def resolve(words: list[str]) -> Any:
    """The command ``omvant WORDS...`` runs; fails if a sub-command on the way is missing."""
    command: Any = typer.main.get_command(app)
    for word in words:
        if not is_group(command):
            break
        sub = command.commands.get(word)
        if sub is None:
            raise LookupError(f"no command {word!r} under {command.name!r}")
        command = sub
    return command


def is_group(command: Any) -> bool:
    """Whether ``command`` has sub-commands (typer's groups keep them in ``commands``)."""
    return isinstance(getattr(command, "commands", None), dict)


def test_the_makefile_and_readme_name_commands() -> None:
    wheres = {where for where, _ in documented_invocations()}
    assert wheres == {"Makefile", "README.md"}


@pytest.mark.parametrize(
    ("where", "line"), documented_invocations(), ids=lambda value: str(value)[:60]
)
def test_a_documented_command_exists(where: str, line: str) -> None:
    tokens = line.replace("$(BIN)/", "").split()
    words = tokens[tokens.index("omvant") + 1 :]
    command = resolve(words)
    assert not is_group(command), f"{where}: {line!r} names only a group"
