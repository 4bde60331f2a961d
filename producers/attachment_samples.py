"""Builds a file of every kind the attachment check must judge, from Pillow, pypdf and zipfile.

Nothing is downloaded: the tests' corpus (valid, truncated, renamed, polyglot, with JavaScript,
with an embedded file, encrypted, with GPS EXIF, oversized, pixel bombs), the demo's files and
the benchmark's mix are all made here, deterministically. ``corpus()`` lists every sample with
the verdict it must get; ``omvant attachments corpus DIR`` writes them out.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageDraw
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _picture(width: int, height: int, seed: int = 7) -> Image.Image:
    """A photo-like picture: smooth gradients with a little noise, so codecs work for real."""
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 24)
    rng = random.Random(seed)
    tint = Image.new("L", (width, height), rng.randrange(60, 200))
    return Image.merge("RGB", (gradient, noise, tint))


def png(width: int = 320, height: int = 240) -> bytes:
    """A valid PNG."""
    out = io.BytesIO()
    _picture(width, height).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = 640, height: int = 480, *, quality: int = 85) -> bytes:
    """A valid JPEG without metadata."""
    out = io.BytesIO()
    _picture(width, height).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def screenshot(width: int = 1280, height: int = 800) -> bytes:
    """A PNG screenshot: flat colours, boxes and lines of text."""
    image = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for y in range(0, height - 24, 32):
        draw.rectangle((20, y + 4, width - 20, y + 24), outline=(180, 190, 200))
        draw.text((30, y + 8), f"1177 Inkorg - meddelande {y // 32}", fill=(10, 10, 10))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def scanned_letter(pages: int = 2) -> bytes:
    """A PDF as a clinic's scanner makes it: one JPEG picture of an A4 page (150 dpi) a page."""
    images = []
    for page in range(pages):
        image = Image.new("L", (1240, 1754), 245)
        draw = ImageDraw.Draw(image)
        for y in range(150, 1600, 40):
            draw.text((120, y), f"Kallelse, sida {page + 1}: tid och plats, rad {y}", fill=20)
        images.append(image.convert("RGB"))
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


def jpeg_with_gps(width: int = 640, height: int = 480) -> bytes:
    """A phone photo: a JPEG whose EXIF holds where it was taken, the camera and the time."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Omvant Test Camera"
    exif[ExifTags.Base.DateTime] = "2024:05:17 10:42:00"
    exif[ExifTags.Base.Orientation] = 1
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (59.0, 19.0, 48.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (18.0, 4.0, 12.0)
    out = io.BytesIO()
    _picture(width, height).save(out, format="JPEG", quality=85, exif=exif)
    return out.getvalue()


def _writer(pages: int = 1) -> PdfWriter:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    return writer


def _bytes(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf(pages: int = 1, *, filler: int = 0) -> bytes:
    """A valid PDF of ``pages`` blank A4 pages; ``filler`` bytes of noise in a content stream
    make it as large as wanted."""
    writer = _writer(pages)
    if filler:
        stream = DecodedStreamObject()
        stream.set_data(b"% " + random.Random(filler).randbytes(filler).replace(b"\n", b" "))
        writer.pages[0][NameObject("/Contents")] = writer._add_object(stream)
    return _bytes(writer)


def pdf_with_text_stream(text: bytes) -> bytes:
    """A valid one-page PDF whose content stream carries ``text`` uncompressed."""
    writer = _writer()
    stream = DecodedStreamObject()
    stream.set_data(b"% " + text + b"\n")
    writer.pages[0][NameObject("/Contents")] = writer._add_object(stream)
    return _bytes(writer)


def pdf_with_javascript() -> bytes:
    """A PDF that runs JavaScript when opened."""
    writer = _writer()
    action = DictionaryObject(
        {
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("app.alert('hello');"),
        }
    )
    scripts = DictionaryObject(
        {NameObject("/Names"): ArrayObject([TextStringObject("hello"), writer._add_object(action)])}
    )
    writer._root_object[NameObject("/Names")] = DictionaryObject(
        {NameObject("/JavaScript"): writer._add_object(scripts)}
    )
    return _bytes(writer)


def pdf_with_open_action() -> bytes:
    """A PDF that opens a web address by itself when opened (an OpenAction)."""
    writer = _writer()
    action = DictionaryObject(
        {
            NameObject("/S"): NameObject("/URI"),
            NameObject("/URI"): TextStringObject("https://example.invalid/"),
        }
    )
    writer._root_object[NameObject("/OpenAction")] = action
    return _bytes(writer)


def pdf_with_launch() -> bytes:
    """A PDF with a link that launches a program."""
    writer = _writer()
    action = DictionaryObject(
        {
            NameObject("/S"): NameObject("/Launch"),
            NameObject("/F"): TextStringObject("cmd.exe"),
        }
    )
    annotation = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([NumberObject(n) for n in (10, 10, 100, 100)]),
            NameObject("/A"): action,
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(annotation)])
    return _bytes(writer)


def pdf_with_embedded_file() -> bytes:
    """A PDF carrying another file inside it."""
    writer = _writer()
    writer.add_attachment("payload.txt", b"not for the resident")
    return _bytes(writer)


def pdf_with_xfa() -> bytes:
    """A PDF with an XFA form."""
    writer = _writer()
    xfa = DecodedStreamObject()
    xfa.set_data(b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'></xdp:xdp>")
    form = DictionaryObject(
        {
            NameObject("/Fields"): ArrayObject(),
            NameObject("/XFA"): writer._add_object(xfa),
        }
    )
    writer._root_object[NameObject("/AcroForm")] = writer._add_object(form)
    return _bytes(writer)


def pdf_encrypted() -> bytes:
    """A PDF encrypted with a password."""
    writer = _writer()
    password = "hemligt"  # noqa: S105 - the known password of a test file
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    return _bytes(writer)


def docx() -> bytes:
    """A minimal Word document (Office Open XML: a ZIP archive)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr("word/document.xml", "<w:document><w:body>Remiss</w:body></w:document>")
    return out.getvalue()


