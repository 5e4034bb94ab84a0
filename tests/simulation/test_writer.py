"""Writing a simulation to the landing directory, directly and through `metrify simulate`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from metrify_assets.cli import simulate as simulate_cli
from metrify_assets.contracts import METER_REGISTRY_COLUMNS
from metrify_assets.ingestion.landing import list_landed
from metrify_assets.simulation import SimulationConfig, simulate, write_simulation

SOURCES = ("meter_readings", "grid_status", "weather_observations")


def cli() -> typer.Typer:
    app = typer.Typer()
    simulate_cli.register(app)

    @app.callback()
    def main() -> None:
        """Several commands, so typer keeps the command name."""

    return app


def test_one_file_per_source_and_day_same_names_for_the_same_seed(tmp_path: Path) -> None:
    config = SimulationConfig(meters=10, days=2, fault_rate=0.05, seed=5)
    first = write_simulation(simulate(config), tmp_path / "a", tmp_path / "a-labels.jsonl")
    again = write_simulation(simulate(config), tmp_path / "b", tmp_path / "b-labels.jsonl")
    for source in SOURCES:
        names_a = [f.path.name for f in list_landed(tmp_path / "a", source)]
        names_b = [f.path.name for f in list_landed(tmp_path / "b", source)]
        assert len(names_a) == 2 and names_a == names_b
        assert list_landed(tmp_path / "a", source)[0].seq < list_landed(tmp_path / "a", source)[1].seq
    assert len(first.files) == 6
    landed_lines = sum(len(f.path.read_text().splitlines()) for f in first.files)
    assert landed_lines == sum(first.messages.values()) == sum(again.messages.values())

    labels = [json.loads(line) for line in first.labels_path.read_text().splitlines()]
    assert len(labels) == sum(first.faults.values()) > 0
    meters = pd.read_csv(first.meters_csv)
    assert tuple(meters.columns) == METER_REGISTRY_COLUMNS and len(meters) == 10


def test_simulate_command_lands_files_and_prints_a_summary(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    args = [
        "simulate",
        "--meters",
        "5",
        "--days",
        "1",
        "--start",
        "2026-03-29",
        "--seed",
        "9",
        "--fault-rate",
        "0",
        "--landing-dir",
        str(tmp_path / "landing"),
        "--labels",
        str(labels),
    ]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    assert "meter_readings" in result.output and "faults injected: none" in result.output
    (readings,) = list_landed(tmp_path / "landing", "meter_readings")
    rows = [
        r
        for line in readings.path.read_text().splitlines()
        for r in json.loads(line).get("records", [json.loads(line)])
    ]
    assert len(rows) == 5 * 92  # one DST day, clean
    assert labels.read_text() == ""
    assert (tmp_path / "landing" / "reference" / "meters.csv").is_file()
