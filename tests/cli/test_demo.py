"""`metrify demo` refuses impossible arguments as usage errors, before it simulates anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--meters", "0"], "--meters"),
        (["--days", "-1"], "--days"),
        (["--start", "garbage"], "--start"),
        (["--fault-rate", "0.9"], "--fault-rate"),
    ],
)
def test_a_bad_argument_is_a_usage_error_not_a_traceback(args: list[str], option: str) -> None:
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # click's usage error, not a ValueError
    assert f"Invalid value for '{option}'" in result.output
