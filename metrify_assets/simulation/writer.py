"""Putting a simulation where the pipeline picks it up: landing files, registry CSV, labels."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from metrify_assets.contracts import CONTRACTS, METER_REGISTRY_FILE
from metrify_assets.ingestion.landing import LandedFile, land_batches
from metrify_assets.simulation.config import Simulation, SimulationConfig


@dataclass(frozen=True)
class WriteSummary:
    """What `write_simulation` wrote."""

    files: list[LandedFile]
    messages: dict[str, int]  # per source
    faults: dict[str, int]  # per fault kind
    meters_csv: Path | None  # None: the registry was not written
    labels_path: Path


def landing_seq(config: SimulationConfig, day: date) -> int:
    """A deterministic landing `seq` for a simulated day: microseconds since the epoch at that day's
    UTC midnight, plus the seed (mod 1e6) so runs with other seeds do not tie on record_version (a
    day of more than 50,000 messages takes the next seqs too: seeds that close may tie)."""
    midnight = datetime.combine(day, time(0), tzinfo=UTC)
    return int(midnight.timestamp()) * 1_000_000 + config.seed % 1_000_000


def write_simulation(
    sim: Simulation,
    landing_dir: Path,
    labels_path: Path,
    sources: Collection[str] = tuple(CONTRACTS),
    registry: bool = True,
    backfill: bool = True,
) -> WriteSummary:
    """Land each simulated day of each of `sources` (`land_batches`: files of at most 50,000 messages),
    the registry CSV (unless `registry` is false: a head-end without one) and the labels (JSON Lines).

    The files are declared a backfill unless `backfill` is false: simulated days are history whose
    landing times are made up, so scoring them for timeliness would measure nothing real."""
    unknown = set(sources) - set(CONTRACTS)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; choose from {sorted(CONTRACTS)}")
    files = [
        landed
        for source, days in sim.messages_by_day.items()
        if source in sources
        for day, lines in sorted(days.items())
        for landed in land_batches(
            landing_dir, source, lines, seq=landing_seq(sim.config, day), backfill=backfill
        )
    ]
    meters_csv: Path | None = None
    if registry:
        meters_csv = landing_dir / METER_REGISTRY_FILE
        meters_csv.parent.mkdir(parents=True, exist_ok=True)
        sim.meters.to_csv(meters_csv, index=False)
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels_path.write_text("".join(json.dumps(entry) + "\n" for entry in sim.labels))
    return WriteSummary(
        files=files,
        messages={source: len(lines) for source, lines in sim.messages.items() if source in sources},
        faults=dict(Counter(str(entry["kind"]) for entry in sim.labels)),
        meters_csv=meters_csv,
        labels_path=labels_path,
    )