def xlsx() -> bytes:
    """A minimal Excel workbook (Office Open XML: a ZIP archive)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


def gif() -> bytes:
    """A GIF image."""
    out = io.BytesIO()
    _picture(32, 32).convert("P").save(out, format="GIF")
    return out.getvalue()


def svg() -> bytes:
    """An SVG image with a script in it."""
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b"<script>alert(1)</script></svg>\n"
    )


def truncated(data: bytes, share: float = 0.6) -> bytes:
    """The first ``share`` of ``data``: an upload that broke off."""
    return data[: max(1, int(len(data) * share))]


def with_appended_zip(data: bytes) -> bytes:
    """A polyglot: a valid file with a ZIP archive appended after its end marker."""
    return data + docx()


def jpeg_with_pdf_inside() -> bytes:
    """A polyglot: a JPEG whose comment segment holds a PDF header."""
    out = io.BytesIO()
    _picture(64, 64).save(out, format="JPEG", comment=b"%PDF-1.7 1 0 obj<<>>endobj")
    return out.getvalue()


def png_bad_checksum() -> bytes:
    """A PNG with one byte of its image data changed: corrupt."""
    data = bytearray(png(64, 64))
    idat = data.find(b"IDAT")
    data[idat + 10] ^= 0xFF
    return bytes(data)


def png_pixel_bomb(side: int = 10_000) -> bytes:
    """A small PNG that decodes to ``side``² pixels: a decompression bomb."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, format="PNG")
    return out.getvalue()


