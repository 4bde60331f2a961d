"""A dispatch list on disk, as a region's CSV export would be: one resident a row."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path


def write_residents_csv(
    path: Path, numbers: Iterable[str], *, extra_rows: Sequence[tuple[str, str]] = ()
) -> Path:
    """Write ``personnummer,namn`` with each number (named "Test"), then ``extra_rows``."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["personnummer", "namn"])
        for number in numbers:
            writer.writerow([number, "Test"])
        writer.writerows(extra_rows)
    return path
