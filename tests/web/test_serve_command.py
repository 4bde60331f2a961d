"""``omvant serve`` runs the application under uvicorn on a real socket."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.ports import SERVE_PORT, answer_when_up, port_said


def test_omvant_serve_answers_probes_and_publishes_openapi(tmp_path: Path) -> None:
    env = {**os.environ, "OMVANT_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
    omvant = str(Path(sys.executable).with_name("omvant"))
    subprocess.run([omvant, "db", "upgrade"], env=env, check=True, capture_output=True)
    command = [omvant, "serve", "--port", "0"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stderr=out)
    try:
        # port 0: the server binds a free port itself and says which (no port to race for)
        alive = lambda: process.poll() is None  # noqa: E731
        port = port_said(log.read_text, SERVE_PORT, alive=alive)
        response = answer_when_up(f"http://127.0.0.1:{port}/readyz", alive=alive)
        assert response.status_code == 200, response.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
        assert spec["openapi"].startswith("3.1")
    finally:
        process.terminate()
        process.wait(timeout=20)
    said = log.read_text()
    assert "warning: the broker is memory://" in said  # the embedded default: sends go nowhere


def test_only_the_in_process_broker_is_warned_about() -> None:
    from producers.cli.serve_command import is_in_process

    assert is_in_process("memory://") and is_in_process(" MEMORY:// ")
    assert not is_in_process("amqp://guest:guest@127.0.0.1:5672/%2F")
    assert not is_in_process("redis://127.0.0.1:6379/0")
