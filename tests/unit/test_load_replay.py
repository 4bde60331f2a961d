"""Recordings of send bursts, their replay schedule, and the benchmark's percentiles."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from producers.bench import percentile
from producers.loadtest import (
    RecordingError,
    Send,
    _retagged,
    read_recording,
    record_synthetic,
    ticks,
    write_recording,
)


def test_a_recording_reads_back_in_time_order(tmp_path: Path) -> None:
    sends = record_synthetic(50, 2.0, seed=7)
    path = tmp_path / "burst.jsonl"
    assert write_recording(path, list(reversed(sends))) == 50
    again = read_recording(path)
    assert [s.case for s in again] == [s.case for s in sends]
    assert all(a.t <= b.t for a, b in itertools.pairwise(again))
    assert again[0].t >= 0.0 and again[-1].t <= 2.0


@pytest.mark.parametrize(
    "line",
    [
        "nope",
        '{"t": 0, "case": {}}',
        '{"case": {}}',
        '{"t": "soon", "case": {}}',
        "[1]",
        "[" * 100_000,
    ],
)
def test_a_bad_recording_names_its_line_instead_of_crashing(tmp_path: Path, line: str) -> None:
    path = tmp_path / "burst.jsonl"
    good = record_synthetic(1, 1.0, seed=3)
    write_recording(path, good)
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordingError, match="line 3"):
        read_recording(path)


def test_a_speedup_compresses_time_and_a_rate_spaces_sends_evenly() -> None:
    sends = [
        Send(t, case.case)
        for t, case in zip((0.0, 1.0, 2.0, 4.0), record_synthetic(4, 1, seed=1), strict=True)
    ]
    fast = [(round(at, 3), len(group)) for at, group in ticks(sends, 2.0, None, tick=0.01)]
    assert fast == [(0.0, 1), (0.5, 1), (1.0, 1), (2.0, 1)]
    even = [(round(at, 3), len(group)) for at, group in ticks(sends, 1.0, 2.0, tick=0.6)]
    assert even == [(0.0, 2), (1.0, 2)]


def test_a_replay_makes_new_cases_every_run() -> None:
    send = record_synthetic(1, 1, seed=3)[0]
    one, two = _retagged(send, "run1"), _retagged(send, "run2")
    assert one.resolved_case_id() != two.resolved_case_id()
    assert one.personnummer == send.case.personnummer


def test_percentiles_take_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None
