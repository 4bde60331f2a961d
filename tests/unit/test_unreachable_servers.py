"""Every command meets an unreachable server with one line (or one JSON object) and exit
status 2, within seconds, naming the URL with its password masked and what to check."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import refusing_port
from tests.processes import run_omvant
from workers.adapters import population

SECRET = "s3cret-pw"


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port that refuses connections, held for the test (no server can take it meanwhile)."""
    with refusing_port() as port:
        yield port


def omvant(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``omvant args`` in ``tmp_path`` with no OMVANT_ setting of ours but ``env``."""
    return run_omvant(*args, settings={"OMVANT_HOME": str(tmp_path / "home"), **env}, cwd=tmp_path)


def run(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    result = omvant(tmp_path, args, env)
    return result.returncode, result.stderr, time.monotonic() - started


def files(tmp_path: Path) -> dict[str, str]:
    number = population.test_personnummer()[0]
    (tmp_path / "list.csv").write_text(f"personnummer\n{number}\n", encoding="utf-8")
    record = {
        "clinic_hsa_id": "SE2321000016-VC01",
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "meddelande-till-invanare",
        "personnummer": number,
        "idempotency_key": "k1",
    }
    (tmp_path / "cases.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (tmp_path / "burst.jsonl").write_text(
        json.dumps({"t": 0.0, "case": record}) + "\n", encoding="utf-8"
    )
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    return {"LIST": "list.csv", "CASES": "cases.jsonl", "BURST": "burst.jsonl", "PDF": "a.pdf"}


DISPATCH = ["--template", "meddelande-till-invanare", "--clinic", "SE2321000016-VC01"]
DISPATCH += ["--sender", "SE2321000016-S101"]

CASES: list[tuple[str, list[str], dict[str, str]]] = [
    ("broker", ["demo", "--cases", "1", "--broker", "amqp://guest:PW@127.0.0.1:PORT/%2F"], {}),
    ("broker", ["demo", "--cases", "1", "--broker", "redis://:PW@127.0.0.1:PORT/6"], {}),
    (
        "database",
        ["demo", "--cases", "1", "--database", "postgresql://u:PW@127.0.0.1:PORT/i13"],
        {},
    ),
    ("broker", ["push", "CASES", "--broker", "amqp://guest:PW@127.0.0.1:PORT/%2F"], {}),
    ("broker", ["dispatch", "LIST", *DISPATCH, "--broker", "redis://:PW@127.0.0.1:PORT/6"], {}),
    (
        "database",
        [
            "dispatch",
            "LIST",
            *DISPATCH,
            "--dry-run",
            "--database",
            "postgresql://u:PW@127.0.0.1:PORT/i13",
        ],
        {},
    ),
    (
        "directory",
        ["dispatch", "LIST", *DISPATCH, "--dry-run"],
        {"OMVANT_DIRECTORY_URL": "http://u:PW@127.0.0.1:PORT"},
    ),
    (
        "clamd",
        ["dispatch", "LIST", *DISPATCH, "--dry-run", "--attachment", "PDF"],
        {"OMVANT_CLAMD_URL": "tcp://127.0.0.1:PORT"},
    ),
    ("database", ["batches", "list", "--database", "postgresql://u:PW@127.0.0.1:PORT/i13"], {}),
    (
        "database",
        ["batches", "pause", "b1", "--database", "postgresql://u:PW@127.0.0.1:PORT/i"],
        {},
    ),
    (
        "database",
        ["cases", "list", "--clinic", "SE2321000016-VC01", "--user", "SE2321000016-S101"],
        {"OMVANT_DATABASE_URL": "postgresql://u:PW@127.0.0.1:PORT/i"},
    ),
    ("smtp", ["cases", "follow-up"], {"OMVANT_SMTP_URL": "smtp://u:PW@127.0.0.1:PORT"}),
    (
        "sms-gateway",
        ["cases", "follow-up"],
        {"OMVANT_SMS_GATEWAY_URL": "http://u:PW@127.0.0.1:PORT"},
    ),
    ("redis", ["cases", "follow-up"], {"OMVANT_REDIS_URL": "redis://:PW@127.0.0.1:PORT/6"}),
    (
        "database",
        ["templates", "list"],
        {"OMVANT_DATABASE_URL": "postgresql://u:PW@127.0.0.1:PORT/i"},
    ),
    ("database", ["db", "upgrade", "--database", "postgresql://u:PW@127.0.0.1:PORT/i13"], {}),
    (
        "directory",
        ["recipients", "check", "199001012385", "--directory", "http://u:PW@127.0.0.1:PORT"],
        {},
    ),
    ("clamd", ["attachments", "check", "PDF"], {"OMVANT_CLAMD_URL": "tcp://127.0.0.1:PORT"}),
    ("inbox-events", ["inbox-events", "--url", "amqp://guest:PW@127.0.0.1:PORT//"], {}),
    (
        "broker",
        ["intake", "--broker", "amqp://guest:PW@127.0.0.1:PORT/%2F"],
        {"OMVANT_INTAKE_KEYS": '{"k": "secret"}'},
    ),
    ("broker", ["loadtest", "replay", "BURST", "--broker", "redis://:PW@127.0.0.1:PORT/6"], {}),
    ("broker", ["status", "--broker", "amqp://guest:PW@127.0.0.1:PORT/%2F"], {}),
    (
        "broker",
        ["serve", "--port", "0"],
        {"OMVANT_BROKER_URL": "amqp://guest:PW@127.0.0.1:PORT/%2F"},
    ),
    ("broker", ["sweep"], {"OMVANT_BROKER_URL": "amqp://guest:PW@127.0.0.1:PORT/%2F"}),
    ("broker", ["sweep", "--every", "5"], {"OMVANT_BROKER_URL": "redis://:PW@127.0.0.1:PORT/6"}),
    ("database", ["sweep"], {"OMVANT_DATABASE_URL": "postgresql://u:PW@127.0.0.1:PORT/i"}),
]


@pytest.mark.parametrize(("server", "args", "env"), CASES, ids=lambda v: str(v)[:40])
def test_an_unreachable_server_is_one_line_exit_2_with_the_masked_url(
    tmp_path: Path, server: str, args: list[str], env: dict[str, str], dead_port: int
) -> None:
    port = str(dead_port)
    named = files(tmp_path)

    def fill(text: str) -> str:
        text = text.replace("PW", SECRET).replace("PORT", port)
        return named.get(text, text)

    code, stderr, _seconds = run(
        tmp_path, [fill(a) for a in args], {k: fill(v) for k, v in env.items()}
    )
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("omvant: cannot reach"), stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert SECRET not in stderr
    assert "; check " in lines[0]


@pytest.mark.parametrize(
    ("server", "args"),
    [
        ("broker", ["demo", "--json", "--cases", "1", "--broker", "redis://127.0.0.1:PORT/6"]),
        ("broker", ["status", "--json", "--broker", "redis://127.0.0.1:PORT/6"]),
        ("broker", ["sweep", "--json"]),
        (
            "database",
            ["batches", "list", "--json", "--database", "postgresql://u@127.0.0.1:PORT/i"],
        ),
        (
            "database",
            [
                "cases",
                "list",
                "--json",
                "--clinic",
                "SE2321000016-VC01",
                "--user",
                "SE2321000016-S101",
                "--database",
                "postgresql://u@127.0.0.1:PORT/i",
            ],
        ),
    ],
)
def test_with_json_the_error_is_a_json_object_on_stderr(
    tmp_path: Path, server: str, args: list[str], dead_port: int
) -> None:
    port = str(dead_port)
    env = {"OMVANT_BROKER_URL": f"redis://127.0.0.1:{port}/6"} if args[0] == "sweep" else {}
    code, stderr, _ = run(tmp_path, [a.replace("PORT", port) for a in args], env)
    assert code == 2, stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    error = json.loads(line)["error"]
    assert error["reason"] == f"{server}-unreachable"
    assert f"127.0.0.1:{port}" in error["message"]


def test_sweep_json_says_only_its_counts_at_the_default_log_level(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'omvant.db'}"
    code, stderr, _ = run(tmp_path, ["db", "upgrade", "--database", database], {})
    assert code == 0, stderr
    result = omvant(tmp_path, ["sweep", "--json", "--database", database], {})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}
    assert result.stderr.strip() == ""
