"""dbt's console lines reach the run's log instead of stdout; other threads keep their stdout."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.live import Live
from rich.text import Text

from metrify_assets.warehouse import console as dbt_console
from metrify_assets.warehouse.console import dbt_console_to, dbt_events_to


def logged(messages: list[str]) -> list[str]:
    """The lines of the messages passed to the log."""
    return [line for message in messages for line in message.split("\n")]


def test_a_builds_lines_are_few_messages_of_the_runs_log(monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    with dbt_console_to(messages.append):
        for n in range(900):
            print(f"{n + 1} of 900 OK")
    assert len(messages) == 1 and logged(messages)[-1] == "900 of 900 OK" and len(logged(messages)) == 900
    monkeypatch.setattr(dbt_console, "EMIT_EVERY_S", 0.0)  # a slow build: what came is passed on as it comes
    messages.clear()
    with dbt_console_to(messages.append):
        print("1 of 2 OK")
        print("2 of 2 OK")
    assert messages == ["1 of 2 OK", "2 of 2 OK"]


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
    assert logged(lines) == ["1 of 2 OK created CREATE VIEW", "2 of 2 PASS"]
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
    assert logged(lines) == ["1 of 1 OK created view"]
    out = capsys.readouterr().out
    assert out.count("materialising") >= 2 and "OK created" not in out


def test_blocks_of_two_threads_may_close_in_any_order(capsys: pytest.CaptureFixture[str]) -> None:
    """Two dbt steps in threads of one process: the first to start finishes first. Each keeps its own
    lines, and stdout is the process's again once both are done."""
    original = sys.stdout
    a_lines: list[str] = []
    b_lines: list[str] = []
    a_open, b_open, a_closed = threading.Event(), threading.Event(), threading.Event()

    def step_a() -> None:
        with dbt_console_to(a_lines.append):
            a_open.set()
            b_open.wait(10)
            print("a: 1 of 1 OK")
        a_closed.set()

    def step_b() -> None:
        a_open.wait(10)
        with dbt_console_to(b_lines.append):
            b_open.set()
            a_closed.wait(10)
            print("b: 1 of 1 OK")  # after a's block closed: still b's

    threads = [threading.Thread(target=step_a), threading.Thread(target=step_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    print("summary")
    assert (logged(a_lines), logged(b_lines)) == (["a: 1 of 1 OK"], ["b: 1 of 1 OK"])
    assert sys.stdout is original
    assert capsys.readouterr().out == "summary\n"


def test_a_streamed_command_routes_only_while_it_makes_each_event(capsys: pytest.CaptureFixture[str]) -> None:
    """The dbt asset yields each event to Dagster: what runs while the asset is suspended keeps stdout."""
    lines: list[str] = []

    def dbt_stream() -> Iterator[int]:
        for n in (1, 2):
            print(f"{n} of 2 OK")
            yield n

    seen = []
    for event in dbt_events_to(dbt_stream(), lines.append):
        print(f"dagster handles event {event}")
        seen.append(event)
    assert seen == [1, 2] and logged(lines) == ["1 of 2 OK", "2 of 2 OK"]
    assert capsys.readouterr().out == "dagster handles event 1\ndagster handles event 2\n"
