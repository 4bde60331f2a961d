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


SECRET_BODY = "Ditt provsvar är positivt"
SECRET_PART = {"body": "hemligt"}


def _validation_error() -> BaseException:
    """A pydantic error quoting its input, as a stage's contract model raises it (the inputs
    are module constants so that the traceback's source lines do not show them)."""
    from pydantic import BaseModel, ValidationError

    class Record(BaseModel):
        size: int
        parts: list[int]

    try:
        Record.model_validate({"size": SECRET_BODY, "parts": [SECRET_PART]})
    except ValidationError as exc:
        return exc
    raise AssertionError("the record should not validate")


def test_library_tracebacks_lose_the_inputs_pydantic_quotes() -> None:
    error = _validation_error()
    record = logging.LogRecord(
        "dramatiq.worker",
        logging.ERROR,
        __file__,
        1,
        "Failed to process message %s",
        ("x",),
        (type(error), error, error.__traceback__),
    )
    assert MaskingFilter().filter(record)
    assert record.exc_text is not None
    assert "input_value=[redacted]" in record.exc_text
    assert "provsvar" not in record.exc_text and "hemligt" not in record.exc_text


def test_structlog_exceptions_lose_the_inputs_pydantic_quotes(capsys: object) -> None:
    configure("INFO")
    error = _validation_error()
    try:
        raise error
    except BaseException:
        structlog.get_logger("t").exception("composing failed")
    captured = capsys.readouterr()  # type: ignore[attr-defined]
    out = captured.err + captured.out
    assert "composing failed" in out and "input_value=[redacted]" in out
    assert "provsvar" not in out and "hemligt" not in out
