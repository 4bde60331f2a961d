"""The inbox is idempotent on the delivery key, across processes, as a real inbox API is:
the in-process simulator (memory or a shared SQLite file), the HTTP simulator and HttpInbox."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from pathlib import Path

import httpx
import pytest

from tests.processes import omvant_sim
from workers.adapters.http_inbox import HttpInbox
from workers.adapters.inbox import (
    InboxMessage,
    InboxRefused,
    InboxUnavailable,
    SimulatedInbox,
    delivery_key_for,
)
from workers.adapters.inbox_server import InboxSimulator
from workers.adapters.keyed_records import TakenStats
from workers.transient import is_outage


def message(case_id: str, body: str = "Välkommen") -> InboxMessage:
    return InboxMessage(
        case_id=case_id,
        personnummer="191212121212",
        subject="Kallelse",
        body=body,
        signature="Mottagningen",
        sent_on=dt.date(2026, 12, 1),
        answerable=False,
        delivery_key=delivery_key_for(case_id),
    )


def test_the_http_inbox_takes_a_key_once_and_counts_attempts_and_duplicates(
    inbox_simulator: InboxSimulator,
) -> None:
    first, restarted = HttpInbox(inbox_simulator.url), HttpInbox(inbox_simulator.url)
    ids = [first.deliver(message("c1")), restarted.deliver(message("c1"))]
    first.deliver(message("c2"))
    assert ids[0] == ids[1]
    stats = httpx.get(f"{inbox_simulator.url}/v1/stats").json()
    assert stats == {"attempts": 3, "distinct": 2, "duplicates_refused": 1}
    found = httpx.get(f"{inbox_simulator.url}/v1/messages", params={"key": "c1:inbox"})
    assert found.status_code == 200
    assert (found.json()["id"], found.json()["case_id"]) == (ids[0], "c1")
    assert "body" not in found.json() and "personnummer" not in found.json()
    assert (
        httpx.get(f"{inbox_simulator.url}/v1/messages", params={"key": "nope"}).status_code == 404
    )
    assert httpx.get(f"{inbox_simulator.url}/v1/messages").json() == {
        "keys": ["c1:inbox", "c2:inbox"]
    }


def test_the_http_inbox_answers_201_for_new_200_for_the_same_key_and_409_for_another_case(
    inbox_simulator: InboxSimulator,
) -> None:
    def post(key: str, case_id: str) -> httpx.Response:
        return httpx.post(
            f"{inbox_simulator.url}/v1/messages",
            json={"case_id": case_id},
            headers={"Idempotency-Key": key},
        )

    assert post("k1", "c1").status_code == 201
    again = post("k1", "c1")
    assert (again.status_code, again.json()["new"]) == (200, False)
    assert post("k1", "c2").status_code == 409
    assert (
        httpx.post(f"{inbox_simulator.url}/v1/messages", json={"case_id": "c3"}).status_code == 400
    )
    assert inbox_simulator.records.stats() == TakenStats(
        attempts=2, distinct=1, duplicates_refused=1
    )


def test_http_inbox_failures_are_transient_or_permanent_as_the_status_says(
    inbox_simulator: InboxSimulator,
) -> None:
    inbox = HttpInbox(inbox_simulator.url)
    inbox_simulator.behave(fail_next=1, refuse=["refused-1"])
    with pytest.raises(InboxUnavailable) as unavailable:
        inbox.deliver(message("c1"))
    assert is_outage(unavailable.value)
    assert inbox.deliver(message("c1"))
    with pytest.raises(InboxRefused):
        inbox.deliver(message("refused-1"))
    assert (
        httpx.post(f"{inbox_simulator.url}/v1/control", json={"fail_next": -1}).status_code == 400
    )
    with pytest.raises(InboxUnavailable):
        HttpInbox("http://127.0.0.1:9").deliver(message("c1"))


def test_a_delivery_that_timed_out_after_the_inbox_took_it_is_not_shown_twice(
    inbox_simulator: InboxSimulator,
) -> None:
    inbox_simulator.behave(delay_after=0.5)
    with pytest.raises(InboxUnavailable) as timed_out:
        HttpInbox(inbox_simulator.url, timeout=0.1).deliver(message("slow-1"))
    assert timed_out.value.maybe_accepted
    inbox_simulator.behave(delay_after=0)
    HttpInbox(inbox_simulator.url).deliver(message("slow-1"))
    assert inbox_simulator.records.stats() == TakenStats(
        attempts=2, distinct=1, duplicates_refused=1
    )


def _deliver_in_another_process(folder: str, case_ids: list[str]) -> None:
    inbox = SimulatedInbox(Path(folder))
    for case_id in case_ids:
        inbox.deliver(message(case_id))


def test_the_simulated_inbox_dedupes_by_key_across_processes_sharing_its_folder(
    tmp_path: Path,
) -> None:
    here = SimulatedInbox(tmp_path)
    here.deliver(message("c1"))
    context = multiprocessing.get_context("spawn")
    worker = context.Process(
        target=_deliver_in_another_process, args=(str(tmp_path), ["c1", "c2", "c2"])
    )
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert here.stats() == TakenStats(attempts=4, distinct=2, duplicates_refused=2)
    assert here.delivered_case_ids() == ["c1", "c2"]
    lines = (tmp_path / "inbox.jsonl").read_text().splitlines()
    assert [json.loads(line)["case_id"] for line in lines] == ["c1", "c2"]


def test_a_simulated_inbox_in_memory_dedupes_within_its_process() -> None:
    inbox = SimulatedInbox()
    assert inbox.deliver(message("c1")) == inbox.deliver(message("c1", body="again"))
    assert inbox.stats() == TakenStats(attempts=2, distinct=1, duplicates_refused=1)


def test_omvant_sim_inbox_runs_as_its_own_process_and_says_where(tmp_path: Path) -> None:
    store = tmp_path / "inbox.sqlite3"
    with omvant_sim("inbox", "--port", "0", "--store", store) as sim:
        HttpInbox(sim.url).deliver(message("c1"))
        HttpInbox(sim.url).deliver(message("c1"))
        assert httpx.get(f"{sim.url}/v1/stats").json()["duplicates_refused"] == 1
    assert sim.process.returncode == 0
    assert SimulatedInbox(tmp_path).stats().distinct == 1  # the same file: kept across restarts
