"""``omvant worker --nice``: the bulk lanes' worker processes run at a lower CPU priority, so
an urgent lanes' worker on the same machine gets a core first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producers.bench_cpu import all_stats, tree, tree_niceness
from tests.e2e.harness import WorkerProcess, wait_until, worker_env_in

pytestmark = pytest.mark.e2e


def test_a_worker_asked_to_be_nicer_runs_every_worker_process_that_much_nicer(
    redis_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    env = worker_env_in(tmp_path, redis_url, postgres_url, queue_prefix)
    worker = WorkerProcess(
        env, ["--lanes", "others", "--nice", "5"], tmp_path / "worker.log", processes=2, threads=1
    )
    try:
        # dramatiq's main process and the two worker processes it forked
        assert wait_until(lambda: len(tree(worker.process.pid, all_stats())) >= 3, timeout=60)
        assert tree_niceness(worker.process.pid) == [os.nice(0) + 5]
    finally:
        worker.kill()
