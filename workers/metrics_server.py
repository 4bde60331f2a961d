"""``/metrics`` and ``/healthz`` of one ``omvant worker``, on ``OMVANT_METRICS_PORT``.

dramatiq runs ``serve`` in a process forked from its main process (``omvant worker`` names it
with ``--fork-function``), so there is one server per ``omvant worker`` however many worker
processes it has; it adds up
their counters from ``PROMETHEUS_MULTIPROC_DIR``. ``/healthz`` answers 200 while a worker
process has said it lives within ``STALE_SECONDS``, else 503.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from workers.log import get_logger

log = get_logger(__name__)

PORT_VARIABLE = "OMVANT_METRICS_PORT"
STALE_SECONDS = 30.0

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def registry() -> CollectorRegistry:
    """The worker processes' metrics added up (multi-process), or this process's own."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined


def last_heartbeat(source: CollectorRegistry) -> float | None:
    """The newest heartbeat of any worker process, as a UNIX time."""
    for family in source.collect():
        if family.name == "omvant_worker_heartbeat_timestamp_seconds":
            values = [s.value for s in family.samples]
            return max(values) if values else None
    return None


def health(source: CollectorRegistry, now: float | None = None) -> tuple[bool, dict[str, Any]]:
    """Whether the worker lives, and what ``/healthz`` says about it."""
    beat = last_heartbeat(source)
    age = None if beat is None else (now or time.time()) - beat
    ok = age is not None and age <= STALE_SECONDS
    return ok, {"status": "ok" if ok else "stale", "heartbeat_age_seconds": age}


def application(
    source: CollectorRegistry,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application: ``/metrics`` (Prometheus text), ``/healthz`` (JSON)."""
    metrics = make_wsgi_app(source)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok, body = health(source)
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json")],
            )
            return [json.dumps(body).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics or /healthz\n"]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line."""


def serve() -> int:
    """Serve until killed (dramatiq stops its forks with the worker). Returns an exit code."""
    port = int(os.environ.get(PORT_VARIABLE, "0") or 0)
    host = os.environ.get("OMVANT_METRICS_HOST", "0.0.0.0")  # noqa: S104 - scraped from outside
    try:
        server = make_server(
            host, port, application(registry()), ThreadingWSGIServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        log.error("metrics server could not start", port=port, error=str(exc))
        return 1
    log.info("serving /metrics and /healthz", port=server.server_port)
    server.serve_forever()
    return 0
