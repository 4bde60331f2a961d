"""Load replay through the HTTP API: a recorded burst (``omvant loadtest record``) sent at its
own pace (or a chosen rate) as ``POST /v1/cases`` requests to a running ``omvant serve``, then
followed with ``GET /v1/cases/{id}`` until every case settles.

Unlike ``producers.loadtest.replay`` it starts nothing: the API, its workers and the webhook
sender run wherever the test environment runs them. Each tick's sends go in one request (up to
1,000 records) from a pool of client threads, so a slow answer does not hold the clock back.
Idempotency keys are rewritten per run (new cases every run), batch ids dropped (a batch is the
key's own, made over ``POST /v1/batches``), and ``clinic`` may put every case on the key's clinic.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts.send_case import SendCaseV2
from producers.bench import epoch_seconds, percentile
from producers.loadtest import Send, ticks

Say = Callable[[str], None]
SETTLED = frozenset({"notified", "read", "rejected", "failed"})
MAX_PER_REQUEST = 1000


@dataclass
class _Posted:
    """What the sending side saw."""

    sent_at: dict[str, float] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    refused: int = 0


def _retagged(send: Send, run: str, clinic: str | None) -> SendCaseV2:
    update: dict[str, Any] = {
        "case_id": None,
        "batch_id": None,
        "idempotency_key": f"{run}:{send.case.idempotency_key}"[:200],
    }
    if clinic:
        update["clinic_hsa_id"] = clinic
    return send.case.model_copy(update=update)


def _post(client: httpx.Client, requests: list[SendCaseV2], run: str, seen: _Posted) -> None:
    body = [r.model_dump(mode="json") for r in requests]
    key = f"{run}:{requests[0].idempotency_key}"[:200]
    for _attempt in range(5):
        started = time.monotonic()
        try:
            answer = client.post("/v1/cases", json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError:
            seen.statuses[0] += 1
            time.sleep(0.5)
            continue
        seen.latencies_ms.append((time.monotonic() - started) * 1000)
        seen.statuses[answer.status_code] += 1
        if answer.status_code == 429:
            time.sleep(float(answer.headers.get("Retry-After", "1")))
            continue
        if answer.status_code in (200, 202):
            now = time.time()
            for case_id in answer.json()["case_ids"]:
                seen.sent_at[case_id] = now
        else:
            seen.refused += len(requests)
        return
    seen.refused += len(requests)


def _follow(
    client: httpx.Client, case_ids: list[str], pool: ThreadPoolExecutor, timeout: float
) -> dict[str, dict[str, Any]]:
    final: dict[str, dict[str, Any]] = {}
    waiting = list(case_ids)
    deadline = time.monotonic() + timeout

    def look(case_id: str) -> tuple[str, dict[str, Any] | None]:
        try:
            answer = client.get(f"/v1/cases/{case_id}")
        except httpx.HTTPError:
            return case_id, None
        return case_id, answer.json() if answer.status_code == 200 else None

    while waiting and time.monotonic() < deadline:
        still: list[str] = []
        for case_id, status in pool.map(look, waiting):
            if status is not None and status["state"] in SETTLED:
                final[case_id] = status
            else:
                still.append(case_id)
        waiting = still
        if waiting:
            time.sleep(0.5)
    return final


def replay_http(
    url: str,
    token: str,
    sends: list[Send],
    *,
    speedup: float = 1.0,
    rate: float | None = None,
    clinic: str | None = None,
    concurrency: int = 8,
    timeout: float = 600.0,
    say: Say | None = None,
) -> dict[str, Any]:
    """Replay ``sends`` through the API at ``url`` with ``token``; return the figures."""
    say = say or (lambda _m: None)
    run = f"lt{uuid.uuid4().hex[:8]}"
    seen = _Posted()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with (
        httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
            limits=limits,
        ) as client,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        say(f"replaying {len(sends)} sends through {url} as run {run}")
        started = time.time()
        origin = time.monotonic()
        pending = []
        for at, group in ticks(sends, speedup, rate, tick=0.05):
            wait = origin + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            requests = [_retagged(s, run, clinic) for s in group]
            for begin in range(0, len(requests), MAX_PER_REQUEST):
                chunk = requests[begin : begin + MAX_PER_REQUEST]
                pending.append(pool.submit(_post, client, chunk, run, seen))
        for future in pending:
            future.result()
        send_seconds = time.time() - started
        say(f"sent in {send_seconds:.1f} s; following {len(seen.sent_at)} cases")
        final = _follow(client, list(seen.sent_at), pool, timeout)
    latencies = [
        (epoch_seconds(_when(s["timestamps"]["notified_at"])) - seen.sent_at[c]) * 1000
        for c, s in final.items()
        if s["timestamps"].get("notified_at")
    ]
    states = Counter(s["state"] for s in final.values())
    times = [
        epoch_seconds(_when(t))
        for s in final.values()
        for t in s["timestamps"].values()
        if t is not None
    ]
    seconds = (max(times) - started) if times else None

    def ms(values: list[float], share: float) -> float | None:
        value = percentile(values, share)
        return None if value is None else round(value, 1)

    return {
        "sends": len(sends),
        "accepted": len(seen.sent_at),
        "refused": seen.refused,
        "http_statuses": {str(k): v for k, v in sorted(seen.statuses.items())},
        "post_p50_ms": ms(seen.latencies_ms, 0.50),
        "post_p99_ms": ms(seen.latencies_ms, 0.99),
        "send_seconds": round(send_seconds, 2),
        "settled": len(final),
        "states": dict(sorted(states.items())),
        "seconds": round(seconds, 2) if seconds else None,
        "cases_per_s": round(len(final) / seconds, 1) if seconds else None,
        "latency_p50_ms": ms(latencies, 0.50),
        "latency_p95_ms": ms(latencies, 0.95),
        "latency_p99_ms": ms(latencies, 0.99),
        "run": run,
    }


def _when(value: str) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
