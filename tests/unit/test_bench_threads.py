"""The bench's threads per worker process follow the cores it may run on (two per core, 4 to
8): on a 2-core machine 8 threads in each of the seven stage processes made urgent cases wait
behind the bulk ones (``producers.bench.threads_for_cores``)."""

from __future__ import annotations

import os

import pytest

from producers.bench import BenchConfig, threads_for_cores


@pytest.mark.parametrize(("cores", "threads"), [(1, 4), (2, 4), (3, 6), (4, 8), (64, 8)])
def test_threads_follow_the_cores(cores: int, threads: int) -> None:
    assert threads_for_cores(cores) == threads


def test_the_default_reads_the_cores_this_process_may_use() -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert BenchConfig().threads == threads_for_cores(usable)
    assert BenchConfig(threads=3).threads == 3
