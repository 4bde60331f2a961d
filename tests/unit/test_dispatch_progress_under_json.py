"""Under --json, stderr carries only JSON lines: the dispatch's progress bar is never drawn,
not even when stderr is a terminal (the outside review saw it there); people on a terminal
still get it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from producers.cli.dispatch_command import _bar


@pytest.mark.parametrize(("as_json", "drawn"), [(True, False), (False, True)])
def test_the_bar_is_drawn_on_a_terminal_only_without_json(as_json: bool, drawn: bool) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True)
    with _bar(console, as_json) as bar:
        task = bar.add_task("checking every line", total=3)
        bar.advance(task, 3)
    assert ("checking every line" in out.getvalue()) is drawn
    if not drawn:
        assert out.getvalue() == ""
