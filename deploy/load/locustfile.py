"""Load test of the HTTP API with locust: each simulated integration posts cases and polls
their status until they settle.

    omvant api-keys create load-a --clinic SE2321000016-VC01 --rate 1000 --json
    OMVANT_API_TOKEN=<token> locust -f deploy/load/locustfile.py --host http://127.0.0.1:8000 \
        --headless --users 20 --spawn-rate 5 --run-time 60s

Settings (environment): ``OMVANT_API_TOKEN`` (required), ``OMVANT_LOAD_CLINIC`` and
``OMVANT_LOAD_SENDER`` (HSA-ids), ``OMVANT_LOAD_TEMPLATE`` and ``OMVANT_LOAD_FRAGMENTS``
(comma-separated), ``OMVANT_LOAD_BATCH`` (cases per POST, 1 by default), ``OMVANT_LOAD_SEED``.
Residents are the official test numbers (``workers/adapters/data/testpersonnummer``).
Locust reports ``POST /v1/cases`` and ``GET /v1/cases/{id}`` separately, and the custom
``settled`` entry: the time from the POST until the case read notified, rejected or failed.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import deque

from locust import HttpUser, between, events, task

from workers.adapters.population import draw_residents

TOKEN = os.environ.get("OMVANT_API_TOKEN", "")
CLINIC = os.environ.get("OMVANT_LOAD_CLINIC", "SE2321000016-VC01")
SENDER = os.environ.get("OMVANT_LOAD_SENDER", "SE2321000016-S101")
TEMPLATE = os.environ.get("OMVANT_LOAD_TEMPLATE", "meddelande-till-invanare")
FRAGMENTS = [f for f in os.environ.get("OMVANT_LOAD_FRAGMENTS", "halsning").split(",") if f]
PER_POST = max(1, min(1000, int(os.environ.get("OMVANT_LOAD_BATCH", "1"))))
SEED = int(os.environ.get("OMVANT_LOAD_SEED", "1177"))
SETTLED = {"notified", "read", "rejected", "failed"}
RESIDENTS = draw_residents(2000, seed=SEED)


@events.test_start.add_listener
def _need_a_token(environment: object, **_kwargs: object) -> None:
    if not TOKEN:
        raise SystemExit("set OMVANT_API_TOKEN to a token from `omvant api-keys create`")


class Integration(HttpUser):
    """An integration sending cases and following them."""

    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {TOKEN}"
        self.rng = random.Random()
        self.following: deque[tuple[str, float]] = deque(maxlen=500)

    @task(1)
    def send(self) -> None:
        run = uuid.uuid4().hex
        records = [
            {
                "clinic_hsa_id": CLINIC,
                "sender_hsa_id": SENDER,
                "template_id": TEMPLATE,
                "fragments": FRAGMENTS,
                "personnummer": self.rng.choice(RESIDENTS),
                "idempotency_key": f"locust:{run}:{n}",
            }
            for n in range(PER_POST)
        ]
        body = records[0] if PER_POST == 1 else records
        with self.client.post(
            "/v1/cases",
            json=body,
            headers={"Idempotency-Key": f"locust:{run}"},
            name="POST /v1/cases",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            now = time.monotonic()
            self.following.extend((case_id, now) for case_id in response.json()["case_ids"])

    @task(3)
    def follow(self) -> None:
        if not self.following:
            return
        case_id, posted = self.following.popleft()
        with self.client.get(
            f"/v1/cases/{case_id}", name="GET /v1/cases/{id}", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            if response.json()["state"] in SETTLED:
                events.request.fire(
                    request_type="CASE",
                    name="settled",
                    response_time=(time.monotonic() - posted) * 1000,
                    response_length=0,
                    exception=None,
                    context={},
                )
            else:
                self.following.append((case_id, posted))
