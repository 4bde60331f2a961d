"""Attachments are stored content-addressed (sha256); messages carry references only.

Two stores: files on a local or shared disk (the default), or an S3-compatible object store
(``OMVANT_BLOB_URL=s3://bucket/prefix``; boto3, installed with the ``s3`` extra).
"""

from __future__ import annotations

import abc
import datetime as dt
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _checked(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError("not a sha256 hex digest")
    return sha256


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: its address, size and when it was stored."""

    sha256: str
    size: int
    stored_at: dt.datetime


class BlobStore(abc.ABC):
    """Content-addressed storage of attachment files."""

    @abc.abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 (hex). Storing the same bytes twice is harmless
        and marks the blob as stored now (so garbage collection counts its age afresh)."""

    @abc.abstractmethod
    def get(self, sha256: str) -> bytes | None:
        """The bytes stored under ``sha256``, or ``None``."""

    @abc.abstractmethod
    def size(self, sha256: str) -> int | None:
        """The size of the blob in bytes without reading it, or ``None`` if absent."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the blob if it is there."""

    @abc.abstractmethod
    def blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, in no particular order."""


class FilesystemBlobStore(BlobStore):
    """Blobs as files ``<root>/<aa>/<sha256>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        return self.root / _checked(sha256)[:2] / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if path.exists():
            os.utime(path)
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

    def size(self, sha256: str) -> int | None:
        try:
            return self._path(sha256).stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def blobs(self) -> Iterator[BlobInfo]:
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for path in folder.iterdir():
                if not _SHA256.match(path.name):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                stored = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
                yield BlobInfo(path.name, stat.st_size, stored)


class S3BlobStore(BlobStore):
    """Blobs as objects ``<prefix><aa>/<sha256>`` in a bucket of an S3-compatible store."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> S3BlobStore:
        """A store for ``s3://bucket/prefix``; credentials as boto3 finds them."""
        import boto3

        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url}")
        prefix = parts.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        client = boto3.client("s3", endpoint_url=endpoint_url)
        return cls(client, parts.netloc, prefix)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}{_checked(sha256)[:2]}/{sha256}"

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(sha256),
            Body=data,
            ContentType="application/octet-stream",
        )
        return sha256

    def get(self, sha256: str) -> bytes | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))
        except ValueError:
            return None
        except Exception as exc:
            if self._missing(exc):
                return None
            raise
        body: bytes = reply["Body"].read()
        return body

    def size(self, sha256: str) -> int | None:
        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ValueError:
            return None
        except Exception as exc:
            if self._missing(exc):
                return None
            raise
        return int(reply["ContentLength"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def blobs(self) -> Iterator[BlobInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"]).rsplit("/", 1)[-1]
                if _SHA256.match(name):
                    yield BlobInfo(name, int(item["Size"]), item["LastModified"])


def blob_store_from(blob_dir: Path, blob_url: str | None, endpoint_url: str | None) -> BlobStore:
    """The S3-compatible store when ``blob_url`` is set, else files under ``blob_dir``."""
    if blob_url:
        return S3BlobStore.from_url(blob_url, endpoint_url=endpoint_url)
    return FilesystemBlobStore(blob_dir)
