"""The web console in a real browser: Debian's Chromium, headless, driven by Selenium through
the system chromedriver (nothing is downloaded), against ``omvant serve`` on PostgreSQL with
worker processes and the inbox-events bridge on RabbitMQ.

Each page the flows pass through is saved as a screenshot under ``test-artifacts/web/``.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa

from producers import attachment_samples
from tests.conftest import IN_CI, RABBITMQ_URL, server_missing
from tests.e2e.harness import OMVANT, running_workers, wait_until, worker_env
from tests.ports import SERVE_PORT, port_said
from tests.web.console_support import (
    CLINIC_A,
    CLINIC_B,
    FREE_TEXT,
    ONCALL,
    PASSWORD,
    insert_dead_letter,
    residents_with,
)
from workers.adapters.account_directory import AccountStatus
from workers.queues import all_queues
from workers.store.engine import make_engine, upgrade
from workers.store.schema import cases, notification_ledger

pytestmark = pytest.mark.e2e

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def _add_user(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [OMVANT, "users", "add", *args, "--password-stdin"],
        env=env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


class Console:
    """The running system: its URL, environment, database and the prefix of its queues."""

    def __init__(self, url: str, env: dict[str, str], database_url: str, prefix: str) -> None:
        self.url = url
        self.env = env
        self.engine = make_engine(database_url)
        self.prefix = prefix

    def state(self, case_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(cases.c.state).where(cases.c.id == case_id)).scalar()

    def open_event(self, case_id: str) -> None:
        """The inbox says the resident opened the message (plain JSON on its exchange)."""
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        event = {
            "version": 1,
            "event": "opened",
            "case_id": case_id,
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        connection.channel().basic_publish(
            exchange=f"{self.prefix}omvant.inbox-events",
            routing_key="inbox.opened",
            body=json.dumps(event).encode(),
            properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
        )
        connection.close()


def _bridge_bound(queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture(scope="module")
def console(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):
        message = "Debian's chromium and chromium-driver are not installed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)).close()
    except pika.exceptions.AMQPError as exc:
        server_missing("RabbitMQ", exc)
    tmp = tmp_path_factory.mktemp("console")
    prefix = f"w{uuid.uuid4().hex[:8]}."
    upgrade(postgres_url)
    env = worker_env(
        broker_url=RABBITMQ_URL,
        database_url=postgres_url,
        queue_prefix=prefix,
        blob_dir=tmp / "blobs",
        extra={"OMVANT_WEB_SECRET": uuid.uuid4().hex, "OMVANT_TEMPLATE_CACHE_SECONDS": "0"},
    )
    _add_user(env, "admin-a", "--hsa-id", "SE2321000016-S103", "--role", "admin", "--role", "staff",
              "--clinic", CLINIC_A, "--name", "Karin Berg")  # fmt: skip
    _add_user(env, "nurse-a", "--hsa-id", "SE2321000016-S101", "--role", "staff",
              "--clinic", CLINIC_A, "--name", "Sara Nilsson")  # fmt: skip
    _add_user(env, "nurse-b", "--hsa-id", "SE2321000016-S202", "--role", "staff",
              "--clinic", CLINIC_B, "--name", "Per Holm")  # fmt: skip
    _add_user(env, "jour", "--hsa-id", ONCALL, "--role", "oncall", "--name", "Nils Olsson")
    logs = tmp / "logs"
    logs.mkdir()
    server_log = (logs / "serve.log").open("wb")
    server = subprocess.Popen(
        [OMVANT, "serve", "--host", "127.0.0.1", "--port", "0"],  # it says the port it got
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    bridge_log = (logs / "bridge.log").open("wb")
    bridge = subprocess.Popen(
        [OMVANT, "inbox-events"], env=env, stdout=bridge_log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = ""

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        port = port_said(
            (logs / "serve.log").read_text, SERVE_PORT, alive=lambda: server.poll() is None
        )
        url = f"http://127.0.0.1:{port}"
        assert wait_until(up, timeout=90), (logs / "serve.log").read_text()
        with running_workers(env, logs, threads=4):
            assert wait_until(lambda: _bridge_bound(f"{prefix}inbox-events"), timeout=60)
            system = Console(url, env, postgres_url, prefix)
            yield system
            system.engine.dispose()
    finally:
        for process in (server, bridge):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        server_log.close()
        bridge_log.close()
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        channel = connection.channel()
        for queue in all_queues():
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{prefix}{queue}{suffix}")
        channel.queue_delete(f"{prefix}inbox-events")
        channel.exchange_delete(f"{prefix}omvant.inbox-events")
        connection.close()


def _browser(javascript: bool = True) -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1100", "--lang=sv-SE", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    # the system chromedriver, named: Selenium Manager has nothing to download
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[object]:
    javascript = not request.node.get_closest_marker("no_javascript")
    driver = _browser(javascript)
    failed_before = request.session.testsfailed
    yield driver
    if request.session.testsfailed > failed_before:  # what the browser showed when it failed
        shot(driver, f"failed-{request.node.name}")
        (ARTIFACTS / f"failed-{request.node.name}.html").write_text(driver.page_source)  # type: ignore[attr-defined]
    driver.quit()  # type: ignore[attr-defined]


def shot(driver: object, name: str) -> Path:
    """Save what the browser shows as ``test-artifacts/web/NAME.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


