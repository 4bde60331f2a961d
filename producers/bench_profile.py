"""The pipeline's worker module with a profiler: what ``omvant bench --profile STAGE`` runs.

``python -m dramatiq producers.bench_profile --queues ...`` is ``workers.app`` plus one
middleware that profiles (cProfile) the messages of the queues named in
``OMVANT_BENCH_PROFILE_QUEUES`` (comma-separated) and writes, when the worker process stops,
``<OMVANT_BENCH_PROFILE_DIR>/<pid>.pstats``; the bench merges the files of all processes.
On Python 3.11 each worker thread has its own profiler, on for the time of each message, timed
by the thread's CPU clock (``OMVANT_BENCH_PROFILE_CLOCK=cpu``, the default: what costs CPU) or
by the wall clock (``wall``: where the time goes, waits on PostgreSQL included). From 3.12 on
cProfile is one tool for all threads, so one profiler runs from boot to shutdown (idle polling
included) on the wall clock.
"""

from __future__ import annotations

import cProfile
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq

from workers.after_message import AfterMessage
from workers.app import actors, broker

PER_THREAD = sys.version_info < (3, 12)


class ProfileMessages(AfterMessage):
    """Profiles the messages of ``queues`` in this process; dumps the stats at shutdown."""

    def __init__(self, folder: Path, queues: frozenset[str], *, cpu_clock: bool = True) -> None:
        self.folder = folder
        self.queues = queues
        self.timer = time.thread_time if cpu_clock and PER_THREAD else time.perf_counter
        self.local = threading.local()
        self.profilers: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def after_worker_boot(self, _broker: dramatiq.Broker, _worker: Any) -> None:
        if not PER_THREAD:
            profiler = cProfile.Profile()
            self.profilers.append(profiler)
            profiler.enable()

    def before_process_message(self, _broker: dramatiq.Broker, message: Any) -> None:
        if not PER_THREAD or message.queue_name not in self.queues:
            return
        profiler = getattr(self.local, "profiler", None)
        if profiler is None:
            profiler = self.local.profiler = cProfile.Profile(self.timer)
            with self.lock:
                self.profilers.append(profiler)
        profiler.enable()

    def processed(
        self, _broker: dramatiq.Broker, message: Any, exception: BaseException | None
    ) -> None:
        self._pause(message)

    def after_skip_message(self, _broker: dramatiq.Broker, message: Any) -> None:
        self._pause(message)

    def _pause(self, message: Any) -> None:
        profiler = getattr(self.local, "profiler", None)
        if PER_THREAD and profiler is not None and message.queue_name in self.queues:
            profiler.disable()

    def after_worker_shutdown(self, _broker: dramatiq.Broker, _worker: Any) -> None:
        with self.lock:
            profilers = list(self.profilers)
        if not profilers:
            return
        import pstats

        for profiler in profilers:
            profiler.disable()
        stats = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            stats.add(profiler)
        self.folder.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(self.folder / f"{os.getpid()}.pstats")


profiled_queues = frozenset(
    q for q in os.environ.get("OMVANT_BENCH_PROFILE_QUEUES", "").split(",") if q
)
profile_dir = Path(os.environ.get("OMVANT_BENCH_PROFILE_DIR", "bench-profile"))
cpu_clock = os.environ.get("OMVANT_BENCH_PROFILE_CLOCK", "cpu") != "wall"
broker.add_middleware(ProfileMessages(profile_dir, profiled_queues, cpu_clock=cpu_clock))

__all__ = ["actors", "broker"]
