"""A worker whose servers are away: waits with backoff, says one line per attempt, gives up
with exit status 2 after a bounded time, and keeps dramatiq's consumer chatter out of the log."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest
from click.testing import Result

from tests.clocks import ManualClock
from tests.ports import refusing_port
from tests.processes import run_omvant
from workers.server_checks import (
    Check,
    ServerUnreachable,
    backoff_delays,
    wait_for_servers,
)
from workers.server_probe import mask_url
from workers.server_watch import ConsumerErrors, ServerWatch, report_times


def down(what: str) -> Check:
    def probe() -> None:
        raise ServerUnreachable(f"the {what} redis://127.0.0.1:1/0: Connection refused")

    return Check(what, probe)


def test_a_server_that_stays_down_gives_up_after_the_timeout_with_one_line_per_attempt() -> None:
    clock, lines = ManualClock(), []
    with pytest.raises(ServerUnreachable) as raised:
        wait_for_servers(
            [down("broker")], timeout=30, say=lines.append, sleep=clock.sleep, clock=clock
        )
    assert clock.now == pytest.approx(30)
    # 0.5 + 1 + 2 + 4 + 8 + 10 = 25.5, then 4.5 to the timeout: 7 waits, 8 attempts
    assert len(lines) == 7
    assert all(line.startswith("waiting for the broker") for line in lines)
    assert "next in 0.5 s" in lines[0] and "next in 10.0 s" in lines[5]
    assert "gave up after 8 attempts in 30 s" in str(raised.value)


def test_a_server_that_comes_back_is_waited_for_and_each_is_asked_until_it_answers() -> None:
    clock, lines, asked = ManualClock(), [], []

    def database() -> None:
        asked.append(clock.now)
        if clock.now < 3:
            raise ServerUnreachable("the database postgresql://h/db: refused")

    broker_probes: list[float] = []
    checks = [Check("broker", lambda: broker_probes.append(clock.now)), Check("db", database)]
    attempts = wait_for_servers(
        checks, timeout=60, say=lines.append, sleep=clock.sleep, clock=clock
    )
    assert attempts == 4  # at 0, 0.5, 1.5, 3.5 s
    assert broker_probes == [0.0]  # the broker answered once and was not asked again
    assert len(lines) == 3 and "the database" in lines[0]


def test_no_wait_at_all_with_a_zero_timeout() -> None:
    clock = ManualClock()
    with pytest.raises(ServerUnreachable):
        wait_for_servers([down("broker")], timeout=0, say=print, sleep=clock.sleep, clock=clock)
    assert clock.now == 0


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = backoff_delays()
    assert [next(delays) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_passwords_are_masked_in_urls() -> None:
    assert mask_url("amqp://guest:s3cret@mq:5672/%2F") == "amqp://guest:***@mq:5672/%2F"
    assert mask_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("postgresql://postgres@db/omvant") == "postgresql://postgres@db/omvant"


def test_a_worker_that_gives_up_at_once_says_one_attempt() -> None:
    clock = ManualClock()

    def refused() -> None:
        clock.now = 5.0
        raise ServerUnreachable("the broker redis://127.0.0.1:1/0: Connection refused")

    with pytest.raises(ServerUnreachable) as raised:
        wait_for_servers([Check("broker", refused)], timeout=3, say=print, clock=clock)
    assert "gave up after 1 attempt in 5 s" in str(raised.value)


@pytest.mark.parametrize(
    ("server", "args", "env"),
    [
        ("broker", [], {"OMVANT_BROKER_URL": "amqp://guest:pw@127.0.0.1:PORT/%2F"}),
        ("broker", [], {"OMVANT_BROKER_URL": "redis://:pw@127.0.0.1:PORT/0"}),
        ("database", [], {"OMVANT_DATABASE_URL": "postgresql://postgres:pw@127.0.0.1:PORT/x"}),
    ],
    ids=["amqp", "redis", "database"],
)
def test_a_waiting_worker_says_the_cause_and_what_to_check_like_every_command(
    tmp_path: Path, server: str, args: list[str], env: dict[str, str]
) -> None:
    with refusing_port() as port:
        settings = {k: v.replace("PORT", str(port)) for k, v in env.items()}
        settings |= {"OMVANT_HOME": str(tmp_path), "OMVANT_STARTUP_TIMEOUT_SECONDS": "1"}
        settings["OMVANT_ANSWER_KEY"] = "Ht9nO2y7sJ5cS1o6n0mR8pC4xq3vL2kE9bW7aZ5uT1I="
        if server == "database":
            settings["OMVANT_BROKER_URL"] = "redis://127.0.0.1:6379/10"
        done = run_omvant("worker", "recipient-validation", *args, settings=settings)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("omvant worker: ") for line in lines), done.stderr
    assert f"the {server} at " in lines[-1] and f"127.0.0.1:{port}" in lines[-1]
    assert "; check " in lines[-1] and ":pw@" not in done.stderr
    assert "Connection refused" in lines[-1] or "refused" in lines[-1].lower()


def record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.CRITICAL, __file__, 1, message, None, None)


CONSUMER = "dramatiq.worker.ConsumerThread(recipient-validation)"


def test_consumer_connection_errors_are_counted_not_printed() -> None:
    clock = ManualClock()
    errors = ConsumerErrors(clock)
    refused = "Consumer encountered a connection error: Error 111 connecting. Connection refused."
    assert errors.filter(record(CONSUMER, refused)) is False
    assert errors.filter(record(CONSUMER, "Restarting consumer in 3.00 seconds.")) is False
    clock.sleep(3)
    assert errors.filter(record(CONSUMER, refused)) is False
    outage = errors.outage()
    assert outage is not None and outage.errors == 2 and outage.since == 0
    assert "Connection refused" in outage.reason
    # other lines pass, from the consumer and elsewhere
    assert errors.filter(record(CONSUMER, "Consumer encountered an unexpected error."))
    assert errors.filter(record("workers.actors", refused))
    clock.sleep(9)  # no error for longer than dramatiq's restart delay: the broker is back
    assert errors.outage() is None


def test_a_broker_away_longer_than_the_outage_timeout_ends_the_process_with_status_2(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, exits = ManualClock(), []
    errors = ConsumerErrors(clock)
    watch = ServerWatch(
        errors,
        broker_url="redis://:pw@127.0.0.1:1/0",
        give_up_after=30,
        exit_process=exits.append,
        clock=clock,
    )
    looks = 0
    with caplog.at_level(logging.WARNING, logger="omvant.worker"):
        # the watch thread's loop, by hand: a consumer error every 3 s, a look every 0.5 s
        while not exits and looks < 200:
            if looks % 6 == 0:
                errors.filter(record(CONSUMER, "Consumer encountered a connection error: down"))
            assert watch.look() is not bool(exits)
            clock.sleep(0.5)
            looks += 1
    assert exits == [2]
    assert clock.now == pytest.approx(31)  # the first look past 30 s
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6  # at 0, 3, 6, 12, 24 s, and the last one
    assert "giving up, exit status 2" in lines[-1]
    assert all(":pw@" not in line and "***" in line for line in lines)


def test_a_broker_that_comes_back_is_said_once_and_the_process_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, exits = ManualClock(), []
    errors = ConsumerErrors(clock)
    watch = ServerWatch(
        errors, broker_url="redis://h:1/0", give_up_after=30, exit_process=exits.append, clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="omvant.worker"):
        for look in range(100):  # 10 s of errors, then 40 s of none
            if look % 6 == 0 and look < 20:
                errors.filter(record(CONSUMER, "Consumer encountered a connection error: down"))
            assert watch.look()
            clock.sleep(0.5)
    assert exits == []
    lines = [r.getMessage() for r in caplog.records]
    # lines at 0, 3, 6 and 12 s (errors until 9 s, quiet for 8 s after), then one "again"
    assert [line.endswith("answers again") for line in lines] == [False] * 4 + [True]


def test_report_times_back_off() -> None:
    assert report_times(400) == [0, 3, 6, 12, 24, 48, 96, 216, 336]


def test_the_main_process_is_the_one_omvant_worker_named_not_whoever_is_parent_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers.server_watch import MAIN_PID_VARIABLE, main_pid

    # a worker process still importing when its main process was killed has init as parent:
    # it must still know its main process, to see that it is gone
    monkeypatch.setenv(MAIN_PID_VARIABLE, "424242")
    assert main_pid() == 424242
    errors = ConsumerErrors(ManualClock())
    watch = ServerWatch(errors, broker_url="redis://h:1/0", give_up_after=30)
    assert watch._parent == 424242
    monkeypatch.setenv(MAIN_PID_VARIABLE, str(os.getpid()))  # dramatiq's main process itself
    assert main_pid() == os.getppid()
    monkeypatch.delenv(MAIN_PID_VARIABLE)
    assert main_pid() == os.getppid()


def test_an_orphan_is_asked_to_stop_then_ended_if_its_shutdown_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from workers import server_watch

    signals: list[int] = []
    monkeypatch.setattr(server_watch.os, "kill", lambda _pid, sig: signals.append(sig))
    monkeypatch.setattr(server_watch, "ORPHAN_GRACE_SECONDS", 0.05)
    monkeypatch.setenv(server_watch.MAIN_PID_VARIABLE, "424242")  # not our parent: it is gone
    ended = threading.Event()
    exits: list[int] = []

    def exit_process(status: int) -> None:
        exits.append(status)
        ended.set()

    watch = ServerWatch(
        ConsumerErrors(ManualClock()),
        broker_url="redis://h:1/0",
        give_up_after=30,
        exit_process=exit_process,
    )
    assert not watch.look()
    assert signals == [signal.SIGTERM]
    assert ended.wait(5)
    assert exits == [server_watch.EXIT_ORPHAN]


def test_the_startup_timeout_counts_from_the_process_start_not_from_the_first_probe() -> None:
    clock = ManualClock()
    clock.now = 2.5  # the imports took 2.5 s of a 3 s budget
    waits: list[float] = []

    def refused() -> None:
        raise ServerUnreachable("the broker redis://127.0.0.1:1/0: Connection refused")

    with pytest.raises(ServerUnreachable) as raised:
        wait_for_servers(
            [Check("broker", refused)],
            timeout=3,
            say=lambda _line: None,
            sleep=lambda s: (waits.append(s), setattr(clock, "now", clock.now + s)),
            clock=clock,
            started=0.0,
        )
    assert waits == [0.5]  # what was left of the budget, not a fresh 3 s
    assert "gave up after 2 attempts in 3 s" in str(raised.value)


def worker_without_its_broker(
    tmp_path: Path, args: list[str], *, userinfo: str = ""
) -> tuple[Result, int]:
    """``omvant worker args`` in this process, its Redis broker (``redis://{userinfo}127.0.0.1``)
    on a port that refuses, not waiting at startup; the result and the port."""
    from typer.testing import CliRunner

    from producers.cli import app

    with refusing_port() as port:
        env = {
            "OMVANT_HOME": str(tmp_path),
            "OMVANT_BROKER_URL": f"redis://{userinfo}127.0.0.1:{port}/0",
            "OMVANT_STARTUP_TIMEOUT_SECONDS": "0",
            "OMVANT_ANSWER_KEY": "Ht9nO2y7sJ5cS1o6n0mR8pC4xq3vL2kE9bW7aZ5uT1I=",
        }
        return CliRunner().invoke(app, ["worker", *args], env=env), port


def test_a_stage_may_be_named_by_its_queue_as_in_the_readme_table(tmp_path: Path) -> None:
    done, _ = worker_without_its_broker(tmp_path, ["message-composition"])
    assert done.exit_code == 2, done.output
    assert "unknown stage" not in done.stderr
    assert "cannot reach the broker at redis://" in done.stderr


def test_worker_json_says_its_startup_error_as_one_json_object(tmp_path: Path) -> None:
    done, port = worker_without_its_broker(tmp_path, ["composition", "--json"], userinfo=":pw@")
    assert done.exit_code == 2, done.output
    [line] = done.stderr.strip().splitlines()
    error = json.loads(line)["error"]
    assert error["reason"] == "broker-unreachable"
    assert f"127.0.0.1:{port}" in error["message"] and ":pw@" not in error["message"]
