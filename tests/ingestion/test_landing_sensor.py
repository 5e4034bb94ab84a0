"""The landing sensor on a real Dagster instance and PostgreSQL: request, ingest, reconcile."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from metrify_assets.definitions import defs as load_defs
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.orchestration.catchup import pending_files
from metrify_assets.orchestration.instance import RunFailedError, execute_job
from metrify_assets.resources import LandingResource, PostgresResource
from metrify_assets.storage.writes import ledger_batch_ids

pytestmark = pytest.mark.postgres
SOURCE = "weather_observations"


def observation(station: str, minute: int) -> str:
    return json.dumps(
        {"station_id": station, "observed_at": f"2026-03-29T10:{minute:02d}:00Z", "temperature_c": 9.5,
         "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip


def test_sensor_requests_new_files_and_re_requests_failed_ones_ever_less_often(
    tmp_path: Path, pg_resource: PostgresResource, pg: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    defs = load_defs()
    landing = LandingResource(directory=str(tmp_path / "landing"))
    resources = {"landing": landing, "postgres": pg_resource}
    sensor = defs.resolve_sensor_def(f"landing_{SOURCE}_sensor")
    instance = dg.DagsterInstance.ephemeral()

    first = land_lines(landing.path, SOURCE, [observation("W1", 0), observation("W1", 10)], seq=1_000)
    second = land_lines(landing.path, SOURCE, [observation("W2", 0)], seq=2_000)
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
    assert [r.run_key for r in tick.run_requests or []] == [first.batch_id, second.batch_id]
    assert tick.cursor == "2000"

    # The first file's run succeeds; the second's fails (its file is gone when the run starts).
    execute_job(defs, f"ingest_{SOURCE}_job", instance, run_config=tick.run_requests[0].run_config,
                tags=tick.run_requests[0].tags)  # fmt: skip
    gone = {
        "ops": {f"ingest_{SOURCE}": {"config": {"landing_file": str(tmp_path / "gone" / second.path.name)}}}
    }
    with pytest.raises(RunFailedError, match="Landing file not found"):
        execute_job(
            defs, f"ingest_{SOURCE}_job", instance, run_config=gone, tags={BATCH_TAG: second.batch_id}
        )

    # The ledger is asked for the landed files' batch ids only: the first file's is held.
    with pg_resource.connect() as conn:
        assert ledger_batch_ids(conn, [first.batch_id, second.batch_id, "never-landed"]) == {first.batch_id}
        assert ledger_batch_ids(conn, []) == set()
        assert [f.batch_id for f in pending_files(conn, landing.path)] == [second.batch_id]

    retry = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources=resources, cursor="2000")
    )
    assert [r.run_key for r in retry.run_requests or []] == [f"{second.batch_id}-retry-1"]
    # The retry fails too: the next request waits a minute, and the tick says so.
    with pytest.raises(RunFailedError, match="Landing file not found"):
        execute_job(defs, f"ingest_{SOURCE}_job", instance, run_config=gone, tags=retry.run_requests[0].tags)
    held = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources=resources, cursor="2000")
    )
    assert not held.run_requests
    assert held.skip_message and f"the next {second.batch_id} (2 failed runs) at " in held.skip_message
    execute_job(defs, f"ingest_{SOURCE}_job", instance, run_config=retry.run_requests[0].run_config,
                tags=retry.run_requests[0].tags)  # fmt: skip

    quiet = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources=resources, cursor="2000")
    )
    assert not quiet.run_requests
    assert quiet.skip_message and "No new" in quiet.skip_message
    with pg_resource.connect() as conn:
        assert conn.execute(
            "SELECT count(*), sum(records_in), sum(accepted) FROM ops.ingest_ledger WHERE source = %s",
            (SOURCE,),
        ).fetchone() == (2, 3, 3)


def test_a_binary_file_and_a_stray_name_stop_nothing_and_lose_nothing(
    tmp_path: Path, pg_resource: PostgresResource, pg: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes that are not UTF-8 are malformed records; a line separator inside a JSON string is part
    of its record; a file under a name the CLI did not give it is skipped, not a failed tick."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    defs = load_defs()
    landing = LandingResource(directory=str(tmp_path / "landing"))
    sensor = defs.resolve_sensor_def(f"landing_{SOURCE}_sensor")
    instance = dg.DagsterInstance.ephemeral()
    separated = json.loads(observation("W\u2028X", 0))
    body = (
        (observation("B1", 0) + "\r\n").encode() + b"\xff\xfe\x00garbage\n" + json.dumps(separated).encode()
    )
    digest = hashlib.sha256(body).hexdigest()[:16]
    (landing.path / SOURCE).mkdir(parents=True)
    (landing.path / SOURCE / f"{5_000:017d}-{digest}.jsonl").write_bytes(body)
    (landing.path / SOURCE / "mydata.jsonl").write_text(observation("S1", 0) + "\n")
    tick = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources={"landing": landing, "postgres": pg_resource})
    )
    [request] = tick.run_requests or []
    execute_job(defs, f"ingest_{SOURCE}_job", instance, run_config=request.run_config, tags=request.tags)
    with pg_resource.connect() as conn:
        ledger = conn.execute(
            "SELECT records_in, accepted, quarantined FROM ops.ingest_ledger WHERE batch_id = %s",
            (request.tags[BATCH_TAG],),
        ).fetchone()
        reasons = conn.execute("SELECT reasons FROM ops.quarantine").fetchall()
        stations = conn.execute("SELECT station_id FROM ops.weather_observations ORDER BY 1").fetchall()
    assert ledger == (3, 2, 1)  # three lines in: two stored, the binary one quarantined
    assert len(reasons) == 1 and "invalid_json" in str(reasons[0])
    assert stations == [("B1",), ("W\u2028X",)]
