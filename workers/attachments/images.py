"""JPEG and PNG checks with Pillow: the pixel limit from the header before any decoding, a full
decode, and cleaning: the pixels re-encoded without EXIF, GPS, XMP, ICC or text chunks."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from contracts.common import AttachmentType
from workers.attachments.structure import header_dimensions
from workers.reasons import Reason

_PILLOW_FORMAT: dict[AttachmentType, str] = {"jpeg": "JPEG", "png": "PNG"}
_KEEP_INFO = ("transparency",)
"""Image info that changes how the pixels look, kept when re-encoding; all else is dropped."""


@dataclass(frozen=True)
class ImageFinding:
    """A reason to refuse an image, or its cleaned bytes when it passes."""

    reason: Reason | None
    detail: str | None = None
    cleaned: bytes | None = None


def check_image(data: bytes, kind: AttachmentType, max_pixels: int) -> ImageFinding:
    """Check the declared dimensions, decode every pixel, re-encode without metadata."""
    claimed = header_dimensions(data, kind)
    if claimed is not None and claimed[0] * claimed[1] > max_pixels:
        return _too_large(*claimed, max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[kind]]) as image:
            width, height = image.size
            if width < 1 or height < 1:
                return ImageFinding(Reason.ATTACHMENT_CORRUPT, "the image has no pixels")
            if width * height > max_pixels:
                return _too_large(width, height, max_pixels)
            image.load()
            return ImageFinding(None, cleaned=_reencode(image, kind))
    except Image.DecompressionBombError as exc:
        return ImageFinding(Reason.ATTACHMENT_IMAGE_TOO_LARGE, str(exc)[:200])
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on hostile input
        text = str(exc).splitlines()[0] if str(exc) else ""
        return ImageFinding(
            Reason.ATTACHMENT_CORRUPT,
            f"Pillow cannot decode it: {type(exc).__name__}: {text}"[:200],
        )


def _too_large(width: int, height: int, max_pixels: int) -> ImageFinding:
    return ImageFinding(
        Reason.ATTACHMENT_IMAGE_TOO_LARGE,
        f"{width}x{height} pixels is over the limit of {max_pixels:,}",
    )


def _reencode(image: Image.Image, kind: AttachmentType) -> bytes:
    """The same picture, upright, with nothing but pixels (and transparency)."""
    upright = ImageOps.exif_transpose(image) if kind == "jpeg" else image.copy()
    upright.info = {key: image.info[key] for key in _KEEP_INFO if key in image.info}
    out = io.BytesIO()
    if kind == "jpeg":
        upright.save(out, format="JPEG", quality=90)
    else:
        upright.save(out, format="PNG")
    return out.getvalue()
