"""Retries racing each other with one ``Idempotency-Key``: one runs (202), the others get its
answer (200, ``Idempotent-Replayed``), over real HTTP on loopback."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from tests.ports import listening_socket
from tests.web.api_support import CLINIC_A, app_for, make_key, record


@pytest.mark.integration
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_racing_retries_run_once_and_the_rest_get_the_first_answer(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "postgres_url")
    key = make_key(url, f"racer-{database}", [CLINIC_A], rate=10_000)
    listening = listening_socket()  # bound here and handed over: no port to race for
    port = listening.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app_for(url), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    headers = {**key.headers, "Idempotency-Key": f"race-{database}"}
    body = record(f"race-{database}")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            start = threading.Barrier(8)

            def post(_: int) -> tuple[int, int, str | None]:
                start.wait()
                answer = client.post("/v1/cases", json=body, headers=headers)
                return (
                    answer.status_code,
                    answer.json()["accepted"],
                    answer.headers.get("idempotent-replayed"),
                )

            with ThreadPoolExecutor(8) as pool:
                answers = Counter(pool.map(post, range(8)))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert answers == {(202, 1, None): 1, (200, 1, "true"): 7}
