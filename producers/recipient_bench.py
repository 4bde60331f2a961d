"""Benchmarks of recipient validation: parse throughput and the pre-check of a large list.

Inputs are Skatteverket's test numbers written the ways staff write them, with a share of
samordningsnummer and of numbers with a broken check digit, so every path of the parser and
of the check is exercised.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from producers.recipient_check import run_check
from producers.scenario import broken_check_digit, written_as
from workers.adapters.account_directory import AccountDirectory, SimulatedAccountDirectory
from workers.adapters.population import draw_residents, test_samordningsnummer
from workers.identity import parse_identity


def dispatch_list(count: int, *, seed: int) -> list[str]:
    """``count`` numbers as a dispatch list holds them: mixed forms, 2 % samordningsnummer,
    1 % with a broken check digit."""
    rng = random.Random(seed)
    residents = draw_residents(count, seed=seed)
    coordination = test_samordningsnummer()
    year = dt.date.today().year
    numbers: list[str] = []
    for index, resident in enumerate(residents):
        roll = rng.random()
        number = resident
        if roll < 0.02:
            number = coordination[index % len(coordination)]
        elif roll < 0.03:
            number = broken_check_digit(resident)
        numbers.append(written_as(number, index % 3, year))
    return numbers


def bench_parse(count: int, *, seed: int) -> dict[str, Any]:
    """Parse ``count`` numbers in this thread (one core) and report numbers per second."""
    numbers = dispatch_list(count, seed=seed)
    started = time.perf_counter()
    valid = sum(1 for number in numbers if parse_identity(number).valid)
    seconds = time.perf_counter() - started
    return {
        "numbers": count,
        "valid": valid,
        "seconds": round(seconds, 3),
        "numbers_per_second": round(count / seconds),
    }


def bench_check_file(
    lines: int, directory: AccountDirectory, *, seed: int, workdir: Path | None = None
) -> dict[str, Any]:
    """Write a ``lines``-line dispatch list, pre-check it as ``omvant recipients check --json
    --file`` does (output to the null device) and report the time and the counts."""
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        path = Path(folder) / "dispatch.txt"
        path.write_text("\n".join(dispatch_list(lines, seed=seed)) + "\n", encoding="utf-8")
        started = time.perf_counter()
        with path.open(encoding="utf-8") as source, open(os.devnull, "w") as sink:  # noqa: PTH123
            summary = run_check(source, directory, sink, as_json=True)
        seconds = time.perf_counter() - started
    return {
        "lines": lines,
        "seconds": round(seconds, 3),
        "lines_per_second": round(lines / seconds),
        **summary.as_json()["summary"],
    }


def bench_check_over_http(lines: int, *, seed: int) -> dict[str, Any]:
    """The same pre-check against the simulator behind HTTP on loopback (this process serves
    it too), through the HTTP adapter and an in-memory cache: shows the batching."""
    from workers.adapters.directory_cache import CachedAccountDirectory, InMemoryAccountCache
    from workers.adapters.directory_server import DirectoryServer
    from workers.adapters.http_account_directory import HttpAccountDirectory
    from workers.rate_limit import in_process_limiter

    with DirectoryServer(SimulatedAccountDirectory(seed)) as server:
        http = HttpAccountDirectory(
            server.url,
            batch_size=1000,
            limiter=in_process_limiter("bench", per_second=1000),
        )
        directory = CachedAccountDirectory(http, InMemoryAccountCache(ttl=300))
        try:
            figures = bench_check_file(lines, directory, seed=seed)
        finally:
            directory.close()
        figures["http_requests"] = server.requests
    return figures
