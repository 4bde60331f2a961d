"""Ports for tests, without the race of "ask for a free port, close it, then bind it" (another
process may take it in between): a server binds port 0 itself and says which port it got, and a
port that must have nothing listening stays bound, not listening, for as long as it is needed."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the block: bound by this process and
    not listening, so no other process can start listening on it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to any free port of ``host`` (``uvicorn.Server.run(sockets=[...])``)."""
    bound = socket.socket()
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound.bind((host, 0))
    return bound


def port_said(
    read: Callable[[], str],
    pattern: str,
    *,
    alive: Callable[[], bool],
    timeout: float = 90,
) -> int:
    """The port a process bound to port 0 says it got: the first group of ``pattern`` in what
    ``read`` gives, waited for while the process is ``alive``."""
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, read())
        if found:
            return int(found.group(1))
        assert alive(), f"the process ended without saying its port: {read()[-2000:]}"
        assert time.monotonic() < deadline, f"no port said in {timeout} s: {read()[-2000:]}"
        time.sleep(0.1)


def answer_when_up(url: str, *, alive: Callable[[], bool], timeout: float = 90) -> httpx.Response:
    """GET ``url`` once the server listens (a bound socket refuses until the server starts
    serving on it), while the process is ``alive``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=10)
        except httpx.TransportError:
            assert alive(), f"the server ended before it answered {url}"
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
            time.sleep(0.1)


SERVE_PORT = r"omvant serve on http://[^:\s]+:(\d+)"
"""What ``omvant serve`` says on stderr once its socket is bound."""
