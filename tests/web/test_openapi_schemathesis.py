"""schemathesis against ``/openapi.json`` on real PostgreSQL: whatever it sends, no 5xx, and
every answer (status, content type, body) is one the document describes.

Bounded (a few examples per operation) so ``make test`` stays quick; raise
``OMVANT_SCHEMATHESIS_EXAMPLES`` for a long run by hand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from tests.web.api_support import CLINIC_A, Key, app_for, make_key

EXAMPLES = int(os.environ.get("OMVANT_SCHEMATHESIS_EXAMPLES", "8"))
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, Key]]:
    key = make_key(postgres_url, f"fuzz-{os.getpid()}", [CLINIC_A], rate=100_000)
    app = app_for(postgres_url, blob_dir=tmp_path_factory.mktemp("blobs"))
    with TestClient(app):  # runs the application's start-up
        yield app, key


def test_the_api_answers_as_its_openapi_document_says(served: tuple[FastAPI, Key]) -> None:
    app, key = served
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_as_documented(case: schemathesis.Case) -> None:
            # every check, positive_data_acceptance included: the document states the
            # contracts' text rules (contracts/text.py) as patterns, so what it calls valid
            # the API accepts
            response = case.call_and_validate(headers=key.headers)
            assert response.status_code < 500, (case.method, case.path, response.text)

        answers_as_documented()