def png_header_bomb(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``side``² pixels (its data is one row)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00" * (side + 1))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def jpeg_header_bomb(side: int = 60_000) -> bytes:
    """A small JPEG whose frame header claims ``side``² pixels."""
    data = bytearray(jpeg(16, 16))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


@dataclass(frozen=True)
class Sample:
    """One file of the corpus and the verdict it must get."""

    name: str
    filename: str
    data: bytes
    reason: str | None
    type: str | None
    declared_type: str = "application/octet-stream"


def corpus(*, max_bytes: int = 20 * 1024 * 1024) -> list[Sample]:
    """Every kind of file, with the reason code it must get (``None``: it passes)."""
    valid_pdf, valid_png, valid_jpeg = pdf(3), png(), jpeg()
    return [
        Sample("valid-pdf", "kallelse.pdf", valid_pdf, None, "pdf", "application/pdf"),
        Sample("valid-png", "karta.png", valid_png, None, "png", "image/png"),
        Sample("valid-jpeg", "foto.jpg", valid_jpeg, None, "jpeg", "image/jpeg"),
        Sample("jpeg-with-gps", "mobilfoto.jpeg", jpeg_with_gps(), None, "jpeg"),
        Sample("no-extension-pdf", "provsvar 2024.03.01", pdf(), None, "pdf"),
        Sample("docx", "remiss.docx", docx(), "attachment-type-not-allowed", None),
        Sample("docx-renamed", "remiss.pdf", docx(), "attachment-type-not-allowed", None),
        Sample("xlsx-renamed", "tider.png", xlsx(), "attachment-type-not-allowed", None),
        Sample("gif", "bild.gif", gif(), "attachment-type-not-allowed", None),
        Sample("gif-renamed", "bild.jpg", gif(), "attachment-type-not-allowed", None),
        Sample("svg-renamed", "logga.png", svg(), "attachment-type-not-allowed", None),
        Sample("empty", "tom.pdf", b"", "attachment-type-not-allowed", None),
        Sample("pdf-named-png", "karta.png", pdf(), "attachment-type-mismatch", "pdf"),
        Sample("png-named-docx", "brev.docx", png(32, 32), "attachment-type-mismatch", "png"),
        Sample(
            "png-declared-pdf",
            "karta",
            png(32, 32),
            "attachment-type-mismatch",
            "png",
            "application/pdf",
        ),
        Sample(
            "pdf-truncated", "kallelse.pdf", truncated(valid_pdf), "attachment-truncated", "pdf"
        ),
        Sample("png-truncated", "karta.png", truncated(valid_png), "attachment-truncated", "png"),
        Sample("jpeg-truncated", "foto.jpg", truncated(valid_jpeg), "attachment-truncated", "jpeg"),
        Sample("png-corrupt", "karta.png", png_bad_checksum(), "attachment-corrupt", "png"),
        Sample(
            "png-zip-polyglot",
            "karta.png",
            with_appended_zip(valid_png),
            "attachment-polyglot",
            "png",
        ),
        Sample(
            "jpeg-zip-polyglot",
            "foto.jpg",
            with_appended_zip(valid_jpeg),
            "attachment-polyglot",
            "jpeg",
        ),
        Sample(
            "pdf-trailing-data",
            "kallelse.pdf",
            valid_pdf + b"<script>alert(1)</script>",
            "attachment-polyglot",
            "pdf",
        ),
        Sample(
            "jpeg-pdf-polyglot", "foto.jpg", jpeg_with_pdf_inside(), "attachment-polyglot", "jpeg"
        ),
        Sample(
            "pdf-javascript",
            "info.pdf",
            pdf_with_javascript(),
            "attachment-pdf-active-content",
            "pdf",
        ),
        Sample(
            "pdf-open-action",
            "info.pdf",
            pdf_with_open_action(),
            "attachment-pdf-active-content",
            "pdf",
        ),
        Sample("pdf-launch", "info.pdf", pdf_with_launch(), "attachment-pdf-active-content", "pdf"),
        Sample(
            "pdf-embedded-file",
            "info.pdf",
            pdf_with_embedded_file(),
            "attachment-pdf-active-content",
            "pdf",
        ),
        Sample("pdf-xfa", "blankett.pdf", pdf_with_xfa(), "attachment-pdf-active-content", "pdf"),
        Sample("pdf-encrypted", "svar.pdf", pdf_encrypted(), "attachment-pdf-encrypted", "pdf"),
        Sample(
            "pdf-oversized",
            "broschyr.pdf",
            pdf(filler=max_bytes + 1024),
            "attachment-too-large",
            None,
        ),
        Sample("png-pixel-bomb", "bomb.png", png_pixel_bomb(), "attachment-image-too-large", "png"),
        Sample(
            "png-header-bomb", "bomb.png", png_header_bomb(), "attachment-image-too-large", "png"
        ),
        Sample(
            "jpeg-header-bomb", "bomb.jpg", jpeg_header_bomb(), "attachment-image-too-large", "jpeg"
        ),
        Sample(
            "pdf-eicar",
            "smittad.pdf",
            pdf_with_text_stream(EICAR),
            "attachment-infected",
            "pdf",
        ),
    ]


def typical_mix() -> list[Sample]:
    """What a region's clinics attach on a typical day: letters and brochures as PDF, phone
    photos as JPEG, screenshots as PNG, and a few files that are refused."""
    return [
        *(Sample(f"letter-{n}", "kallelse.pdf", pdf(2), None, "pdf") for n in range(3)),
        Sample("scanned-letter", "remissvar.pdf", scanned_letter(3), None, "pdf"),
        Sample("brochure", "broschyr.pdf", pdf(24, filler=2_000_000), None, "pdf"),
        Sample("photo-small", "utslag.jpg", jpeg_with_gps(1600, 1200), None, "jpeg"),
        Sample("photo-medium", "sar.jpg", jpeg_with_gps(2016, 1512), None, "jpeg"),
        Sample("photo-large", "leverflack.jpg", jpeg_with_gps(4032, 3024), None, "jpeg"),
        Sample("screenshot", "skarmbild.png", screenshot(), None, "png"),
        Sample("diagram", "kurva.png", png(640, 480), None, "png"),
        Sample("renamed-docx", "remiss.pdf", docx(), "attachment-type-not-allowed", None),
        Sample(
            "scripted-pdf",
            "blankett.pdf",
            pdf_with_javascript(),
            "attachment-pdf-active-content",
            "pdf",
        ),
        Sample(
            "broken-photo", "foto.jpg", truncated(jpeg(1600, 1200)), "attachment-truncated", "jpeg"
        ),
    ]
