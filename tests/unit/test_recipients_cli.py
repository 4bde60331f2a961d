"""``omvant recipients check`` and ``bench`` with the simulated directory (the default)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from producers.cli import app
from tests.unit.test_recipient_validation import (
    BLOCKED,
    BOTH,
    COORDS,
    DEACTIVATED,
    EMAIL_ONLY,
    NO_ACCOUNT,
    NO_CHANNEL,
    SMS_ONLY,
    short,
)

KEYS = ["input", "valid", "normalized", "kind", "reachable", "channels", "reason", "detail"]


@pytest.fixture(autouse=True)
def simulated_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded default: no directory URL, so the simulator answers."""
    monkeypatch.delenv("OMVANT_DIRECTORY_URL", raising=False)
    monkeypatch.setenv("OMVANT_SEED", "1177")


def run(*args: str, stdin: str | None = None) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, ["recipients", *args], input=stdin)
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_json_lines_have_the_promised_shape_and_values() -> None:
    code, lines, _ = run("check", "--json", short(SMS_ONLY), BLOCKED, "19900101-T385", COORDS[0])
    records = [json.loads(line) for line in lines]
    assert code == 1
    assert all(list(r) == KEYS for r in records)
    assert records[0] == {
        "input": short(SMS_ONLY),
        "valid": True,
        "normalized": SMS_ONLY,
        "kind": "personnummer",
        "reachable": True,
        "channels": ["sms"],
        "reason": None,
        "detail": None,
    }
    assert (records[1]["reachable"], records[1]["reason"]) == (False, "login-blocked")
    assert records[2] == {
        "input": "19900101-T385",
        "valid": False,
        "normalized": None,
        "kind": None,
        "reachable": False,
        "channels": [],
        "reason": "invalid-identity-number",
        "detail": "interim-number",
    }
    assert (records[3]["kind"], records[3]["reason"]) == (
        "samordningsnummer",
        "samordningsnummer-not-reachable",
    )


def test_exit_status_is_zero_only_when_every_number_is_reachable() -> None:
    assert run("check", BOTH, EMAIL_ONLY)[0] == 0
    assert run("check", BOTH, NO_ACCOUNT)[0] == 1


def test_text_output_names_the_reason_per_number() -> None:
    code, lines, _ = run("check", EMAIL_ONLY, DEACTIVATED, "900101-2386")
    assert code == 1
    assert lines == [
        f"{EMAIL_ONLY}\treachable\temail",
        f"{DEACTIVATED}\taccount-deactivated\tthe resident's 1177 account is deactivated",
        "900101-2386\tinvalid-identity-number\tcheck-digit",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("check",),
        ("check", BOTH, "--file", "numbers.txt"),
        ("check", "--file", "does-not-exist.txt"),
        ("check", "--no-such-option"),
    ],
)
def test_usage_errors_exit_with_two(args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "numbers.txt").write_text(BOTH + "\n")
    fixed = [str(tmp_path / a) if a.endswith(".txt") else a for a in args]
    code, lines, _ = run(*fixed)
    assert code == 2
    assert lines == []


def dispatch_file(tmp_path: Path) -> tuple[Path, list[str]]:
    numbers = [BOTH, NO_ACCOUNT, BLOCKED, NO_CHANNEL, DEACTIVATED, COORDS[1], "", "nonsense"]
    numbers += [short(SMS_ONLY), BOTH]
    path = tmp_path / "dispatch.txt"
    path.write_text("\r\n".join(numbers) + "\r\n", encoding="utf-8")
    return path, numbers


def test_a_file_gets_one_verdict_per_line_and_a_closing_summary(tmp_path: Path) -> None:
    path, numbers = dispatch_file(tmp_path)
    code, lines, _ = run("check", "--json", "--file", str(path))
    records = [json.loads(line) for line in lines[:-1]]
    summary = json.loads(lines[-1])["summary"]
    assert code == 1
    assert [r["input"] for r in records] == numbers
    reasons = Counter(r["reason"] for r in records if r["reason"])
    assert summary == {
        "checked": len(numbers),
        "reachable": 3,
        "unreachable": len(numbers) - 3,
        "reasons": dict(sorted(reasons.items())),
    }
    assert reasons == {
        "no-account": 1,
        "login-blocked": 1,
        "no-notification-channel": 1,
        "account-deactivated": 1,
        "samordningsnummer-not-reachable": 1,
        "invalid-identity-number": 2,
    }
    assert [r["detail"] for r in records if r["input"] in ("", "nonsense")] == ["empty", "format"]


def test_a_file_can_come_from_stdin_with_a_readable_summary(tmp_path: Path) -> None:
    path, numbers = dispatch_file(tmp_path)
    code, lines, _ = run("check", "--file", "-", stdin=path.read_text())
    assert code == 1
    assert len(lines) == len(numbers) + 1 + 6
    assert (
        lines[len(numbers)]
        == f"checked {len(numbers)}: 3 reachable, {len(numbers) - 3} not reachable"
    )
    assert "  invalid-identity-number\t2" in lines


def test_a_file_of_reachable_residents_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "ok.txt"
    path.write_text(f"{BOTH}\n{EMAIL_ONLY}\n")
    code, lines, _ = run("check", "--json", "--file", str(path))
    assert code == 0
    assert json.loads(lines[-1])["summary"]["reachable"] == 2


def test_a_byte_order_mark_before_the_first_number_is_not_part_of_it(tmp_path: Path) -> None:
    path = tmp_path / "excel.txt"
    path.write_text(f"{BOTH}\r\n{EMAIL_ONLY}\r\n", encoding="utf-8-sig")
    for source, stdin in ((str(path), None), ("-", path.read_text(encoding="utf-8"))):
        code, lines, _ = run("check", "--json", "--file", source, stdin=stdin)
        records = [json.loads(line) for line in lines[:-1]]
        assert [(r["input"], r["reachable"]) for r in records] == [(BOTH, True), (EMAIL_ONLY, True)]
        assert code == 0


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/", "127.0.0.1:8080"])
def test_a_directory_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    code, lines, err = run("check", "--directory", url, BOTH)
    assert (code, lines) == (2, [])
    assert "must be http:// or https://" in err


def test_bench_reports_its_figures() -> None:
    code, lines, _ = run("bench", "--json", "--numbers", "2000", "--lines", "3000")
    figures = json.loads(lines[0])
    assert code == 0
    assert figures["parse"]["numbers"] == 2000
    assert 0 < figures["parse"]["valid"] < 2000  # the list holds deliberate faults
    assert figures["parse"]["numbers_per_second"] > 0
    check = figures["check_file"]
    assert (check["lines"], check["checked"], check["directory"]) == (
        3000,
        3000,
        "SimulatedAccountDirectory",
    )
    assert check["reachable"] + check["unreachable"] == 3000
    assert set(check["reasons"]) >= {"invalid-identity-number", "samordningsnummer-not-reachable"}
