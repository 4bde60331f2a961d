"""The check's word on one file's content."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.common import AttachmentType
from workers.reasons import Reason


@dataclass(frozen=True)
class Verdict:
    """What a file's content is and whether it may reach a resident.

    ``sha256`` and ``size`` are the original's. When cleaning changed the file (images are
    re-encoded without metadata), ``cleaned_sha256`` and ``cleaned_size`` name the bytes to
    deliver instead, and ``cleaned`` holds them right after the check (not when the verdict
    comes from the verdict table).
    """

    ok: bool
    type: AttachmentType | None
    sha256: str
    size: int
    reason: Reason | None = None
    detail: str | None = None
    pages: int | None = None
    cleaned_sha256: str | None = None
    cleaned_size: int | None = None
    cleaned: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def refuse(
        cls,
        reason: Reason,
        detail: str,
        *,
        sha256: str,
        size: int,
        kind: AttachmentType | None = None,
    ) -> Verdict:
        """A rejection with its stable reason code and a detail for people."""
        return cls(False, kind, sha256, size, reason, detail)

    @property
    def delivered_sha256(self) -> str:
        """The blob the resident gets: the cleaned one if there is one."""
        return self.cleaned_sha256 or self.sha256

    @property
    def delivered_size(self) -> int:
        """The size of the blob the resident gets."""
        return self.cleaned_size if self.cleaned_size is not None else self.size
