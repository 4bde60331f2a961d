"""The checker never raises on any bytes at all: arbitrary bytes, and valid files mutated,
truncated and spliced. Every verdict is a pass or a refusal with a known reason code."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers import attachment_samples as samples
from workers.attachments.checker import check_file
from workers.attachments.identify import MAGIC
from workers.attachments.limits import Limits
from workers.attachments.scanner import SimulatedVirusScanner
from workers.reasons import Reason

LIMITS = Limits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)
SCANNER = SimulatedVirusScanner()
SEEDS = [
    samples.pdf(2),
    samples.png(48, 32),
    samples.jpeg_with_gps(48, 32),
    samples.pdf_with_javascript(),
    samples.pdf_encrypted(),
    samples.pdf_with_embedded_file(),
    samples.png_header_bomb(5_000),
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_judged(data: bytes, filename: str = "fil.pdf") -> None:
    verdict = check_file(data, filename=filename, limits=LIMITS, scanner=SCANNER)
    if verdict.ok:
        assert verdict.type in ("pdf", "jpeg", "png") and verdict.reason is None
    else:
        assert isinstance(verdict.reason, Reason) and verdict.detail


@FUZZ
@given(st.binary(max_size=4096), st.text(max_size=40))
def test_arbitrary_bytes_get_a_verdict(data: bytes, filename: str) -> None:
    assert_judged(data, filename or "x")


@FUZZ
@given(st.sampled_from([m for m, _ in MAGIC]), st.binary(max_size=4096))
def test_arbitrary_bytes_behind_an_allowed_signature_get_a_verdict(
    magic: bytes, rest: bytes
) -> None:
    assert_judged(magic + rest)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_valid_files_get_a_verdict(seed: bytes, data: st.DataObject) -> None:
    mutated = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    assert_judged(bytes(mutated))


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_and_spliced_valid_files_get_a_verdict(seed: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(seed)))
    tail = data.draw(st.sampled_from([b"", b"\n", b"PK\x03\x04", seed[: cut // 2], b"%%EOF\n"]))
    assert_judged(seed[:cut] + tail)
    start = data.draw(st.integers(0, len(seed)))
    assert_judged(seed[:cut] + seed[start:])


def test_every_truncation_of_a_valid_file_is_refused() -> None:
    for seed in (samples.pdf(1), samples.png(16, 16), samples.jpeg(16, 16)):
        for cut in range(0, len(seed) - 8, max(1, len(seed) // 60)):
            verdict = check_file(seed[:cut], filename="f", limits=LIMITS, scanner=SCANNER)
            assert not verdict.ok, cut
