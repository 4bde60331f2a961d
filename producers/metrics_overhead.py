"""What issue 12 adds to each message on the hot path, in CPU time: the per-stage metrics
(``StageMetrics``' hooks) and the records kept for fixable rejections (``failures.reading``).

``python -m producers.metrics_overhead [--messages N] [--cases C]`` prints the CPU time per
message and per case, and the load average. Set ``PROMETHEUS_MULTIPROC_DIR`` to measure the
multi-process mode ``omvant worker --metrics-port`` uses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

import dramatiq
from dramatiq.broker import MessageProxy

from contracts.registry import envelope_for, parse
from producers.scenario import build_dispatch
from workers import failures, metrics
from workers.actors import _case_id


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(messages: int, cases: int) -> dict[str, float | bool]:
    """CPU seconds per message of the hooks around one ``cases``-case SendCase message."""
    envelope = envelope_for(build_dispatch(cases, seed=1, batch_id="bench"), correlation_id="b")
    raw = envelope.model_dump(mode="json")
    parsed = parse(raw)
    message = MessageProxy(
        dramatiq.Message(
            queue_name="recipient-validation.bulk-1",
            actor_name="validate_recipients",
            args=(raw,),
            kwargs={},
            options={},
        )
    )
    middleware = metrics.StageMetrics()
    broker = dramatiq.get_broker()
    started = _cpu()
    for _ in range(messages):
        middleware.before_process_message(broker, message)
        failures.reading(parsed, _case_id)
        middleware.after_process_message(broker, message, result=None, exception=None)
    per_message = (_cpu() - started) / messages
    return {
        "multiprocess": bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")),
        "cases_per_message": cases,
        "cpu_us_per_message": round(per_message * 1e6, 1),
        "cpu_us_per_case": round(per_message * 1e6 / cases, 3),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--cases", type=int, default=100)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(measure(args.messages, args.cases)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
