"""The content checks on every kind of file: verdicts, cleaning, limits and claims."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pypdf import PdfReader

from producers import attachment_samples as samples
from workers.attachments.checker import check_file, inspect
from workers.attachments.identify import claimed_extension, disagreement
from workers.attachments.limits import Limits
from workers.attachments.scanner import SimulatedVirusScanner
from workers.attachments.structure import header_dimensions
from workers.reasons import Reason

LIMITS = Limits()
SCANNER = SimulatedVirusScanner()
CORPUS = samples.corpus()


@pytest.mark.parametrize("sample", CORPUS, ids=[s.name for s in CORPUS])
def test_every_kind_of_file_gets_its_verdict(sample: samples.Sample) -> None:
    verdict = check_file(
        sample.data,
        filename=sample.filename,
        declared_type=sample.declared_type,
        limits=LIMITS,
        scanner=SCANNER,
    )
    assert verdict.reason == (Reason(sample.reason) if sample.reason else None), verdict.detail
    assert verdict.ok is (sample.reason is None)
    if sample.type is not None:
        assert verdict.type == sample.type
    if not verdict.ok:
        assert verdict.detail


def test_the_corpus_covers_every_attachment_reason_the_content_can_earn() -> None:
    earned = {s.reason for s in CORPUS}
    content_reasons = {
        r.value
        for r in Reason
        if r.value.startswith("attachment-")
        and r not in (Reason.ATTACHMENT_MISSING, Reason.ATTACHMENT_NOT_OWNED)  # not content
    }
    assert content_reasons <= earned


def test_a_phone_photo_is_cleaned_of_exif_and_gps_but_keeps_its_pixels() -> None:
    original = samples.jpeg_with_gps(320, 240)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)
    verdict = inspect(original, LIMITS, SCANNER)
    assert verdict.ok and verdict.cleaned is not None
    assert verdict.cleaned_sha256 != verdict.sha256
    assert verdict.cleaned_size == len(verdict.cleaned)
    cleaned = Image.open(io.BytesIO(verdict.cleaned))
    assert cleaned.format == "JPEG"
    assert cleaned.size == (320, 240)
    assert not cleaned.getexif()
    assert b"Exif" not in verdict.cleaned[:4096]
    assert b"Omvant Test Camera" not in verdict.cleaned
    # the cleaned file passes the same check, and needs no more cleaning of metadata
    assert inspect(verdict.cleaned, LIMITS, SCANNER).ok


def test_an_upside_down_photo_is_turned_upright_before_its_orientation_tag_goes() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the camera held sideways
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 10, 10)).save(out, format="JPEG", exif=exif)
    verdict = inspect(out.getvalue(), LIMITS, SCANNER)
    assert verdict.cleaned is not None
    assert Image.open(io.BytesIO(verdict.cleaned)).size == (20, 40)


def test_a_png_with_text_chunks_is_cleaned_of_them() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Dr Andersson, Vårdcentralen")
    out = io.BytesIO()
    Image.new("RGB", (30, 30), (1, 2, 3)).save(out, format="PNG", pnginfo=info)
    verdict = inspect(out.getvalue(), LIMITS, SCANNER)
    assert verdict.ok and verdict.cleaned is not None
    assert b"Andersson" not in verdict.cleaned
    assert Image.open(io.BytesIO(verdict.cleaned)).getpixel((5, 5)) == (1, 2, 3)


def test_a_pdf_passes_with_its_page_count_and_is_not_changed() -> None:
    data = samples.pdf(5)
    verdict = inspect(data, LIMITS, SCANNER)
    assert verdict.ok and verdict.pages == 5 == len(PdfReader(io.BytesIO(data)).pages)
    assert verdict.cleaned is None and verdict.delivered_sha256 == verdict.sha256


def test_an_open_action_that_only_opens_a_page_is_harmless() -> None:
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, NameObject, NullObject

    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    page = writer.pages[0].indirect_reference
    writer._root_object[NameObject("/OpenAction")] = ArrayObject(
        [page, NameObject("/XYZ"), NullObject(), NullObject(), NullObject()]
    )
    out = io.BytesIO()
    writer.write(out)
    assert inspect(out.getvalue(), LIMITS, SCANNER).ok


@pytest.mark.parametrize("chained", ["/URI", "/Launch", "/GoTo"])
def test_an_open_action_goto_that_chains_another_action_is_judged_by_the_chain(
    chained: str,
) -> None:
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject

    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    page = writer.pages[0].indirect_reference
    follow = DictionaryObject({NameObject("/S"): NameObject(chained)})
    if chained == "/URI":
        follow[NameObject("/URI")] = TextStringObject("http://example.invalid/")
    if chained == "/GoTo":
        follow[NameObject("/D")] = ArrayObject([page, NameObject("/Fit")])
    writer._root_object[NameObject("/OpenAction")] = DictionaryObject(
        {
            NameObject("/S"): NameObject("/GoTo"),
            NameObject("/D"): ArrayObject([page, NameObject("/Fit")]),
            NameObject("/Next"): ArrayObject([writer._add_object(follow)]),
        }
    )
    out = io.BytesIO()
    writer.write(out)
    verdict = inspect(out.getvalue(), LIMITS, SCANNER)
    if chained == "/GoTo":
        assert verdict.ok
    else:
        assert verdict.reason == Reason.ATTACHMENT_PDF_ACTIVE_CONTENT


def test_size_and_pixel_limits_are_configurable() -> None:
    photo = samples.jpeg(200, 100)
    assert inspect(photo, Limits(max_bytes=len(photo)), SCANNER).ok
    small = inspect(photo, Limits(max_bytes=len(photo) - 1), SCANNER)
    assert small.reason == Reason.ATTACHMENT_TOO_LARGE
    assert inspect(photo, Limits(max_pixels=20_000), SCANNER).ok
    few = inspect(photo, Limits(max_pixels=19_999), SCANNER)
    assert few.reason == Reason.ATTACHMENT_IMAGE_TOO_LARGE
    assert "200x100" in (few.detail or "")


def test_dimensions_come_from_the_header_before_any_decoding() -> None:
    assert header_dimensions(samples.png_header_bomb(100_000), "png") == (100_000, 100_000)
    assert header_dimensions(samples.jpeg_header_bomb(60_000), "jpeg") == (60_000, 60_000)
    assert header_dimensions(samples.jpeg(64, 32), "jpeg") == (64, 32)


def test_the_simulated_scanner_reports_the_eicar_test_string() -> None:
    infected = inspect(samples.pdf_with_text_stream(samples.EICAR), LIMITS, SCANNER)
    assert infected.reason == Reason.ATTACHMENT_INFECTED
    assert inspect(samples.pdf_with_text_stream(b"harmless"), LIMITS, SCANNER).ok


@pytest.mark.parametrize(
    ("name", "claim"),
    [("provsvar 2024.03.01", None), ("Scan.PDF", ".pdf"), ("bild.jpeg", ".jpeg"), ("x", None)],
)
def test_only_extension_like_suffixes_are_claims(name: str, claim: str | None) -> None:
    assert claimed_extension(name) == claim


def test_declared_types_are_compared_without_case_or_parameters() -> None:
    assert disagreement("pdf", "a.PDF", "Application/PDF; charset=binary") is None
    assert disagreement("jpeg", "a.jpg", "image/jpg") is None
    assert disagreement("png", "a.png", "application/octet-stream") is None
    assert disagreement("png", "a.png", "image/gif") is not None
    assert disagreement("jpeg", "a.exe", "") is not None


def test_a_broken_pdf_never_puts_its_content_in_the_logs_or_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    secret = b"Provsvar: positivt"
    broken = samples.pdf_with_text_stream(secret).replace(
        b"/Type /Catalog", b"\xd6\x00" + secret + b"/Type /Catalog"
    )
    verdict = inspect(broken, LIMITS, SCANNER)
    assert verdict.reason == Reason.ATTACHMENT_CORRUPT
    assert "Provsvar" not in (verdict.detail or "")
    assert "Provsvar" not in caplog.text
