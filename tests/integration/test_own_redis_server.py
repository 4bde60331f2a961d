"""A Redis server of a test's own (``producers.chaos.servers.RedisServer``) is the test's: when
another process takes the port chosen for it before it binds, it is started on another port
instead of the test talking to the other process."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from producers.chaos.servers import RedisServer, ServerError
from tests.conftest import server_missing


def test_a_port_taken_before_the_server_binds_gives_another_port_not_the_other_server(
    tmp_path: Path,
) -> None:
    with socket.socket() as other:  # another process's listener, on the port chosen for ours
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        server = RedisServer(tmp_path / "servers")
        server.port = taken
        try:
            server.start()
        except ServerError as exc:
            server_missing("redis-server (the binary, for a Redis of the test's own)", exc)
        try:
            assert server.port != taken
            assert server.process is not None and server.process.poll() is None
            info = server.client().info("server")  # type: ignore[attr-defined]
            assert info["process_id"] == server.process.pid
        finally:
            server.stop()


def test_a_port_given_by_the_caller_is_not_changed(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server (the binary) is not installed")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        server = RedisServer(tmp_path / "servers", port=taken)
        with pytest.raises(ServerError):
            server.start()
        assert server.port == taken
        server.stop()
