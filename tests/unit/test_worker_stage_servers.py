"""``omvant worker STAGE`` asks the outside servers that stage calls, and only those."""

from __future__ import annotations

import pytest

from producers.cli.worker_command import probe_server, stage_checks
from tests.ports import refusing_port
from workers import server_probe as servers
from workers.routes import STAGES
from workers.server_checks import ServerUnreachable
from workers.settings import Settings


def names(stages: list[str]) -> list[str]:
    return [check.name for check in stage_checks(Settings(), stages)]


def test_the_sending_stage_asks_the_notifiers_and_redis() -> None:
    assert names(["notification-sending"]) == [
        servers.SMS_GATEWAY,
        servers.EMAIL_API,
        servers.SMTP,
        servers.REDIS,
    ]


def test_composition_asks_no_outside_server() -> None:
    assert names(["composition"]) == []


def test_each_server_is_asked_once_whatever_the_stages_sharing_it() -> None:
    everything = names(list(STAGES))
    assert sorted(everything) == sorted(set(everything))
    assert {servers.CLAMD, servers.DIRECTORY, servers.SMTP} <= set(everything)


def test_a_server_the_settings_leave_simulated_passes_at_once() -> None:
    probe_server(Settings(), servers.SMTP)  # no OMVANT_SMTP_URL: the simulator, nothing to ask


def test_a_configured_server_that_does_not_answer_is_one_masked_line() -> None:
    settings = Settings(smtp_url="smtp://mail:secret@127.0.0.1:1", connect_timeout=1)
    with pytest.raises(ServerUnreachable) as failed:
        probe_server(settings, servers.SMTP)
    text = str(failed.value)
    assert text.startswith("the SMTP server at smtp://mail:***@127.0.0.1:1")
    assert "secret" not in text and "OMVANT_SMTP_URL" in text and "\n" not in text


def test_inbox_delivery_asks_the_inbox_api_and_the_checking_stages_the_blob_store() -> None:
    assert servers.INBOX in names(["notification-dispatch"])
    assert servers.BLOB_STORE in names(["attachment-check"])
    assert servers.BLOB_STORE in names(["recipient-validation"])
    assert servers.BLOB_STORE not in names(["notification-sending", "composition"])


def test_an_inbox_api_that_does_not_answer_is_one_masked_line() -> None:
    with refusing_port() as port:
        settings = Settings(inbox_url=f"http://inbox:secret@127.0.0.1:{port}/", connect_timeout=1)
        with pytest.raises(ServerUnreachable) as failed:
            probe_server(settings, servers.INBOX)
    text = str(failed.value)
    assert text.startswith(f"the 1177 inbox API at http://inbox:***@127.0.0.1:{port}/"), text
    assert "secret" not in text and "OMVANT_INBOX_URL" in text and "\n" not in text


def test_an_s3_blob_store_that_does_not_answer_is_one_masked_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "omvant-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "omvant-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    with refusing_port() as port:
        endpoint = f"http://s3:secret@127.0.0.1:{port}"
        settings = Settings(
            blob_url="s3://omvant-blobs/test", s3_endpoint_url=endpoint, connect_timeout=1
        )
        with pytest.raises(ServerUnreachable) as failed:
            probe_server(settings, servers.BLOB_STORE)
    text = str(failed.value)
    assert text.startswith(f"the blob store (S3) at http://s3:***@127.0.0.1:{port}"), text
    assert "secret" not in text and "\n" not in text
    assert "OMVANT_S3_ENDPOINT_URL" in text and "OMVANT_BLOB_URL" in text


def test_blobs_on_disk_and_the_simulated_inbox_pass_at_once() -> None:
    probe_server(Settings(), servers.BLOB_STORE)
    probe_server(Settings(), servers.INBOX)
