"""A client generated from the committed ``docs/openapi.json`` (openapi-python-client, into a
temporary folder) drives the API served by uvicorn on loopback, on real PostgreSQL.

It fails when the API and the document disagree: an answer with a status the document does not
list raises (``raise_on_unexpected_status``), a field the document does not name lands in a
generated model's ``additional_properties``, a missing one fails its ``from_dict``, and every
body is checked against the document's schema of its status.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import uvicorn

from tests.ports import listening_socket
from tests.web.api_support import CLINIC_A, CLINIC_B, SENDER, app_for, make_key, record

pytestmark = pytest.mark.integration
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
TEMPLATE = "meddelande-till-invanare"


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("generated")
    config = folder / "config.yaml"
    config.write_text("post_hooks: []\npackage_name_override: omvant_client\n")
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator, "openapi-python-client (the dev extra) is not installed"
    made = subprocess.run(
        [generator, "generate", "--path", str(DOCUMENT), "--config", str(config),
         "--meta", "none", "--output-path", str(folder / "omvant_client")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Warning" not in made.stdout + made.stderr, made.stdout + made.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("omvant_client")
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == "omvant_client"]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def served(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = app_for(postgres_url, blob_dir=tmp_path_factory.mktemp("blobs"))
    listening = listening_socket()  # bound here and handed over: no port to race for
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _no_unknown_fields(model: Any, where: str = "body") -> None:
    """No generated model holds a field the document does not name."""
    extra = getattr(model, "additional_properties", None)
    if extra is not None and type(model).__name__ not in _OPEN_MAPS:
        assert extra == {}, f"{where}: fields the document does not name: {sorted(extra)}"
    for name, value in vars(model).items() if hasattr(model, "__dict__") else []:
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "to_dict") and hasattr(item, "additional_properties"):
                _no_unknown_fields(item, f"{where}.{name}")


_OPEN_MAPS = {
    # objects the document declares as maps (additionalProperties of a type)
    "BatchProgressStates",
    "BatchProgressReached",
    "BatchProgressRejected",
    "RecipientsCheckResultReasons",
    "AttachmentStoredRef",
}


def _as_documented(response: Any, path: str, method: str) -> Any:
    """The parsed answer, after checking its status and body against the document."""
    spec = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    answers = spec["paths"][path][method]["responses"]
    status = str(int(response.status_code))
    assert status in answers, f"{method.upper()} {path} answered {status}, not documented"
    content = answers[status].get("content", {})
    if content:
        media = response.headers["content-type"].split(";")[0]
        assert media in content, f"{media} is not a documented content type of {status}"
        schema = {**content[media]["schema"], "components": spec["components"]}
        jsonschema.Draft202012Validator(schema).validate(json.loads(response.content))
    assert response.parsed is not None
    _no_unknown_fields(response.parsed)
    return response.parsed


def test_a_generated_client_drives_the_api_as_the_document_says(
    client_package: Any, served: str, postgres_url: str
) -> None:
    from omvant_client.api.batches import (  # type: ignore[import-not-found]
        cancel_v1_batches_batch_id_cancel_post as cancel_batch,
    )
    from omvant_client.api.batches import get_batch_v1_batches_batch_id_get as get_batch
    from omvant_client.api.batches import pause_v1_batches_batch_id_pause_post as pause_batch
    from omvant_client.api.batches import post_batch_v1_batches_post as post_batch
    from omvant_client.api.cases import get_case_v1_cases_case_id_get as get_case
    from omvant_client.api.cases import post_cases_v1_cases_post as post_cases
    from omvant_client.api.recipients import (
        check_v1_recipients_check_post as check_recipients,
    )
    from omvant_client.models import BatchRequest, RecipientsCheckRequest, SendCaseV2

    key_a = make_key(postgres_url, "generated-a", [CLINIC_A], rate=10_000)
    key_b = make_key(postgres_url, "generated-b", [CLINIC_B], rate=10_000)
    a = client_package.AuthenticatedClient(
        base_url=served, token=key_a.token, raise_on_unexpected_status=True
    )
    b = client_package.AuthenticatedClient(
        base_url=served, token=key_b.token, raise_on_unexpected_status=True
    )
    nobody = client_package.AuthenticatedClient(
        base_url=served, token="no-such.key", raise_on_unexpected_status=True
    )
    body = [SendCaseV2.from_dict(record(f"gen-{i}")) for i in range(2)]

    first = post_cases.sync_detailed(client=a, body=body, idempotency_key="gen-req-1")
    sent = _as_documented(first, "/v1/cases", "post")
    assert first.status_code == 202 and sent.accepted == 2
    again = post_cases.sync_detailed(client=a, body=body, idempotency_key="gen-req-1")
    assert again.status_code == 200 and _as_documented(again, "/v1/cases", "post") == sent
    other = post_cases.sync_detailed(client=a, body=body[:1], idempotency_key="gen-req-1")
    assert _as_documented(other, "/v1/cases", "post").reason == "idempotency-key-reused"

    path = "/v1/cases/{case_id}"
    case = _as_documented(get_case.sync_detailed(sent.case_ids[0], client=a), path, "get")
    assert case.id == sent.case_ids[0] and case.clinic_hsa_id == CLINIC_A
    hidden = _as_documented(get_case.sync_detailed(sent.case_ids[0], client=b), path, "get")
    assert hidden.status == 404 and hidden.reason == "not-found"
    assert _as_documented(get_case.sync_detailed("x", client=nobody), path, "get").status == 401
    wrong = post_cases.sync_detailed(client=b, body=body[0])
    assert _as_documented(wrong, "/v1/cases", "post").reason == "clinic-not-allowed"

    batch = BatchRequest.from_dict(
        {
            "clinic_hsa_id": CLINIC_A,
            "sender_hsa_id": SENDER,
            "template_id": TEMPLATE,
            "recipients": [{"personnummer": "19121212-1212", "fields": {"tid": "9.00"}}],
        }
    )
    started = _as_documented(post_batch.sync_detailed(client=a, body=batch), "/v1/batches", "post")
    assert started.total == 1 and started.clinic == CLINIC_A
    one = "/v1/batches/{batch_id}"
    shown = _as_documented(get_batch.sync_detailed(started.id, client=a), one, "get")
    assert shown.id == started.id
    assert _as_documented(get_batch.sync_detailed(started.id, client=b), one, "get").status == 404
    paused = pause_batch.sync_detailed(started.id, client=a)
    assert _as_documented(paused, one + "/pause", "post").status == "paused"
    cancelled = cancel_batch.sync_detailed(started.id, client=a)
    assert _as_documented(cancelled, one + "/cancel", "post").status == "cancelled"
    refused = pause_batch.sync_detailed(started.id, client=a)
    assert _as_documented(refused, one + "/pause", "post").reason == "batch-transition-refused"

    check = RecipientsCheckRequest.from_dict({"personnummer": ["19121212-1212", "nope"]})
    checked = check_recipients.sync_detailed(client=a, body=check)
    verdicts = _as_documented(checked, "/v1/recipients/check", "post")
    assert verdicts.checked == 2 and verdicts.results[1].valid is False