def text(driver: object, by: str, value: str) -> str:
    """The element's text, or "" while it is not there (or is being replaced in place)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element(by, value).text)  # type: ignore[attr-defined]
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def click(driver: object, by: str, value: str, timeout: float = 20) -> None:
    """Click the element once it is there (found afresh if the page replaced it meanwhile)."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )

    deadline = time.monotonic() + timeout
    while True:
        try:
            driver.find_element(by, value).click()  # type: ignore[attr-defined]
            return
        except (
            NoSuchElementException,
            StaleElementReferenceException,
            ElementClickInterceptedException,
        ):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def type_into(driver: object, by: str, value: str, keys: str, timeout: float = 20) -> None:
    """Type into the field once it is there."""
    assert wait_until(lambda: bool(driver.find_elements(by, value)), timeout=timeout)  # type: ignore[attr-defined]
    driver.find_element(by, value).send_keys(keys)  # type: ignore[attr-defined]


def sign_in(driver: object, base: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/login")  # type: ignore[attr-defined]
    type_into(driver, By.ID, "username", username)  # type: ignore[attr-defined]
    type_into(driver, By.ID, "password", PASSWORD)  # type: ignore[attr-defined]
    click(driver, By.ID, "login-button")
    wait_until(lambda: "/login" not in driver.current_url, timeout=15)  # type: ignore[attr-defined]


def test_an_unauthenticated_browser_gets_the_login_page(console: Console, browser: object) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{console.url}/arenden")  # type: ignore[attr-defined]
    assert "/login?next=/arenden" in browser.current_url  # type: ignore[attr-defined]
    assert wait_until(lambda: text(browser, By.TAG_NAME, "h1") == "Logga in", timeout=20)
    shot(browser, "01-login")
    type_into(browser, By.ID, "username", "nurse-a")  # type: ignore[attr-defined]
    type_into(browser, By.ID, "password", "fel lösenord")  # type: ignore[attr-defined]
    click(browser, By.ID, "login-button")
    assert wait_until(
        lambda: "Fel användarnamn eller lösenord" in text(browser, By.ID, "login-error"), timeout=20
    )
    shot(browser, "02-login-refused")


def test_an_administrator_adopts_adapts_and_activates_a_template(
    console: Console, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console.url, "admin-a")
    browser.get(f"{console.url}/mallar")  # type: ignore[attr-defined]
    search = browser.find_element(By.ID, "q")  # type: ignore[attr-defined]
    search.send_keys("provsvar")
    click(browser, By.ID, "search-button")
    shot(browser, "03-templates-search")
    click(browser, By.ID, "adopt-meddelande-om-provsvar")
    assert wait_until(
        lambda: "/mallar/vc01.meddelande-om-provsvar" in browser.current_url,  # type: ignore[attr-defined]
        timeout=15,
    ), browser.current_url  # type: ignore[attr-defined]
    assert wait_until(lambda: "Inte aktiv" in text(browser, By.ID, "active-badge"), timeout=20)
    shot(browser, "04-template-adopted")
    contact = browser.find_element(By.ID, "contact")  # type: ignore[attr-defined]
    contact.clear()
    contact.send_keys("Vårdcentralen Backa, vardagar 8-17")
    type_into(
        browser,
        By.ID,
        "contact_card_url",  # type: ignore[attr-defined]
        "https://www.1177.se/hitta-vard/kontaktkort/vc-backa/",
    )
    active = browser.find_element(By.ID, "active")  # type: ignore[attr-defined]
    browser.execute_script("arguments[0].scrollIntoView()", active)  # type: ignore[attr-defined]
    active.click()
    click(browser, By.ID, "save-button")
    assert wait_until(
        lambda: "sparad som en ny version" in text(browser, By.ID, "notice"), timeout=20
    )
    assert wait_until(lambda: text(browser, By.ID, "active-badge") == "Aktiv", timeout=20)
    assert wait_until(lambda: "Version 2" in text(browser, By.CLASS_NAME, "versions"), timeout=20)
    shot(browser, "05-template-activated")
    browser.get(f"{console.url}/skicka")  # type: ignore[attr-defined]
    assert "tpl-vc01.meddelande-om-provsvar" in browser.page_source  # type: ignore[attr-defined]


def _send_page(driver: object, base: str, template_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/skicka")  # type: ignore[attr-defined]
    click(driver, By.ID, f"tpl-{template_id}")
    shot(driver, "06-send-choose-template")
    click(driver, By.ID, "continue-button")
    assert wait_until(lambda: "/skicka/" in driver.current_url, timeout=15)  # type: ignore[attr-defined]


def test_a_nurse_sends_a_case_with_an_attachment_and_sees_it_read(
    console: Console, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    resident = residents_with(AccountStatus.ACTIVE, 3)[2]
    sign_in(browser, console.url, "nurse-a")
    _send_page(browser, console.url, "meddelande-till-invanare")
    type_into(browser, By.ID, "personnummer", f"{resident[:8]}-{resident[8:]}")  # type: ignore[attr-defined]
    click(browser, By.ID, "add-resident")
    assert wait_until(lambda: "aviseras via" in browser.page_source, timeout=15)  # type: ignore[attr-defined]
    click(browser, By.CSS_SELECTOR, 'button[value="plus:tid-bokad"]')
    assert wait_until(
        lambda: "Vi har bokat en tid" in text(browser, By.ID, "chosen-fragments"),
        timeout=15,
    )  # type: ignore[attr-defined]
    click(browser, By.CSS_SELECTOR, 'button[value="plus:halsning"]')
    assert wait_until(lambda: "Hej!" in text(browser, By.ID, "chosen-fragments"), timeout=15)  # type: ignore[attr-defined]
    click(browser, By.CSS_SELECTOR, 'button[value="up:1"]')
    assert wait_until(
        lambda: text(browser, By.ID, "chosen-fragments").startswith("Hej!"), timeout=15
    )  # type: ignore[attr-defined]
    type_into(browser, By.ID, "free_text", "Ta med legitimation.")  # type: ignore[attr-defined]
    letter = tmp_path / "kallelse.pdf"
    letter.write_bytes(attachment_samples.pdf(2))
    type_into(browser, By.ID, "file", str(letter))  # type: ignore[attr-defined]
    click(browser, By.ID, "attach-button")
    assert wait_until(
        lambda: "kallelse.pdf" in browser.page_source and "2 sidor" in browser.page_source,
        timeout=30,
    )  # type: ignore[attr-defined]
    shot(browser, "07-send-draft")
    click(browser, By.ID, "preview-button")
    assert wait_until(lambda: bool(browser.find_elements(By.ID, "preview")), timeout=15)  # type: ignore[attr-defined]
    body = browser.find_element(By.ID, "preview-body").text  # type: ignore[attr-defined]
    assert body.startswith("Hej!") and "Ta med legitimation." in body
    signature = browser.find_element(By.ID, "preview-signature").text  # type: ignore[attr-defined]
    assert signature.strip()
    assert dt.date.today().isoformat()[:7] in browser.find_element(By.ID, "preview-date").text  # type: ignore[attr-defined]
    preview = browser.find_element(By.ID, "preview")  # type: ignore[attr-defined]
    browser.execute_script("arguments[0].scrollIntoView()", preview)  # type: ignore[attr-defined]
    shot(browser, "08-send-preview")
    click(browser, By.ID, "send-button")
    assert wait_until(lambda: "/arenden?skickat=1" in browser.current_url, timeout=15)  # type: ignore[attr-defined]
    link = browser.find_element(By.CSS_SELECTOR, "#sent-notice a")  # type: ignore[attr-defined]
    case_id = link.get_attribute("href").rsplit("/", 1)[1]
    assert wait_until(lambda: console.state(case_id) == "notified", timeout=120), console.state(
        case_id
    )
    browser.get(f"{console.url}/arenden")  # type: ignore[attr-defined]
    assert case_id in browser.page_source  # type: ignore[attr-defined]
    shot(browser, "09-cases-list")
    browser.get(f"{console.url}/arenden/{case_id}")  # type: ignore[attr-defined]
    assert wait_until(lambda: "Oläst" in text(browser, By.ID, "case-read"), timeout=20)
    console.open_event(case_id)
    assert wait_until(lambda: console.state(case_id) == "read", timeout=60)
    browser.get(f"{console.url}/arenden/{case_id}")  # type: ignore[attr-defined]
    assert wait_until(
        lambda: "Läst av invånaren" in text(browser, By.ID, "case-status"), timeout=20
    )
    shot(browser, "10-case-read")
    browser.get(f"{console.url}/arenden?status=read")  # type: ignore[attr-defined]
    assert case_id in browser.page_source  # type: ignore[attr-defined]
    # the search by personnummer is posted: the number is in no address the browser keeps
    type_into(browser, By.ID, "f-pnr", f"{resident[:8]}-{resident[8:]}")
    click(browser, By.ID, "filter-button")
    searched = f"{console.url}/arenden"
    assert wait_until(lambda: browser.current_url == searched, timeout=15)  # type: ignore[attr-defined]
    assert wait_until(lambda: "Sökningen loggas" in browser.page_source, timeout=15)  # type: ignore[attr-defined]
    assert case_id in browser.page_source  # type: ignore[attr-defined]
    shot(browser, "10b-cases-searched")


@pytest.mark.no_javascript
def test_without_javascript_an_unreachable_resident_gives_the_reason_before_sending(
    console: Console, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    blocked = residents_with(AccountStatus.BLOCKED, 2)[1]
    sign_in(browser, console.url, "nurse-a")
    _send_page(browser, console.url, "meddelande-till-invanare")
    type_into(browser, By.ID, "personnummer", blocked)  # type: ignore[attr-defined]
    click(browser, By.ID, "add-resident")
    assert wait_until(
        lambda: bool(text(browser, By.CSS_SELECTOR, "#residents tr.refused .verdict")), timeout=20
    )
    verdict = text(browser, By.CSS_SELECTOR, "#residents tr.refused .verdict")
    assert "Invånaren har spärrat sin inloggning" in verdict and "login-blocked" in verdict
    shot(browser, "11-send-unreachable")
    click(browser, By.ID, "send-button")
    assert wait_until(lambda: "Ta bort dem som inte kan nås" in browser.page_source, timeout=15)  # type: ignore[attr-defined]
    assert "/skicka/" in browser.current_url  # type: ignore[attr-defined]
    shot(browser, "12-send-refused")
    with console.engine.connect() as conn:
        sent = conn.execute(sa.select(cases.c.id).where(cases.c.personnummer == blocked)).first()
    assert sent is None


def test_clinic_as_user_cannot_open_clinic_bs_case_by_url(
    console: Console, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    resident = residents_with(AccountStatus.ACTIVE, 5)[4]
    sign_in(browser, console.url, "nurse-b")
    _send_page(browser, console.url, "meddelande-till-invanare")
    type_into(browser, By.ID, "personnummer", resident)  # type: ignore[attr-defined]
    click(browser, By.ID, "add-resident")
    assert wait_until(lambda: "aviseras via" in browser.page_source, timeout=15)  # type: ignore[attr-defined]
    click(browser, By.CSS_SELECTOR, 'button[value="plus:halsning"]')
    assert wait_until(lambda: "Hej!" in text(browser, By.ID, "chosen-fragments"), timeout=15)  # type: ignore[attr-defined]
    click(browser, By.ID, "send-button")
    assert wait_until(lambda: "skickat=1" in browser.current_url, timeout=15)  # type: ignore[attr-defined]
    case_url = browser.find_element(By.CSS_SELECTOR, "#sent-notice a").get_attribute("href")  # type: ignore[attr-defined]
    case_id = case_url.rsplit("/", 1)[1]
    assert wait_until(lambda: console.state(case_id) is not None, timeout=60)
    browser.get(case_url)  # type: ignore[attr-defined]
    assert wait_until(lambda: text(browser, By.TAG_NAME, "h1").startswith("Ärende"), timeout=20)
    browser.delete_all_cookies()  # type: ignore[attr-defined]
    sign_in(browser, console.url, "nurse-a")
    browser.get(case_url)  # type: ignore[attr-defined]
    assert wait_until(lambda: text(browser, By.TAG_NAME, "h1") == "Finns inte", timeout=20)
    assert resident[:8] not in browser.page_source  # type: ignore[attr-defined]
    shot(browser, "13-other-clinics-case")


def test_oncall_replays_a_dead_letter_and_sees_it_leave_the_list(
    console: Console, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    resident = residents_with(AccountStatus.ACTIVE, 7)[6]
    failure, case_id = insert_dead_letter(console.engine, resident, f"jour-{uuid.uuid4().hex}")
    sign_in(browser, console.url, "jour")
    assert wait_until(lambda: "/drift" in browser.current_url, timeout=15)  # type: ignore[attr-defined]
    assert wait_until(lambda: bool(browser.find_elements(By.ID, "queues")), timeout=20)  # type: ignore[attr-defined]
    assert f"{console.prefix}recipient-validation" in browser.page_source  # type: ignore[attr-defined]
    assert "rabbitmq" in text(browser, By.TAG_NAME, "main")
    shot(browser, "14-oncall-overview")
    click(browser, By.LINK_TEXT, "Felade meddelanden")
    click(browser, By.ID, f"inspect-{failure}")
    assert wait_until(lambda: bool(browser.find_elements(By.ID, "record-body")), timeout=20)  # type: ignore[attr-defined]
    page = browser.page_source  # type: ignore[attr-defined]
    assert resident not in page and FREE_TEXT not in page
    assert f"{resident[:8]}-****" in page
    shot(browser, "15-oncall-dead-letter")
    click(browser, By.ID, "replay-button")
    assert wait_until(lambda: bool(browser.find_elements(By.ID, "confirm-replay")), timeout=20)  # type: ignore[attr-defined]
    assert "Valda meddelanden: 1" in text(browser, By.ID, "replay-plan")
    shot(browser, "16-oncall-replay-confirm")
    assert console.state(case_id) is None  # asking sent nothing
    click(browser, By.ID, "confirm-replay")
    assert wait_until(lambda: "aterkorda=1" in browser.current_url, timeout=20)  # type: ignore[attr-defined]
    assert "Körda om: 1" in text(browser, By.ID, "replay-notice")
    assert not browser.find_elements(By.ID, f"inspect-{failure}")  # type: ignore[attr-defined]
    shot(browser, "17-oncall-replayed")
    assert wait_until(lambda: console.state(case_id) == "notified", timeout=120), console.state(
        case_id
    )
    browser.get(f"{console.url}/drift/fel/{failure}")  # type: ignore[attr-defined]
    assert "Körd om" in text(browser, By.ID, "record-status")
    assert not browser.find_elements(By.ID, "replay-button")  # type: ignore[attr-defined]
    with console.engine.connect() as conn:
        sent = conn.execute(
            sa.select(notification_ledger.c.channel, sa.func.count())
            .where(notification_ledger.c.case_id == case_id, notification_ledger.c.round == 1)
            .group_by(notification_ledger.c.channel)
        ).all()
    assert sent and all(count == 1 for _channel, count in sent)  # one per channel
