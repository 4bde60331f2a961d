"""Signing in through the organisation's OpenID Connect provider (the shipped simulator,
over real HTTP on loopback): only a console user linked to the subject gets in."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from producers.web.oidc_simulator import OidcProviderSimulator
from tests.web.console_support import build_app
from workers.settings import Settings
from workers.store import users
from workers.store.engine import make_engine, upgrade


@pytest.fixture
def provider() -> Iterator[OidcProviderSimulator]:
    simulator = OidcProviderSimulator(subject="kalle-oidc-7").start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(
    sqlite_url: str,
    tmp_path: object,
    provider: OidcProviderSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TestClient]:
    monkeypatch.setenv("OMVANT_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("OMVANT_OIDC_CLIENT_ID", provider.client_id)
    monkeypatch.setenv("OMVANT_OIDC_CLIENT_SECRET", provider.client_secret)
    upgrade(sqlite_url)
    with TestClient(build_app(Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/b"))) as c:
        yield c


def _sign_in_through(client: TestClient) -> httpx.Response:
    assert "organisationens inloggning" in client.get("/login").text
    away = client.get("/login/oidc", params={"next": "/arenden"}, follow_redirects=False)
    assert away.status_code == 302 and away.headers["location"].startswith("http://127.0.0.1:")
    back = httpx.get(away.headers["location"], follow_redirects=False)  # the provider, over HTTP
    assert back.status_code == 302
    callback = back.headers["location"].replace("http://testserver", "")
    return client.get(callback, follow_redirects=False)


def test_a_linked_user_is_signed_in_through_the_provider(client: TestClient) -> None:
    engine = make_engine(str(client.app.state.console.settings.database_url))  # type: ignore[attr-defined]
    with engine.begin() as conn:
        users.add(
            conn, username="kalle", display_name="Kalle Persson", hsa_id="SE2321000016-S555",
            roles=["staff"], clinics=["SE2321000016-VC01"], password_hash=None,
            oidc_subject="kalle-oidc-7",
        )  # fmt: skip
    engine.dispose()
    answer = _sign_in_through(client)
    assert answer.status_code == 303 and answer.headers["location"] == "/arenden"
    page = client.get("/arenden")
    assert page.status_code == 200 and "Kalle Persson" in page.text


def test_a_subject_no_user_is_linked_to_is_refused(client: TestClient) -> None:
    answer = _sign_in_through(client)
    assert answer.status_code == 403 and "inget aktivt konto" in answer.text
    assert client.get("/arenden", follow_redirects=False).status_code == 303


def test_a_forged_callback_is_refused(client: TestClient) -> None:
    client.get("/login/oidc", follow_redirects=False)
    forged = client.get("/login/oidc/callback", params={"code": "x", "state": "not-ours"})
    assert forged.status_code == 403
    assert client.get("/arenden", follow_redirects=False).status_code == 303
