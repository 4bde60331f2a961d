"""Helpers for tests that run processes: ``omvant ...`` with only the settings a test gives,
stop one, and ``omvant sim ...`` as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

OMVANT = str(Path(sys.executable).with_name("omvant"))
"""The ``omvant`` command beside this Python."""


def settings_env(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its ``OMVANT_*`` settings, with ``settings`` instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
    env.update(settings or {})
    return env


def run_omvant(
    *args: str,
    settings: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``omvant ARGS`` as its own process with no ``OMVANT_*`` setting but ``settings``; its
    output captured as text, whatever its exit status."""
    return subprocess.run(
        [OMVANT, *args],
        cwd=cwd,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Sim(NamedTuple):
    """A running ``omvant sim ...`` and the URL it printed."""

    process: subprocess.Popen[str]
    url: str


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM ``process`` and wait for it; SIGKILL it if it is not gone in 20 seconds."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def omvant_sim(*args: str | Path, url_on: str = "stdout") -> Iterator[Sim]:
    """Run ``omvant sim ARGS`` (the ``omvant`` beside this Python); yield it with the URL its
    first line on ``url_on`` (``stdout`` or ``stderr``) names; at the end terminate it and wait
    (the caller may then look at ``sim.process.returncode``)."""
    pipes = {"stdout": None, "stderr": None, url_on: subprocess.PIPE}
    process = subprocess.Popen(
        [Path(sys.executable).with_name("omvant"), "sim", *args],
        stdout=pipes["stdout"],
        stderr=pipes["stderr"],
        text=True,
    )
    try:
        stream = process.stdout if url_on == "stdout" else process.stderr
        assert stream is not None
        line = stream.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), line
        yield Sim(process, url)
    finally:
        process.terminate()
        process.wait(timeout=10)
