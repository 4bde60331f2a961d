"""``omvant`` imports a sub-command's module only when that sub-command runs: ``omvant worker``
(and its ``--help``) does not pay for the web console, the benchmarks or the chaos kit, and
``omvant --version`` and ``omvant --help`` import no sub-command at all."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import typer.main
from click.testing import CliRunner as ClickRunner

from producers.cli import app
from producers.cli.commands import COMMANDS

HEAVY = ("producers.web", "producers.bench", "producers.chaos", "producers.demo", "fastapi")
"""What ``omvant worker`` has no use for (each costs hundreds of milliseconds to import)."""


def modules_after(*argv: str) -> set[str]:
    """The modules a fresh interpreter has imported once ``omvant ARGV`` has run."""
    script = (
        "import json, sys\n"
        "from producers.cli import main\n"
        f"sys.argv = ['omvant', *{list(argv)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_worker_help_imports_no_web_bench_or_chaos_module() -> None:
    loaded = modules_after("worker", "--help")
    assert "producers.cli.worker_command" in loaded
    assert not {m for m in loaded if m.startswith(HEAVY)}, "omvant worker --help imported them"
    others = {m for m in loaded if m.startswith("producers.cli.") and m.endswith("_command")}
    assert others == {"producers.cli.worker_command"}


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_the_root_help_import_no_sub_command(argv: list[str]) -> None:
    loaded = modules_after(*argv)
    assert not {m for m in loaded if m.endswith("_command") or m.startswith(HEAVY)}
    assert "sqlalchemy" not in loaded, "the error helpers import their libraries when needed"


def rendered_help(*, build_all: bool) -> str:
    root = typer.main.get_command(app)
    if build_all:
        for name in list(root.commands):  # type: ignore[attr-defined]
            _ = root.commands[name]  # type: ignore[attr-defined]
    result = ClickRunner().invoke(root, ["--help"], prog_name="omvant", terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_root_help_lists_every_command_as_its_own_help_says_it() -> None:
    assert rendered_help(build_all=False) == rendered_help(build_all=True)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_line_is_the_first_paragraph_of_the_command_s_own_help(name: str) -> None:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    own = inspect.cleandoc(command.help or "").split("\n\n")[0]
    assert COMMANDS[name].help == own
    assert command.name == name


def test_the_sim_group_keeps_the_simulators_of_other_modules() -> None:
    sim = typer.main.get_command(app).commands["sim"]  # type: ignore[attr-defined]
    assert {"webhook-receiver", "sms-gateway", "smtp-sink"} <= set(sim.commands)
