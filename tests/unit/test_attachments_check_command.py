"""``omvant attachments check`` on inputs a person may hand it: never read a huge file whole."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

OMVANT = [sys.executable, "-c", "from producers.cli import main; main()"]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_input_is_too_large_without_being_read_whole(tmp_path: Path) -> None:
    small = tmp_path / "small.pdf"
    small.write_bytes(b"%PDF-1.4\n" + b"x" * 2_000)
    env = {**os.environ, "OMVANT_MAX_ATTACHMENT_BYTES": "1000"}
    result = subprocess.run(
        [*OMVANT, "attachments", "check", "--json", "/dev/zero", str(small)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=_limit_memory,
        check=False,
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["file"], r["reason"]) for r in records] == [
        ("/dev/zero", "attachment-too-large"),
        (str(small), "attachment-too-large"),
    ]
    assert records[1]["detail"] == "2,009 bytes is over the limit of 1,000"
    assert result.returncode == 1


def _put(tmp_path: Path, *args: str, limit: str = "1000") -> subprocess.CompletedProcess[str]:
    from workers.store.engine import upgrade

    upgrade(f"sqlite:///{tmp_path}/o.db")
    env = {
        **os.environ,
        "OMVANT_MAX_ATTACHMENT_BYTES": limit,
        "OMVANT_BLOB_DIR": str(tmp_path / "blobs"),
        "OMVANT_DATABASE_URL": f"sqlite:///{tmp_path}/o.db",
    }
    return subprocess.run(
        [*OMVANT, "attachments", "put", "--clinic", "SE2321000016-VC01", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=_limit_memory,
        check=False,
    )


def test_put_refuses_a_file_over_the_limit_and_a_bad_name_without_storing_it(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"x" * 2_000)
    over = _put(tmp_path, str(big))
    assert over.returncode == 1 and "attachment-too-large" in over.stderr
    assert "Traceback" not in over.stderr
    named = _put(tmp_path, str(big), "--name", "a" * 5_000 + ".pdf", limit="100000")
    assert named.returncode == 2 and "invalid-payload: filename" in named.stderr
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    stored = _put(tmp_path, str(big), limit="100000")
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout)["size"] == 2_009
