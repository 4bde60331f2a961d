"""Logs never carry identity numbers or message content in clear."""

from __future__ import annotations

import logging

import structlog

from workers.log import MaskingFilter, configure, redact


def test_structlog_events_are_masked_and_content_dropped() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "sent to 19121212-1212",
            "number": "191212121212",
            "body": "Ditt provsvar är positivt",
            "nested": {"who": ["121212-1212"]},
        },
    )
    text = repr(event)
    assert "1212121212" not in text and "1212-1212" not in text
    assert "provsvar" not in text
    assert event["number"] == "19121212-****"


def test_library_log_records_lose_payloads_and_numbers() -> None:
    record = logging.LogRecord(
        "dramatiq.worker",
        logging.ERROR,
        __file__,
        1,
        "Failed to process message %s",
        ({"payload": [{"personnummer": "191212121212", "free_text": "hemligt"}]},),
        None,
    )
    assert MaskingFilter().filter(record)
    assert "191212121212" not in record.msg and "hemligt" not in record.msg


def test_configured_processors_mask_what_reaches_the_output(capsys: object) -> None:
    configure("INFO")
    structlog.get_logger("t").info("case for 19121212-1212 composed", body="secret text")
    captured = capsys.readouterr()  # type: ignore[attr-defined]
    out = captured.err + captured.out
    assert "1212-1212" not in out and "secret text" not in out
    assert "19121212-****" in out
