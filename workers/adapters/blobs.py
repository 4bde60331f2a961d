"""Attachments are stored content-addressed (sha256); messages carry references only."""

from __future__ import annotations

import abc
import hashlib
import os
import tempfile
from pathlib import Path


class BlobStore(abc.ABC):
    """Content-addressed storage of attachment files."""

    @abc.abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 (hex). Storing the same bytes twice is harmless."""

    @abc.abstractmethod
    def get(self, sha256: str) -> bytes | None:
        """The bytes stored under ``sha256``, or ``None``."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the blob if it is there."""


class FilesystemBlobStore(BlobStore):
    """Blobs as files ``<root>/<aa>/<sha256>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if path.exists():
            return sha256
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes | None:
        try:
            return self._path(sha256).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)
