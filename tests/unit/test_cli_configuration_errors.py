"""The ``omvant`` console script: a wrong URL or a server that is not there is one clear line
and exit status 2, not a traceback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy.exc

from tests.ports import refusing_port
from tests.processes import run_omvant
from workers.adapters import population


def run(
    tmp_path: Path, *args: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_omvant(*args, settings=settings, cwd=tmp_path)


def one_case(tmp_path: Path) -> str:
    path = tmp_path / "cases.jsonl"
    record = {
        "clinic_hsa_id": "SE2321000016-VC01",
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "meddelande-till-invanare",
        "personnummer": population.test_personnummer()[0],
        "idempotency_key": "k1",
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["demo", "--cases", "1", "--broker", "nats://127.0.0.1"], "cannot use the broker"),
        (["demo", "--cases", "1", "--database", "not a url"], "cannot use the database URL"),
        (["templates", "list", "--database", "not a url"], "cannot use the database URL"),
        (["push", "CASES", "--broker", "redis://127.0.0.1:PORT/0"], "cannot reach the broker"),
        (
            ["exporter", "--port", "0", "--broker", "amqp://guest:secret@127.0.0.1:PORT/%2F"],
            "cannot reach the broker at amqp://guest:***@127.0.0.1:",
        ),
    ],
)
def test_a_wrong_or_unreachable_server_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], says: str
) -> None:
    with refusing_port() as held:  # nobody listens there, and nobody can start to meanwhile
        argv = [a.replace("PORT", str(held)) for a in args]
        argv = [one_case(tmp_path) if a == "CASES" else a for a in argv]
        result = run(tmp_path, *argv)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"omvant: {says}"), result.stderr
    assert "secret" not in result.stderr


@pytest.mark.parametrize("size", ["0", "1001", "many"])
def test_a_chunk_size_an_envelope_cannot_carry_is_refused_up_front(
    tmp_path: Path, size: str
) -> None:
    result = run(tmp_path, "demo", "--cases", "5", settings={"OMVANT_CHUNK_SIZE": size})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("omvant: invalid setting: OMVANT_CHUNK_SIZE")
    )


def test_an_unreachable_server_is_named_from_the_commands_settings_never_built_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from producers.cli import errors
    from workers.settings import Settings

    refused = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    built = Settings(database_url="postgresql://omvant:secret@db.example:5432/omvant")
    named = errors.classify(refused, built)
    assert named is not None
    assert named.reason == "database-unreachable"
    assert "db.example" in named.message
    assert "secret" not in named.message
    # settings built again here would be refused (and would not be the command's own)
    monkeypatch.setenv("OMVANT_CHUNK_SIZE", "0")
    unbuilt = errors.classify(refused, None)
    assert unbuilt is not None
    assert unbuilt.reason == "database-unreachable"
    assert "OMVANT_DATABASE_URL" in unbuilt.message
