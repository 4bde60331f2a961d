"""The HTTP account directory against the shipped directory simulator on loopback (port 0):
answers, batching, a slow server, 5xx, 4xx, a closed port, and the check command over HTTP."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from producers.cli import app
from tests.ports import refusing_port
from tests.unit.test_recipient_validation import BLOCKED, BOTH, NO_ACCOUNT, PINS, SIMULATOR
from workers.adapters.account_directory import DirectoryRefused, DirectoryUnavailable
from workers.adapters.directory_server import DirectoryServer, Faults
from workers.adapters.http_account_directory import LOOKUP_PATH, HttpAccountDirectory

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[DirectoryServer]:
    with DirectoryServer(SIMULATOR) as running:
        yield running


def test_answers_match_the_simulator_in_batches(server: DirectoryServer) -> None:
    numbers = list(PINS[:2500])
    client = HttpAccountDirectory(server.url, batch_size=1000)
    try:
        assert client.lookup_many(numbers) == SIMULATOR.lookup_many(numbers)
    finally:
        client.close()
    assert (server.requests, server.numbers) == (3, 2500)


def test_a_slow_directory_times_out_as_a_transient_failure(server: DirectoryServer) -> None:
    server.faults = Faults(delay=1.0)
    client = HttpAccountDirectory(server.url, timeout=0.2)
    try:
        with pytest.raises(DirectoryUnavailable, match="timed out"):
            client.lookup_many([BOTH])
    finally:
        client.close()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, DirectoryUnavailable),
        (503, DirectoryUnavailable),
        (429, DirectoryUnavailable),
        (401, DirectoryRefused),
        (403, DirectoryRefused),
        (400, DirectoryRefused),
    ],
)
def test_server_errors_are_transient_and_client_errors_permanent(
    server: DirectoryServer, status: int, error: type[Exception]
) -> None:
    server.faults = Faults(status=status)
    client = HttpAccountDirectory(server.url)
    try:
        with pytest.raises(error, match=f"HTTP {status}"):
            client.lookup_many([BOTH, BLOCKED])
    finally:
        client.close()


def test_a_directory_that_recovers_answers_the_retry(server: DirectoryServer) -> None:
    server.faults = Faults(status=503, times=1)
    client = HttpAccountDirectory(server.url)
    try:
        with pytest.raises(DirectoryUnavailable):
            client.lookup_many([BOTH])
        assert client.lookup_many([BOTH]) == SIMULATOR.lookup_many([BOTH])
    finally:
        client.close()


def test_nobody_listening_is_a_transient_failure() -> None:
    with refusing_port() as port:  # held: nothing can start listening there meanwhile
        client = HttpAccountDirectory(f"http://127.0.0.1:{port}", timeout=1)
        try:
            with pytest.raises(DirectoryUnavailable, match="unreachable"):
                client.lookup_many([BOTH])
        finally:
            client.close()


def test_the_simulator_server_rejects_bad_requests(server: DirectoryServer) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as raw:
        assert raw.post(LOOKUP_PATH, json={"personnummer": ["19900101-2385"]}).status_code == 422
        assert raw.post(LOOKUP_PATH, json={"personnummer": [BOTH] * 1001}).status_code == 413
        assert raw.post(LOOKUP_PATH, content=b"{").status_code == 400
        assert raw.post("/elsewhere", json={}).status_code == 404
        assert raw.get("/health").json() == {"status": "ok"}


def run_check(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["recipients", "check", *args])
    return result.exit_code, result.stdout.splitlines()


def test_the_check_command_gives_the_same_verdicts_over_http(server: DirectoryServer) -> None:
    numbers = [BOTH, BLOCKED, NO_ACCOUNT, "199001012386"]
    by_http = run_check("--json", "--directory", server.url, *numbers)
    by_simulator = run_check("--json", *numbers)
    assert by_http == by_simulator
    assert by_http[0] == 1
    assert server.requests == 1


def test_the_check_command_over_a_refusing_directory(server: DirectoryServer) -> None:
    server.faults = Faults(status=401)
    code, lines = run_check("--json", "--directory", server.url, BOTH, "x")
    records = [json.loads(line) for line in lines]
    assert code == 1
    assert [r["reason"] for r in records] == ["directory-refused", "invalid-identity-number"]
    assert "HTTP 401" in records[0]["detail"]


def test_the_check_command_retries_then_exits_three_when_the_directory_stays_down(
    server: DirectoryServer,
) -> None:
    server.faults = Faults(status=503)
    args = ["recipients", "check", "--retries", "1", "--directory", server.url, BOTH]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3
    assert "could not be reached" in result.stderr
    assert server.requests == 2


def test_the_check_command_rides_out_a_short_outage(server: DirectoryServer) -> None:
    server.faults = Faults(status=503, times=1)
    code, lines = run_check("--json", "--directory", server.url, BOTH)
    assert (code, json.loads(lines[0])["reachable"]) == (0, True)
    assert server.requests == 2


def test_omvant_sim_directory_serves_on_its_own() -> None:
    command = "from producers.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "sim", "directory", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=30), "the simulator did not start"
        url = process.stdout.readline().split()[-1]
        client = HttpAccountDirectory(url, timeout=5)
        try:
            assert client.lookup_many([BOTH, BLOCKED]) == SIMULATOR.lookup_many([BOTH, BLOCKED])
        finally:
            client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
