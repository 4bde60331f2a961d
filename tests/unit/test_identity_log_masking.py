"""Identity numbers never reach the logs in clear: structlog events through the real processor
chain of ``workers.log.configure``, and standard-library records through ``MaskingFilter``."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import LogCapture

from workers.adapters import population
from workers.log import MaskingFilter, configure, get_logger, mask_identity_numbers

PIN = population.test_personnummer()[5000]
COORD = population.test_samordningsnummer()[10]
FORMS = [PIN, f"{PIN[:8]}-{PIN[8:]}", f"{PIN[2:8]}-{PIN[8:]}", f"{PIN[2:8]}+{PIN[8:]}", PIN[2:]]


def in_clear(text: str, number: str = PIN) -> bool:
    """Whether ``number`` is in ``text`` in clear, in any of its written forms."""
    return number[2:] in re.sub(r"[-+ ]", "", text)


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    """The configured chain, with a capture in place of the renderer (so after ``redact``)."""
    configure("DEBUG", json=True)
    chain: list[Any] = list(structlog.get_config()["processors"])
    capture = LogCapture()
    structlog.configure(processors=[*chain[:-1], capture], cache_logger_on_first_use=False)
    yield capture
    structlog.reset_defaults()


def test_structlog_events_are_masked_wherever_the_number_is(captured: LogCapture) -> None:
    log = get_logger("test")
    log.info(f"looking up {FORMS[1]}", personnummer=PIN, short=FORMS[3], bare=int(PIN))
    log.warning("batch", numbers=[FORMS[2], FORMS[4]], by_number={PIN: "blocked"})
    log.info("note", text=f"ring {PIN}", line=f"rad 7: {COORD} saknar konto")
    rendered = json.dumps(captured.entries)
    assert not in_clear(rendered)
    assert not in_clear(rendered, COORD)
    assert f"{PIN[:8]}-****" in rendered and f"{PIN[2:8]}+****" in rendered
    assert captured.entries[2]["text"] == "[redacted]"  # message content is never logged


def test_a_traceback_naming_a_number_is_masked(captured: LogCapture) -> None:
    log = get_logger("test")
    try:
        raise ValueError(f"no account for {PIN}")
    except ValueError:
        log.exception("lookup failed")
    [entry] = captured.entries
    assert "ValueError: no account for" in entry["exception"]
    assert not in_clear(json.dumps(entry))


@pytest.mark.parametrize("as_json", [True, False])
def test_rendered_output_is_masked(as_json: bool, capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", json=as_json)
    try:
        get_logger("test").info("checked", personnummer=FORMS[1], who=f"x{PIN}y")
    finally:
        structlog.reset_defaults()
    out = capsys.readouterr().err
    assert "checked" in out
    assert not in_clear(out)


def test_standard_library_records_are_masked() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("omvant.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("no account for %s (%s)", PIN, FORMS[3])
        logger.warning("args that do not fit %s %s", PIN)  # noqa: PLE1206 - on purpose
        try:
            raise KeyError(FORMS[1])
        except KeyError:
            logger.exception("lookup of %s failed", FORMS[2])
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "KeyError" in text and "args that do not fit" in text
    assert not in_clear(text)


separators = st.sampled_from(["", " ", ":", "=", "\n", "x", "(", "pnr ", "_"])


@given(st.sampled_from(population.test_personnummer()), st.integers(0, 3), separators, separators)
def test_any_written_form_inside_text_is_masked(
    number: str, style: int, before: str, after: str
) -> None:
    form = [number, f"{number[:8]}-{number[8:]}", f"{number[2:8]}-{number[8:]}", number[2:]][style]
    masked = mask_identity_numbers(f"{before}{form}{after}")
    assert number[8:] not in masked.replace(number[:8], "").replace(number[2:8], "")
