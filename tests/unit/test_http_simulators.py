"""Every HTTP simulator of an outside system serves, gives its URL and stops through the one
``ServedInThread``: started, it answers at its URL in a thread of its own name; stopped, the
thread has ended and the port is free to bind again."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import httpx
import pytest

from workers.adapters.account_directory import SimulatedAccountDirectory
from workers.adapters.directory_server import DirectoryServer
from workers.adapters.email_api_server import EmailApiSimulator
from workers.adapters.http_simulator import ServedInThread
from workers.adapters.inbox_server import InboxSimulator
from workers.adapters.sms_gateway_server import SmsGatewaySimulator
from workers.adapters.webhook_receiver import WebhookReceiver

SIMULATORS: dict[str, Callable[[], ServedInThread]] = {
    "inbox": InboxSimulator,
    "sms-gateway": SmsGatewaySimulator,
    "email-api": EmailApiSimulator,
    "directory": lambda: DirectoryServer(SimulatedAccountDirectory(1177)),
    "webhook-receiver": WebhookReceiver,
}


@pytest.mark.parametrize("make", SIMULATORS.values(), ids=SIMULATORS.keys())
def test_a_simulator_serves_in_its_thread_and_stopping_it_frees_the_port(
    make: Callable[[], ServedInThread],
) -> None:
    simulator = make()
    assert isinstance(simulator, ServedInThread)
    with simulator:
        url = simulator.base_url
        answer = httpx.get(f"{url}/nothing-here", timeout=5)
        assert answer.status_code < 500
        assert any(t.name == simulator.thread_name for t in threading.enumerate())
    port = int(url.rsplit(":", 1)[1])
    assert simulator._thread is not None and not simulator._thread.is_alive()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))  # released
