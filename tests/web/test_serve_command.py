"""``omvant serve`` runs the application under uvicorn on a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_omvant_serve_answers_probes_and_publishes_openapi(tmp_path: object) -> None:
    port = free_port()
    env = {**os.environ, "OMVANT_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
    omvant = str(Path(sys.executable).with_name("omvant"))
    subprocess.run([omvant, "db", "upgrade"], env=env, check=True, capture_output=True)
    command = [omvant, "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "omvant serve did not start in 30 s"
                time.sleep(0.2)
        assert response.status_code == 200, response.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
        assert spec["openapi"].startswith("3.1")
    finally:
        process.terminate()
        process.wait(timeout=20)
    said = process.stderr.read().decode() if process.stderr else ""
    assert "warning: the broker is memory://" in said  # the embedded default: sends go nowhere


def test_only_the_in_process_broker_is_warned_about() -> None:
    from producers.cli.serve_command import is_in_process

    assert is_in_process("memory://") and is_in_process(" MEMORY:// ")
    assert not is_in_process("amqp://guest:guest@127.0.0.1:5672/%2F")
    assert not is_in_process("redis://127.0.0.1:6379/0")
