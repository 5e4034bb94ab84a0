"""The meter registry file is loaded before readings are ingested, so they go on their meters' local days."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS, METER_REGISTRY_FILE
from metrify_assets.definitions import defs as load_defs
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.meters.registry import meter_registry, meter_registry_sensor, unloaded_version
from metrify_assets.orchestration.catchup import Progress, ingest_files, load_changed_registry, pending_files
from metrify_assets.resources import LandingResource, PostgresResource

pytestmark = pytest.mark.postgres
METER = "REG-BERLIN-1"
HEADER = "meter_id,segment,region,weather_station_id,grid_node_id,tariff,timezone,installed_on\n"


def write_registry(landing: Path, timezone: str) -> None:
    path = landing / METER_REGISTRY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{METER},residential,DE-BE,,,,{timezone},\n")


def test_metrify_run_loads_a_changed_registry_before_it_ingests(
    tmp_path: Path, pg_resource: PostgresResource, pg: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new-user trial: a first `metrify run` ingested a Berlin meter's readings before the
    refresh loaded the registry, so its first quarter-hours (23:00 UTC) went on a UTC day of their
    own, which the run then built with no reading in it."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    settings = resolve_settings()
    landing = settings.landing_dir
    write_registry(landing, "Europe/Berlin")
    # 00:15 in Berlin is 23:15 UTC the day before
    line = {
        "meter_id": METER,
        "reading_start": "2026-11-30T00:15:00+01:00",
        "interval_minutes": 15,
        "energy_kwh": 0.2,
    }
    land_lines(landing, METER_READINGS.source, [json.dumps(line)])
    defs, instance = load_defs(), dg.DagsterInstance.ephemeral()
    steps: list[str] = []
    progress = Progress(on_step=steps.append)

    assert load_changed_registry(defs, instance, landing, progress, "cli") == (["meter_registry_job"], [])
    assert steps == [f"loaded {landing / METER_REGISTRY_FILE}"]
    assert load_changed_registry(defs, instance, landing, progress, "cli") == ([], [])  # loaded already
    with psycopg.connect(pg_resource.get_url()) as conn:
        files = pending_files(conn, landing)
    assert ingest_files(defs, instance, files) == {}
    days = pg.execute(
        "SELECT d.day FROM ops.ingest_days d JOIN ops.ingest_ledger l USING (batch_id) WHERE l.origin_ref = %s",
        (files[0].path.name,),
    ).fetchall()
    assert days == [(date(2026, 11, 30),)]


def test_the_sensor_requests_a_load_only_when_the_file_changed(
    tmp_path: Path, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    landing = resolve_settings().landing_dir
    resource = LandingResource(directory=str(landing))
    instance = dg.DagsterInstance.ephemeral()

    def tick() -> dg.RunRequest | dg.SkipReason:
        context = dg.build_sensor_context(instance=instance, resources={"landing": resource})
        return meter_registry_sensor(context)  # type: ignore[return-value]

    assert isinstance(tick(), dg.SkipReason)  # no file
    write_registry(landing, "Europe/Berlin")
    version = unloaded_version(landing, instance)
    request = tick()
    assert isinstance(request, dg.RunRequest) and request.run_key == f"meter_registry-{version}"

    assert load_changed_registry(load_defs(), instance, landing, Progress(), "cli")[0] == [
        "meter_registry_job"
    ]
    assert isinstance(tick(), dg.SkipReason)
    write_registry(landing, "Europe/Paris")  # a new export: another size or time
    registry = landing / METER_REGISTRY_FILE
    os.utime(registry, ns=(registry.stat().st_atime_ns, registry.stat().st_mtime_ns + 1_000_000))
    changed = tick()
    assert isinstance(changed, dg.RunRequest) and changed.run_key != request.run_key


def test_an_unchanged_registry_is_not_written_again(
    tmp_path: Path, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    """The hourly refresh selects `meter_registry`: an hour without a new export reads and writes
    nothing (the row keeps its transaction id and `updated_at`), a new export is loaded."""
    meter = "REG-UNCHANGED-1"
    registry = tmp_path / METER_REGISTRY_FILE
    registry.parent.mkdir(parents=True)
    resources = {"landing": LandingResource(directory=str(tmp_path)), "postgres": pg_resource}
    instance = dg.DagsterInstance.ephemeral()

    def refresh() -> tuple[dict[str, object], tuple[object, ...]]:
        result = dg.materialize([meter_registry], instance=instance, resources=resources)
        metadata = result.asset_materializations_for_node("meter_registry")[0].metadata
        stamp = pg.execute(
            "SELECT xmin::text, updated_at, timezone FROM ops.meters WHERE meter_id = %s", (meter,)
        ).fetchone()
        assert stamp is not None
        return {key: value.value for key, value in metadata.items()}, tuple(stamp)

    registry.write_text(HEADER + f"{meter},residential,DE-BE,,,,Europe/Berlin,\n")
    first, loaded = refresh()
    version = unloaded_version(tmp_path, dg.DagsterInstance.ephemeral())
    assert first["meters_loaded"] == 1 and first["file_version"] == version

    second, kept = refresh()
    assert kept == loaded  # same xmin and updated_at: the row was not rewritten
    assert second["meters_loaded"] == 0 and second["meters_held"] == 1
    assert second["file_version"] == version and second["note"] == (
        f"unchanged, version {version}: {registry} loaded already"
    )
    assert unloaded_version(tmp_path, instance) is None  # the sensor still sees it loaded

    registry.write_text(HEADER + f"{meter},residential,DE-BE,,,,Europe/Paris,\n")
    os.utime(registry, ns=(registry.stat().st_atime_ns, registry.stat().st_mtime_ns + 1_000_000))
    third, changed = refresh()
    assert third["meters_loaded"] == 1 and third["file_version"] == unloaded_version(
        tmp_path, dg.DagsterInstance.ephemeral()
    )
    assert changed[0] != loaded[0] and changed[2] == "Europe/Paris"
