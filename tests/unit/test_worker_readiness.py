"""``worker.ready`` is said once per ``omvant worker``, by the last of its processes to consume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from producers.cli.worker_command import DRAMATIQ_MAIN, dramatiq_argv, ready_plan
from workers.readiness import READY_VARIABLE, Plan, Readiness, count_in


class Lines:
    """A logger that keeps what it was told."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **values: Any) -> None:
        self.said.append(("info", event, values))

    def warning(self, event: str, **values: Any) -> None:
        self.said.append(("warning", event, values))


KEY = os.environ["OMVANT_ANSWER_KEY"]  # the test session's (tests/conftest.py)
WORKER = SimpleNamespace(consumers={"q-urgent": 1, "q-urgent.DQ": 1, "q-bulk-1": 1})


def test_only_the_last_of_the_processes_to_consume_says_worker_ready(tmp_path: Path) -> None:
    plan = Plan(str(tmp_path / "w.ready"), processes=2, stages=["composition"], lanes="all")
    first, second = Lines(), Lines()
    Readiness(plan, first, lambda: 1).after_worker_boot(None, WORKER)  # type: ignore[arg-type]
    assert first.said == []
    Readiness(plan, second, lambda: 2).after_worker_boot(None, WORKER)  # type: ignore[arg-type]
    assert second.said == [
        (
            "info",
            "worker.ready",
            {"processes": 2, "stages": ["composition"], "lanes": "all", "queues": 2},
        )
    ]
    assert not Path(plan.file).exists()  # the last one leaves nothing behind


def test_a_process_counted_twice_is_one_process(tmp_path: Path) -> None:
    path = tmp_path / "w.ready"
    assert [count_in(path, 7), count_in(path, 7), count_in(path, 8)] == [1, 1, 2]


def test_dramatiq_started_by_hand_says_ready_per_process() -> None:
    lines = Lines()
    Readiness(None, lines).after_worker_boot(None, WORKER)  # type: ignore[arg-type]
    assert [event for _, event, _ in lines.said] == ["worker.ready"]


def test_each_process_says_worker_stopped() -> None:
    lines = Lines()
    Readiness(None, lines).after_worker_shutdown(None, WORKER)  # type: ignore[arg-type]
    assert [event for _, event, _ in lines.said] == ["worker.stopped"]


def test_the_plan_travels_to_the_worker_processes_in_the_environment(tmp_path: Path) -> None:
    plan = ready_plan(["composition", "attachment-check"], "urgent", 3)
    assert Plan.from_env({READY_VARIABLE: plan.to_env()}) == plan
    assert Plan.from_env({}) is None
    assert Plan.from_env({READY_VARIABLE: "{not json"}) is None


def test_omvant_worker_runs_dramatiq_through_the_quiet_main() -> None:
    argv = dramatiq_argv(["q"], processes=1, threads=1)
    assert argv[1:4] == ["-m", DRAMATIQ_MAIN, "workers.app"]


def test_worker_ready_is_said_after_every_other_boot_hook(tmp_path: Path) -> None:
    # dramatiq runs after_worker_boot hooks last-added first: the first middleware's runs last,
    # so a stop sent on worker.ready finds StopOnce and the server watch in place
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
    env.update(OMVANT_BROKER_URL="memory://", OMVANT_HOME=str(tmp_path), OMVANT_ANSWER_KEY=KEY)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import workers.app as a; print(type(a.broker.middleware[0]).__name__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["Readiness"], done.stderr[-2000:]
