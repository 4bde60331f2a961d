"""How much an attachment may be: bytes per file, files per message, pixels per image."""

from __future__ import annotations

from dataclasses import dataclass

from workers.settings import Settings

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The limits 1177 practice sets (20 MB a file, 10 files a message), configurable."""

    max_bytes: int = 20 * MB
    max_files: int = 10
    max_pixels: int = 50_000_000
    """Width times height; checked from the header, before any pixel is decoded."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured by ``OMVANT_MAX_ATTACHMENT_BYTES`` and friends."""
        return cls(
            max_bytes=settings.max_attachment_bytes,
            max_files=settings.max_attachments,
            max_pixels=settings.max_image_pixels,
        )

    def fingerprint(self) -> str:
        """A short text that changes when a limit that decides a verdict changes."""
        return f"b{self.max_bytes}:p{self.max_pixels}"
