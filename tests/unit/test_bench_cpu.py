"""The bench's CPU readings from /proc: a process tree's time, listeners, the sampling meter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producers import bench_cpu

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_a_tree_counts_its_children_also_after_they_ended() -> None:
    # a parent that starts a child burning 0.3 s of CPU, waits for it, then sleeps
    script = (
        f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        before = bench_cpu.tree_seconds(parent.pid)
        assert before is not None
        deadline = time.monotonic() + 30
        stat = bench_cpu.read_stat(parent.pid)
        while stat is not None and not stat.reaped_children_ticks and time.monotonic() < deadline:
            time.sleep(0.05)
            stat = bench_cpu.read_stat(parent.pid)
        after = bench_cpu.tree_seconds(parent.pid)  # the child has ended and been reaped
        assert after is not None and after - before >= 0.25
    finally:
        parent.kill()
        parent.wait()


def test_a_gone_process_reads_as_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert bench_cpu.tree_seconds(child.pid) is None
    assert bench_cpu.read_stat(child.pid) is None


def test_the_listener_on_a_port_is_found() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert bench_cpu.listening_pid(port) == os.getpid()
        assert bench_cpu.broker_pid(f"redis://127.0.0.1:{port}/0") == os.getpid()
    assert bench_cpu.broker_pid("amqp://guest:guest@rabbit.example:5672/%2F") is None


def test_the_meter_counts_from_the_first_sample_and_new_processes_from_their_start() -> None:
    def stats(ticks: dict[int, int]) -> dict[int, bench_cpu.ProcStat]:
        return {pid: bench_cpu.ProcStat(pid, 1, t, 0) for pid, t in ticks.items()}

    tick = 1 / bench_cpu.TICKS_PER_SECOND
    meter = bench_cpu.PidMeter()
    meter.sample([10], stats({10: 500}))
    meter.sample([10, 11], stats({10: 600, 11: 50}))  # 11 began inside the window
    meter.sample([11], stats({11: 80}))  # 10 ended: counted to its last sample
    assert meter.seconds() == pytest.approx((100 + 80) * tick)
