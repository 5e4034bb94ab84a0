"""`metrify review list`'s filters: a value outside their closed sets is a usage error listing them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.quality.rules import REASONS


def test_an_unknown_reason_is_a_usage_error_listing_the_flag_reasons(tmp_path: Path) -> None:
    """`--reason spkie` answered an empty table, as if no item had the reason (refused before any
    database is reached, as `--source gas` is: the URL below has no server)."""
    env = {
        "COLUMNS": "200",
        "METRIFY_HOME": str(tmp_path / "home"),
        "METRIFY_POSTGRES_URL": "postgresql://metrify@127.0.0.1:9/none?connect_timeout=2",
    }
    result = CliRunner().invoke(app, ["review", "list", "--reason", "spkie"], env=env)
    assert result.exit_code == 2, result.output
    assert "unknown reason 'spkie'" in result.output
    flags = [code for code, r in REASONS.items() if r.decision == "flag"]
    assert flags and all(code in result.output for code in flags)
    assert "negative_energy" not in result.output  # a reject reason: such a record is never queued
