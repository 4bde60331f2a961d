"""The pipeline's worker processes for ``omvant bench``: their layout and the profile.

In the ``stages`` layout each stage has a dramatiq worker process of its own, so the CPU time
of each stage is that process tree's (``producers/bench_cpu.py``); in the ``shared`` layout
``processes`` processes consume every queue, as ``omvant worker`` with no stage does. With
``urgent_worker`` the urgent lanes of every stage have a worker process of their
own (``URGENT_GROUP``, as ``omvant worker --lanes urgent``), so an urgent case never waits for a
thread or the interpreter lock of a process busy with bulk chunks; the other processes consume
the other lanes (``--lanes others``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producers.processes import DramatiqWorkers
from workers.queues import URGENT, all_queues, lane_queue, queue_name
from workers.routes import STAGES
from workers.settings import Settings

SHARED = "shared"
"""Layout: ``processes`` worker processes consume every queue (as ``omvant worker`` does)."""
BY_STAGE = "stages"
"""Layout: each stage has one worker process of its own, so its CPU time can be read."""
LAYOUTS = (BY_STAGE, SHARED)
URGENT_GROUP = "urgent-lanes"
"""The group of worker processes consuming every stage's urgent lane (``urgent_worker``)."""


def stage_queues(stage: str, prefix: str, *, only: str | None = None) -> list[str]:
    """Every lane of ``stage``'s queue (or only the lane ``only``, if it has it), with the
    prefix."""
    route = STAGES[stage]
    return [
        queue_name(lane_queue(route.queue, lane), prefix)
        for lane in route.lanes()
        if only is None or lane == only
    ]


def profile_dir(log_dir: Path, stage: str) -> Path:
    """Where the profiled worker processes write their stats (one file per process)."""
    return log_dir / f"profile-{stage}.d"


def start_workers(
    settings: Settings,
    env: dict[str, str],
    *,
    layout: str,
    processes: int,
    threads: int,
    log_dir: Path,
    profile: str | None,
    profile_clock: str = "cpu",
    urgent_worker: bool = False,
    bulk_nice: int = 0,
    urgent_processes: int = 1,
    urgent_nice: int = 0,
    urgent_threads: int | None = None,
    trace_dir: Path | None = None,
) -> dict[str, DramatiqWorkers]:
    """The pipeline's workers in ``layout``: name (a stage, ``all`` or ``URGENT_GROUP``) ->
    workers; with ``profile`` the processes consuming that stage run
    ``producers.bench_profile``. With ``urgent_worker``, every process but the urgent lanes'
    runs ``bulk_nice`` steps nicer (as ``omvant worker --lanes others --nice N``) and the urgent
    lanes' ``urgent_nice`` (below 0: a CPU reservation, which needs the privilege to). With
    ``trace_dir`` the processes consuming urgent lanes time each message there
    (``workers/hop_trace.py``)."""
    prefix = settings.queue_prefix
    if layout == BY_STAGE:
        groups = {stage: stage_queues(stage, prefix) for stage in STAGES}
    else:
        groups = {"all": [queue_name(q, prefix) for q in all_queues()]}
    if urgent_worker:
        urgent = [q for s in STAGES for q in stage_queues(s, prefix, only=URGENT)]
        groups = {name: [q for q in queues if q not in urgent] for name, queues in groups.items()}
        groups[URGENT_GROUP] = urgent
    profiled = set(stage_queues(profile, prefix)) if profile else set()
    folder = profile_dir(log_dir, profile or "none")
    if profiled:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.pstats"):
            stale.unlink()
    started: dict[str, DramatiqWorkers] = {}
    try:
        for name, queues in groups.items():
            mine = sorted(profiled.intersection(queues))
            group_env = env
            if trace_dir is not None and (name == URGENT_GROUP or not urgent_worker):
                group_env = dict(env, OMVANT_HOP_TRACE_DIR=str(trace_dir))
            if mine:
                group_env = dict(
                    group_env,
                    OMVANT_BENCH_PROFILE_QUEUES=",".join(mine),
                    OMVANT_BENCH_PROFILE_DIR=str(folder),
                    OMVANT_BENCH_PROFILE_CLOCK=profile_clock,
                )
            count = 1 if layout == BY_STAGE else processes
            started[name] = DramatiqWorkers(
                "producers.bench_profile" if mine else "workers.app",
                queues,
                group_env,
                processes=urgent_processes if name == URGENT_GROUP else count,
                # as omvant worker --lanes urgent: ``threads`` per urgent lane (threads_for)
                threads=(urgent_threads or threads * len(queues))
                if name == URGENT_GROUP
                else threads,
                log_path=log_dir / f"pipeline-workers-{name}.log",
                nice=(urgent_nice if name == URGENT_GROUP else bulk_nice) if urgent_worker else 0,
            )
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(workers: dict[str, DramatiqWorkers]) -> None:
    """Tell every group to stop at once, then wait for each."""
    for group in workers.values():
        group.terminate()
    for group in workers.values():
        group.stop()


def merge_profile(log_dir: Path, stage: str) -> dict[str, Any]:
    """(f): the profiled processes' stats merged into one ``.pstats`` file and a text summary."""
    import io
    import pstats

    files = sorted(profile_dir(log_dir, stage).glob("*.pstats"))
    target = log_dir / f"profile-{stage}.pstats"
    summary = target.with_suffix(".txt")
    if not files:
        return {"stage": stage, "pstats": None, "summary": None, "processes": 0}
    stats = pstats.Stats(str(files[0]))
    for extra in files[1:]:
        stats.add(str(extra))
    stats.dump_stats(target)
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    summary.write_text(text.getvalue())
    return {
        "stage": stage,
        "pstats": str(target),
        "summary": str(summary),
        "processes": len(files),
    }
