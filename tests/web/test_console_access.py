"""Signing in, sessions, CSRF, brute-force protection and roles of the web console."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.databases import migrated_engine
from tests.web.console_support import (
    PASSWORD,
    add_users,
    build_app,
    console_of,
    csrf_of,
    sign_in,
)
from workers.settings import Settings
from workers.store import users

PAGES = [
    "/",
    "/arenden",
    "/arenden/some-case",
    "/arenden.csv",
    "/mallar",
    "/mallar/ny",
    "/skicka",
    "/skicka/0123456789abcdef0123456789abcdef",
]


@pytest.fixture
def client(
    sqlite_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("OMVANT_WEB_ACCOUNT_FAILURES", "3")
    monkeypatch.setenv("OMVANT_WEB_IP_FAILURES", "6")
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    engine.dispose()
    settings = Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/blobs")
    with TestClient(build_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_browser_without_a_session_to_the_login_page(
    client: TestClient, path: str
) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")
    assert "Logga in" in client.get(answer.headers["location"]).text


def test_signing_in_gives_a_signed_httponly_samesite_cookie_and_the_users_start_page(
    client: TestClient,
) -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"username": "Nurse-A", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/arenden"
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "omvant_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert "." in value  # token.signature (itsdangerous)
    assert client.get("/arenden").status_code == 200


def test_over_https_the_session_cookie_is_secure(sqlite_url: str, tmp_path: object) -> None:
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    engine.dispose()
    app = build_app(Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/blobs"))
    with TestClient(app, base_url="https://console.example") as secure:
        token = csrf_of(secure.get("/login").text)
        answer = secure.post(
            "/login",
            data={"username": "nurse-a", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "omvant_session" in v
    )
    assert "Secure" in cookie


def test_a_forged_or_altered_session_cookie_is_no_session(client: TestClient) -> None:
    sign_in(client, "nurse-a")
    real = client.cookies["omvant_session"]
    token, signature = real.rsplit(".", 1)
    client.cookies.set("omvant_session", token + "." + signature[::-1])
    assert client.get("/arenden", follow_redirects=False).status_code == 303
    client.cookies.set("omvant_session", "made-up-token")
    assert client.get("/arenden", follow_redirects=False).status_code == 303


def test_a_wrong_password_or_unknown_user_is_one_message_and_401(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    wrong = client.post(
        "/login", data={"username": "nurse-a", "password": "fel", "csrf_token": token}
    )
    unknown = client.post(
        "/login", data={"username": "nobody", "password": "fel", "csrf_token": token}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Fel användarnamn eller lösenord." in wrong.text and "Fel användarnamn" in unknown.text


def test_posts_without_this_browsers_csrf_token_are_refused(client: TestClient) -> None:
    # the login form itself
    assert (
        client.post(
            "/login", data={"username": "nurse-a", "password": PASSWORD}, follow_redirects=False
        ).status_code
        == 403
    )
    token = sign_in(client, "admin-a")
    for path, data in (
        ("/skicka", {"template_id": "meddelande-till-invanare"}),
        ("/mallar/meddelande-till-invanare/anvand", {}),
        ("/logout", {}),
    ):
        assert client.post(path, data=data, follow_redirects=False).status_code == 403
        forged = {**data, "csrf_token": "0" * 64}
        assert client.post(path, data=forged, follow_redirects=False).status_code == 403
    # another session's token does not do either
    other = TestClient(client.app)
    other_token = sign_in(other, "nurse-a")
    assert other_token != token
    assert (
        client.post("/logout", data={"csrf_token": other_token}, follow_redirects=False).status_code
        == 403
    )
    assert client.get("/mallar").status_code == 200  # still signed in: nothing happened
    answer = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303


def test_signing_out_ends_the_session_in_the_database_not_only_in_the_browser(
    client: TestClient,
) -> None:
    token = sign_in(client, "nurse-a")
    kept = client.cookies["omvant_session"]
    client.post("/logout", data={"csrf_token": token})
    client.cookies.set("omvant_session", kept)  # a copy of the cookie kept by someone
    assert client.get("/arenden", follow_redirects=False).status_code == 303


def test_a_disabled_user_is_out_at_once_and_cannot_sign_in(client: TestClient) -> None:
    sign_in(client, "nurse-a")
    with console_of(client.app).begin() as conn:  # type: ignore[arg-type]
        users.set_active(conn, "nurse-a", False)
    assert client.get("/arenden", follow_redirects=False).status_code == 303
    token = csrf_of(client.get("/login").text)
    refused = client.post(
        "/login", data={"username": "nurse-a", "password": PASSWORD, "csrf_token": token}
    )
    assert refused.status_code == 401


def _try(client: TestClient, username: str, password: str) -> int:
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    ).status_code


def test_an_account_is_locked_after_repeated_failures_even_for_the_right_password(
    client: TestClient,
) -> None:
    assert [_try(client, "nurse-a", f"guess-{i}") for i in range(3)] == [401, 401, 401]
    assert _try(client, "nurse-a", PASSWORD) == 429  # locked: the password is not even checked
    page = client.post(
        "/login",
        data={
            "username": "nurse-a",
            "password": PASSWORD,
            "csrf_token": csrf_of(client.get("/login").text),
        },
    )
    assert "För många misslyckade inloggningar" in page.text
    assert _try(client, "nurse-b", PASSWORD) == 303  # another account is not locked


def test_the_lock_lifts_with_time_and_a_success_clears_the_count(client: TestClient) -> None:
    assert [_try(client, "nurse-a", f"guess-{i}") for i in range(3)] == [401, 401, 401]
    with console_of(client.app).begin() as conn:  # type: ignore[arg-type]
        conn.execute(sa.text("UPDATE login_failures SET locked_until = NULL"))
    assert _try(client, "nurse-a", PASSWORD) == 303
    client.cookies.clear()
    assert [_try(client, "nurse-a", "guess") for _ in range(2)] == [401, 401]  # counts anew


def test_one_address_guessing_at_many_accounts_is_locked(client: TestClient) -> None:
    codes = [_try(client, f"user-{i}", "guess") for i in range(6)]
    assert codes == [401] * 6
    assert _try(client, "nurse-b", PASSWORD) == 429  # the address is locked now


def test_roles_decide_the_pages(client: TestClient) -> None:
    sign_in(client, "oncall")
    for path in ("/arenden", "/skicka", "/mallar"):
        answer = client.get(path)
        assert answer.status_code == 403 and "kräver rollen" in answer.text
    client.cookies.clear()
    sign_in(client, "nurse-a")
    assert client.get("/mallar").status_code == 403
    assert client.get("/arenden").status_code == 200


def test_pages_send_a_content_security_policy_and_no_caching(client: TestClient) -> None:
    sign_in(client, "nurse-a")
    answer = client.get("/arenden")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"
    assert client.get("/static/console.js").status_code == 200


@pytest.mark.parametrize(
    "path", ["/nope", "/%2e%2e/etc/passwd", "/arenden/%2e%2e/%2e%2e/x", "/static/%2e%2e/app.py"]
)
def test_a_path_the_console_has_no_page_for_is_the_consoles_own_html_404(
    client: TestClient, path: str
) -> None:
    for signed_in in (False, True):
        if signed_in:
            sign_in(client, "nurse-a")
        answer = client.get(path)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
        assert "Sidan finns inte." in answer.text and '<html lang="sv">' in answer.text
        assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_the_api_and_a_wrong_method_keep_their_own_error_answers(client: TestClient) -> None:
    api = client.get("/v1/nope")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    assert api.json()["reason"] == "not-found"
    wrong = client.put("/login")
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
    assert wrong.headers["content-type"].startswith("text/html")
