"""Under --json, stderr carries only JSON lines: the dispatch's progress bar is never drawn,
not even when stderr is a terminal (the outside review saw it there)."""

from __future__ import annotations

import io

from rich.console import Console

from producers.cli.dispatch_command import _bar


def test_no_bar_under_json_even_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True)
    with _bar(console, True) as bar:
        task = bar.add_task("checking every line", total=3)
        bar.advance(task, 3)
    assert out.getvalue() == ""


def test_a_bar_is_drawn_for_people_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True)
    with _bar(console, False) as bar:
        task = bar.add_task("checking every line", total=3)
        bar.advance(task, 3)
    assert "checking every line" in out.getvalue()
