"""dbt's console lines reach the run's log instead of stdout; other threads keep their stdout."""

from __future__ import annotations

import sys
import threading

import pytest

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
