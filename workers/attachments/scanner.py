"""Virus scanning behind one interface: ClamAV's clamd over its socket protocol, or a simulator.

``ClamdScanner`` speaks clamd's INSTREAM command over a unix or TCP socket (the protocol is a
dozen lines; the PyPI clamd clients have been unmaintained for years). A scanner that cannot
answer raises ``ScannerUnavailable``: a technical failure, retried, never a verdict.
"""

from __future__ import annotations

import abc
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
"""The industry's harmless test string that every virus scanner reports."""

CHUNK = 64 * 1024


@dataclass(frozen=True)
class ScanResult:
    """Whether a scanner found something, and the signature's name if it did."""

    infected: bool
    signature: str | None = None


class ScannerUnavailable(Exception):
    """The scanner could not give a verdict (down, timed out, refused the stream)."""


class VirusScanner(abc.ABC):
    """Something that says whether bytes carry known malware."""

    name: str = "scanner"

    @abc.abstractmethod
    def scan(self, data: bytes) -> ScanResult:
        """Scan ``data``.

        Raises
        ------
        ScannerUnavailable
            When no verdict could be had.
        """


class SimulatedVirusScanner(VirusScanner):
    """Reports the EICAR test string (and any extra byte patterns given); the default when
    no clamd is configured, like the other simulators of outside systems."""

    name = "simulated"

    def __init__(self, patterns: tuple[bytes, ...] = (EICAR,)) -> None:
        self.patterns = patterns

    def scan(self, data: bytes) -> ScanResult:
        for pattern in self.patterns:
            if pattern in data:
                return ScanResult(True, "Simulated.Test-Signature")
        return ScanResult(False)


class ClamdScanner(VirusScanner):
    """ClamAV's daemon over a unix socket path or ``tcp://host:port``, by INSTREAM."""

    name = "clamd"

    def __init__(self, address: str | Path, *, timeout: float = 30.0) -> None:
        text = str(address)
        self.address = text.removeprefix("unix://") if text.startswith("unix://") else text
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        if self.address.startswith("tcp://"):
            parts = urlsplit(self.address)
            return socket.create_connection(
                (parts.hostname or "127.0.0.1", parts.port or 3310), timeout=self.timeout
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        return sock

    def _command(self, command: bytes, payload: bytes | None = None) -> str:
        try:
            with self._connect() as sock:
                sock.sendall(b"z" + command + b"\0")
                if payload is not None:
                    view = memoryview(payload)
                    for start in range(0, len(view), CHUNK):
                        piece = view[start : start + CHUNK]
                        sock.sendall(struct.pack("!L", len(piece)) + piece)
                    sock.sendall(struct.pack("!L", 0))
                reply = b""
                while not reply.endswith(b"\0"):
                    received = sock.recv(4096)
                    if not received:
                        break
                    reply += received
        except OSError as exc:
            raise ScannerUnavailable(f"clamd at {self.address}: {exc}") from exc
        return reply.rstrip(b"\0").decode("utf-8", "replace").strip()

    def ping(self) -> bool:
        """Whether clamd answers."""
        try:
            return self._command(b"PING") == "PONG"
        except ScannerUnavailable:
            return False

    def scan(self, data: bytes) -> ScanResult:
        reply = self._command(b"INSTREAM", data)
        if reply.endswith("FOUND"):
            signature = reply.removeprefix("stream:").removesuffix("FOUND").strip()
            return ScanResult(True, signature or "unknown")
        if reply.endswith("OK"):
            return ScanResult(False)
        raise ScannerUnavailable(f"clamd did not scan the stream: {reply[:200]!r}")


def scanner_from(clamd_socket: Path | None, clamd_url: str | None, timeout: float) -> VirusScanner:
    """clamd when configured (a socket path or ``tcp://`` URL), else the simulator."""
    if clamd_url:
        return ClamdScanner(clamd_url, timeout=timeout)
    if clamd_socket:
        return ClamdScanner(clamd_socket, timeout=timeout)
    return SimulatedVirusScanner()
