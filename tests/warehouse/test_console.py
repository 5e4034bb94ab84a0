"""dbt's console lines reach the run's log instead of stdout; other threads keep their stdout."""

from __future__ import annotations

import sys
import threading

import pytest
from rich.console import Console
from rich.live import Live
from rich.text import Text

from metrify_assets.warehouse.console import dbt_console_to


def test_the_callers_lines_go_to_the_log_and_other_threads_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []
    with dbt_console_to(lines.append):
        sys.stdout.write("1 of 2 OK created \x1b[32mCREATE VIEW\x1b[0m\n\n2 of 2 ")
        sys.stdout.flush()
        other = threading.Thread(target=lambda: print("progress bar"))
        other.start()
        other.join()
        sys.stdout.write("PASS")  # no newline: still one line once the block ends
    print("after")
    assert lines == ["1 of 2 OK created CREATE VIEW", "2 of 2 PASS"]
    assert capsys.readouterr().out == "progress bar\nafter\n"


def test_a_live_progress_display_keeps_refreshing_on_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`metrify run` in a terminal: Rich's Live display proxies stdout, and its refresh thread renders
    while dbt runs. The refresh reaches the terminal (through this stdout it unwraps); before
    `rich_proxied_file`, it went back through Rich's own proxy and deadlocked."""
    console = Console(force_terminal=True, width=40)
    lines: list[str] = []
    with (
        Live(Text("materialising"), console=console, auto_refresh=False) as live,
        dbt_console_to(lines.append),
    ):
        print("1 of 1 OK created view")
        refresh = threading.Thread(target=live.refresh, daemon=True)
        refresh.start()
        refresh.join(timeout=10)
        assert not refresh.is_alive(), "the display's refresh hung"
    assert lines == ["1 of 1 OK created view"]
    out = capsys.readouterr().out
    assert out.count("materialising") >= 2 and "OK created" not in out
