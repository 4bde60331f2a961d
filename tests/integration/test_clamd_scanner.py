"""ClamAV's clamd, for real: a clamd of the test's own on a temporary socket, with a signature
database the test writes (no network, no freshclam), rejects a matching file as infected."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers import attachment_samples as samples
from tests.conftest import server_missing
from tests.processes import stop_process
from workers.attachments.checker import inspect
from workers.attachments.limits import Limits
from workers.attachments.ownership import store_attachment
from workers.attachments.scanner import ClamdScanner, ScannerUnavailable
from workers.reasons import Reason

pytestmark = pytest.mark.integration

INFECTED = samples.png(40, 40)
"""A valid PNG the test's signature database names as malware."""


@pytest.fixture(scope="module")
def clamd_socket() -> Iterator[Path]:
    """A clamd of this test's own, on a temporary unix socket; stopped afterwards."""
    binary = shutil.which("clamd") or (
        "/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists() else None
    )
    if binary is None:
        server_missing("clamd (Debian package clamav-daemon)", FileNotFoundError("clamd"))
    folder = Path(tempfile.mkdtemp(prefix="omvant-clamd-"))
    (folder / "db").mkdir()
    md5 = hashlib.md5(INFECTED).hexdigest()
    (folder / "db" / "omvant-test.hdb").write_text(f"{md5}:{len(INFECTED)}:Omvant.Test.Infected\n")
    socket_path = folder / "clamd.sock"
    with socket.socket() as probe:  # a free loopback port for clamd's TCP listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = folder / "clamd.conf"
    config.write_text(
        f"LocalSocket {socket_path}\nDatabaseDirectory {folder / 'db'}\nForeground yes\n"
        f"LogFile {folder / 'clamd.log'}\nTemporaryDirectory {folder}\nStreamMaxLength 32M\n"
        f"TCPSocket {port}\nTCPAddr 127.0.0.1\n"
    )
    process = subprocess.Popen(
        [str(binary), f"--config-file={config}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    scanner = ClamdScanner(socket_path, timeout=5)
    try:
        deadline = time.monotonic() + 90
        while not scanner.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "clamd.log").read_text() if (folder / "clamd.log").exists() else ""
                pytest.fail(f"clamd did not start: {log[-2000:]}")
            time.sleep(0.2)
        (folder / "tcp").write_text(f"tcp://127.0.0.1:{port}")
        yield socket_path
    finally:
        stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)


def test_clamd_rejects_a_file_matching_a_signature_and_passes_a_clean_one(
    clamd_socket: Path,
) -> None:
    scanner = ClamdScanner(clamd_socket, timeout=10)
    infected = inspect(INFECTED, Limits(), scanner)
    assert infected.reason == Reason.ATTACHMENT_INFECTED
    assert "Omvant.Test.Infected" in (infected.detail or "")
    clean = inspect(samples.png(41, 40), Limits(), scanner)
    assert clean.ok, clean.detail
    assert inspect(samples.pdf(2), Limits(), ClamdScanner(f"unix://{clamd_socket}")).ok


def test_clamd_answers_over_tcp_too(clamd_socket: Path) -> None:
    scanner = ClamdScanner((clamd_socket.parent / "tcp").read_text(), timeout=10)
    assert scanner.ping()
    assert scanner.scan(INFECTED).infected
    assert not scanner.scan(samples.jpeg(32, 32)).infected


def test_a_file_larger_than_one_stream_chunk_is_scanned_whole(clamd_socket: Path) -> None:
    big = samples.pdf(filler=3 * 1024 * 1024)
    assert not ClamdScanner(clamd_socket).scan(big).infected
    assert ClamdScanner(clamd_socket).scan(INFECTED).infected


def test_the_worker_scans_with_clamd_when_configured(
    clamd_socket: Path, sqlite_url: str, tmp_path: Path, queue_prefix: str
) -> None:
    from contracts.send_case import SendCaseV2
    from producers.demo import count_settled, start_pipeline, wait_for
    from tests.reachable import reachable_residents
    from workers.settings import Settings
    from workers.stage import emit
    from workers.store import cases

    settings = Settings(
        database_url=sqlite_url,
        blob_dir=tmp_path / "blobs",
        queue_prefix=queue_prefix,
        clamd_socket=clamd_socket,
    )
    pipeline = start_pipeline(settings, threads=2)
    try:
        ctx = pipeline.ctx
        assert isinstance(ctx.scanner, ClamdScanner)
        files = {"infected": INFECTED, "clean": samples.png(41, 40)}
        requests = [
            SendCaseV2(
                clinic_hsa_id="SE2321000016-VC01",
                sender_hsa_id="SE2321000016-S101",
                template_id="meddelande-till-invanare",
                fragments=["halsning"],
                personnummer=resident,
                attachments=[
                    store_attachment(
                        ctx.engine,
                        ctx.blobs,
                        data,
                        owner_hsa_id="SE2321000016-VC01",
                        filename="bild.png",
                    )
                ],
                idempotency_key=f"clamd:{name}",
                batch_id="clamd",
            )
            for (name, data), resident in zip(
                files.items(), reachable_residents(2, 1177), strict=True
            )
        ]
        emit(ctx, requests, correlation_id="clamd")
        assert wait_for(lambda: count_settled(ctx, "clamd"), 2, timeout=60) == 2
        with ctx.engine.connect() as conn:
            reasons = cases.count_reasons(conn, batch_id="clamd")
            states = cases.count_states(conn, batch_id="clamd")
        assert reasons == {"attachment-infected": 1}
        assert states["rejected"] == 1
    finally:
        pipeline.stop()


def test_a_clamd_that_is_not_there_is_unavailable_not_a_verdict(tmp_path: Path) -> None:
    scanner = ClamdScanner(tmp_path / "no.sock", timeout=1)
    assert not scanner.ping()
    with pytest.raises(ScannerUnavailable):
        scanner.scan(b"anything")
