"""The composition benchmark: messages/s of the composition stage's decision on one core.

A typical case: a national template with three fragments plussed in (one with a
personalisation field), a line of free text, signature and date, through the same ``handle``
the worker runs, in chunks of the pipeline's size, with the template library the workers use
(the system of record on a temporary SQLite file, behind its cache).
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.recipient_validated import RecipientValidatedV1
from workers.adapters.population import draw_residents
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue
from workers.composition import compose, handle
from workers.stage import Advance
from workers.store.engine import make_engine, upgrade
from workers.templates.database import DatabaseTemplateLibrary

TEMPLATE = "meddelande-till-invanare"
FRAGMENTS = ("halsning-namn", "tid-bokad", "avboka", "aterkom")
CLINICS = ("SE2321000016-VC01", "SE2321000016-VC02", "SE2321000016-BMM3")
SENDERS = ("SE2321000016-S101", "SE2321000016-S102", "SE2321000016-S203", "SE2321000016-S304")
CHUNK = 100


def typical_cases(count: int) -> list[RecipientValidatedV1]:
    """``count`` validated cases of the typical template."""
    residents = draw_residents(min(count, 1000), seed=1177)
    return [
        RecipientValidatedV1(
            case_id=f"bench-{index}",
            clinic_hsa_id=CLINICS[index % len(CLINICS)],
            sender_hsa_id=SENDERS[index % len(SENDERS)],
            template_id=TEMPLATE,
            fragments=list(FRAGMENTS),
            free_text="Ta med legitimation och en lista över dina läkemedel.",
            fields={"fornamn": ("Anna", "Erik", "Leila")[index % 3]},
            personnummer=residents[index % len(residents)],
            channels=["sms", "email"],
        )
        for index in range(count)
    ]


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_bench(count: int, rounds: int = 3) -> dict[str, Any]:
    """Compose ``count`` typical messages ``rounds`` times; return the figures.

    Rates are given per wall-clock second and per CPU second of this (single-threaded)
    process: on a shared, loaded machine the CPU-second figure is the one-core throughput.
    """
    items = typical_cases(count)
    catalogue = SimulatedStaffCatalogue(1177)
    today = dt.date.today()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        library = DatabaseTemplateLibrary(engine)
        handle(items[:CHUNK], library, catalogue, today=today, max_body_chars=10_000)
        template = library.get(TEMPLATE)
        signature = "Anna Andersson, Sjuksköterska\nVårdcentral Centrum"

        def stage() -> None:
            for start in range(0, count, CHUNK):
                decisions = handle(
                    items[start : start + CHUNK],
                    library,
                    catalogue,
                    today=today,
                    max_body_chars=10_000,
                )
                assert all(isinstance(d, Advance) for d in decisions)

        def compose_only() -> None:
            for item in items:
                compose(
                    item,
                    template,
                    catalogue,
                    today=today,
                    max_body_chars=10_000,
                    channels=item.channels,
                    signature=signature,
                )

        stage_runs = [_timed(stage) for _ in range(rounds)]
        compose_runs = [_timed(compose_only) for _ in range(rounds)]
        engine.dispose()
    wall = sorted(w for w, _ in stage_runs)
    cpu = sorted(c for _, c in stage_runs)
    return {
        "messages": count,
        "rounds": rounds,
        "template": TEMPLATE,
        "fragments": len(FRAGMENTS),
        "messages_per_s": int(count / statistics.median(wall)),
        "messages_per_s_best": int(count / wall[0]),
        "messages_per_cpu_s": int(count / max(statistics.median(cpu), 1e-9)),
        "compose_only_per_s": int(count / statistics.median(w for w, _ in compose_runs)),
        "target_per_s": 20_000,
    }
