"""Piped or redirected, a command's output is not cut at Rich's default of 80 columns."""

from __future__ import annotations

import pytest
from rich.table import Table

from metrify_assets.cli.console import PIPED_WIDTH, command_console


def test_piped_output_keeps_long_cells_whole(capsys: pytest.CaptureFixture[str]) -> None:
    path = "/srv/metrify/lake/reports/quality/dt=2026-03-28_2026-03-29/" + "x" * 60 + "/index.html"
    table = Table()
    table.add_column("what")
    table.add_column("where")
    table.add_row("report", path)
    out = command_console()
    assert not out.is_terminal and out.width == PIPED_WIDTH
    out.print(table)
    assert path in capsys.readouterr().out


def test_stderr_console_for_json_commands(capsys: pytest.CaptureFixture[str]) -> None:
    command_console(stderr=True).print("progress")
    captured = capsys.readouterr()
    assert captured.out == "" and "progress" in captured.err
