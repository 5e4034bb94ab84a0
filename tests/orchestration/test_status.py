"""`metrify status`: the figures from one metrics scrape, what the orchestration owes, and what needs
attention; pure parts without an instance, then the command on a real PostgreSQL and Dagster instance."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import RemoteInstigatorOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
    SensorInstigatorData,
)
from dagster._daemon.types import DaemonHeartbeat
from prometheus_client.core import Metric
from typer.testing import CliRunner

from metrify_assets.alerts.store import Alert, raise_alert
from metrify_assets.cli.main import app
from metrify_assets.cli.status import ago
from metrify_assets.contracts import CONTRACTS, METER_READINGS
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.observability.families import gauge
from metrify_assets.orchestration.catchup import SEQ_CURSOR
from metrify_assets.orchestration.instance import job_origin, local_instance
from metrify_assets.orchestration.status import (
    RUNS_READ,
    JobStatus,
    OwedRun,
    SourceStatus,
    Status,
    attention,
    from_scrape,
    gather,
    job_runs,
)
from metrify_assets.orchestration.weekly import DRY_RUN_TAG
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.lake import Lake

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def scrape() -> list[Metric]:
    """A scrape as the collector would give it: two sources with figures, Kafka lag on two partitions."""
    last_record = gauge("metrify_source_last_record_timestamp_seconds")
    last_record.add_metric(["meter_readings"], (NOW - timedelta(hours=3)).timestamp())
    quality = gauge("metrify_quality_score")
    quality.add_metric(["meter_readings"], 97.5)
    dlq = gauge("metrify_dlq_records")
    review = gauge("metrify_review_pending")
    for source in CONTRACTS:
        dlq.add_metric([source], 2.0 if source == "weather_observations" else 0.0)
        review.add_metric([source], 5.0 if source == "meter_readings" else 0.0)
    lag = gauge("metrify_consumer_lag_messages")
    lag.add_metric(["t.meters", "0"], 40.0)
    lag.add_metric(["t.meters", "1"], 2.0)
    alerts = gauge("metrify_open_alerts")
    alerts.add_metric(["grid_state", "critical"], 1.0)
    alerts.add_metric(["run_failure", "critical"], 2.0)
    alerts.add_metric(["grid_state", "warning"], 0.0)
    grid = gauge("metrify_grid_state")
    for node, current in (("N1", "normal"), ("N2", "emergency"), ("N3", "normal")):
        for state in ("normal", "alert", "emergency"):
            grid.add_metric([node, state], 1.0 if state == current else 0.0)
    return [last_record, quality, dlq, review, lag, alerts, grid]


def test_a_scrape_becomes_the_status_per_source() -> None:
    status = Status(at=NOW)
    topics = {source: f"t.{source}" for source in CONTRACTS} | {"meter_readings": "t.meters"}
    from_scrape(status, scrape(), topics, landing_files={"grid_status": 3})
    meters = next(s for s in status.sources if s.source == "meter_readings")
    assert meters.last_record == NOW - timedelta(hours=3)
    assert (meters.quality_score, meters.kafka_lag, meters.review_pending) == (97.5, 42, 5)
    assert meters.last_batch is None  # not in the scrape: unknown, not "now"
    weather = next(s for s in status.sources if s.source == "weather_observations")
    assert (weather.dead_letters, weather.kafka_lag) == (2, 0)  # a topic with no lag series: none
    assert next(s for s in status.sources if s.source == "grid_status").landing_files == 3
    assert status.open_alerts == {"critical": 3}
    assert status.grid_nodes == {"normal": 2, "emergency": 1}


def test_no_kafka_lag_without_kafka_or_when_unreadable() -> None:
    status = Status(at=NOW)
    from_scrape(status, scrape(), topics=None)
    assert {s.kafka_lag for s in status.sources} == {None}
    status = Status(at=NOW, unreadable={"Kafka": "no brokers"})
    from_scrape(status, scrape(), topics={source: "t.meters" for source in CONTRACTS})
    assert {s.kafka_lag for s in status.sources} == {None}


def test_attention_names_what_to_do() -> None:
    quiet = Status(at=NOW, sources=[SourceStatus(source, 0, dead_letters=0) for source in CONTRACTS])
    assert attention(quiet) == []
    busy = Status(
        at=NOW,
        sources=[
            SourceStatus("meter_readings", landing_files=2, kafka_lag=1500, dead_letters=3, review_pending=1)
        ],
        touched_days=[date(2026, 3, 1), date(2026, 3, 2)],
        owed=[OwedRun("refresh_job", date(2026, 3, 1), date(2026, 3, 3))],
        open_alerts={"critical": 1, "warning": 4},
        grid_nodes={"emergency": 2},
        unreadable={"Kafka": "NoBrokersAvailable"},
    )
    lines = attention(busy)
    assert lines == [
        "Kafka could not be read: NoBrokersAvailable",
        "1 critical alert open (`metrify alerts list`)",
        "2 grid nodes in emergency state",
        "refresh_job failed for 2026-03-01..2026-03-03 and is owed: the daemon or the next `metrify run` "
        "runs it again",
        "waiting: 2 landing files, 1,500 Kafka messages, 2 days touched (`metrify run` takes it)",
        "3 dead-letter records a replay could accept wait for a fix, then a replay (`metrify dlq list`; "
        "`metrify dlq discard` closes those no fix will let in). Not counted: those no replay can fix, as a "
        "timestamp without an offset (ingest the file again with --timezone, then `metrify dlq discard "
        "--reason malformed:timestamp_without_offset`)",
        "1 flagged record waits for a reviewer (`metrify review list`)",
    ]
    # With a daemon heartbeating, its sensors may take the waiting work, but only those turned on: a
    # trial waited on a landing file the (stopped) landing sensor never took.
    busy.daemon_heartbeat = NOW - timedelta(seconds=20)
    busy.schedules_on, busy.sensors_on = [], ["alert_delivery_sensor"]
    lines = attention(busy)
    assert (
        "waiting: 2 landing files, 1,500 Kafka messages, 2 days touched (`metrify run` takes it: the daemon's "
        "landing, Kafka and late-days sensors are off (they start off; the UI's Automation page or "
        "`dagster sensor start` turns them on))"
    ) in lines
    assert (
        "the Dagster daemon runs, but no schedule is turned on: nothing refreshes by itself (they start off; "
        "the UI's Automation page or `dagster schedule start` turns them on)"
    ) in lines
    busy.schedules_on, busy.sensors_on = ["daily_job_schedule"], ["kafka_meter_readings_sensor"]
    lines = attention(busy)
    assert (
        "waiting: 2 landing files, 1,500 Kafka messages, 2 days touched (`metrify run` takes it, or the "
        "daemon's kafka_meter_readings_sensor)"
    ) in lines
    assert not any("no schedule" in line for line in lines)
    busy.daemon_heartbeat = NOW - timedelta(minutes=5)
    assert not busy.daemon_running
    assert not any("no schedule" in line for line in attention(busy))  # the daemon's line says why


def test_owed_days_and_ages() -> None:
    assert OwedRun("refresh_job", date(2026, 3, 1), date(2026, 3, 3)).days == "2026-03-01..2026-03-03"
    assert OwedRun("daily_job", date(2026, 3, 5), date(2026, 3, 5)).days == "2026-03-05"
    assert ago(None, NOW) == "-"
    assert ago(NOW - timedelta(seconds=30), NOW) == "2026-12-06 11:59 (30 s ago)"
    assert ago(NOW - timedelta(hours=5), NOW) == "2026-12-06 07:00 (5 h ago)"
    assert ago(NOW - timedelta(days=3), NOW) == "2026-12-03 12:00 (3 d ago)"


@pytest.mark.postgres
def test_status_of_a_real_instance(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("METRIFY_HOME", str(home))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    lake = Lake(str(tmp_path / "lake"))

    def ingest(batch_id: str, day: date, messages: list[str]) -> None:
        spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", day)
        process_batch(spec, messages, [1] * len(messages), lake, pg, pd.Timestamp.now(tz="UTC"))
        pg.commit()

    def reading(day: date, meter: str) -> str:
        return json.dumps(
            {
                "meter_id": meter,
                "reading_start": f"{day}T12:00:00+00:00",
                "interval_minutes": 15,
                "energy_kwh": 0.2,
            }
        )

    ingest("first", date(2026, 3, 1), [reading(date(2026, 3, 1), "M1"), "{not json"])
    # Before any `metrify run`: the days its first run would take (touched, never rebuilt).
    before = json.loads(CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False).stdout)
    assert before["touched_days"] == ["2026-03-01"]
    # `metrify run` has read up to here; what is stamped after it is owed to the next one.
    (seq,) = pg.execute("SELECT max(seq) FROM ops.touched_days").fetchone() or (0,)
    instance = local_instance(resolve_settings())
    instance.run_storage.set_cursor_values({SEQ_CURSOR: str(seq)})
    ingest("later", date(2026, 3, 4), [reading(date(2026, 3, 4), "M1"), reading(date(2026, 3, 5), "M2")])
    ingest("all-bad", date(2026, 3, 7), ["{still not json"])  # stored nothing: its day is not to build
    land_lines(home / "landing", "meter_readings", [reading(date(2026, 3, 6), "M3")])
    raise_alert(
        pg,
        Alert(
            "run_failure",
            "critical",
            "refresh_job",
            "run_failure:refresh_job@2026-03-02",
            "refresh_job failed",
            {"job_name": "refresh_job", "first_partition": "2026-03-02", "last_partition": "2026-03-03"},
        ),
    )
    pg.commit()

    result = CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    meters = next(s for s in found["sources"] if s["source"] == "meter_readings")
    assert meters["landing_files"] == 1
    assert meters["dead_letters"] == 2  # the malformed lines, replayable
    assert meters["kafka_lag"] is None  # Kafka not configured
    assert meters["last_record"].startswith("2026-03-05T12:00:00")
    assert found["touched_days"] == ["2026-03-04", "2026-03-05"]
    assert found["owed"] == [
        {"job": "refresh_job", "first": "2026-03-02", "last": "2026-03-03", "alert_recorded": True}
    ]
    assert found["open_alerts"]["critical"] == 1  # (and a data-quality warning of the malformed batch)
    assert len(found["critical_alerts"]) == 1
    assert found["critical_alerts"][0].endswith(" refresh_job: refresh_job failed")
    assert [job["job"] for job in found["jobs"]] == [
        "refresh_job",
        "daily_marts_job",
        "daily_job",
        "weekly_job",
    ]
    assert {job["last_status"] for job in found["jobs"]} == {None}
    assert found["daemon"] == {"running": False, "last_heartbeat": None}
    assert found["schedules_on"] == found["sensors_on"] == []
    assert "waiting: 1 landing file, 2 days touched (`metrify run` takes it)" in found["attention"]

    # A daemon heartbeats, and a person turns on a schedule and the landing sensor (their stored states,
    # as the UI or `dagster schedule start` records them); one turned off again is not named.
    instance.add_daemon_heartbeat(DaemonHeartbeat(datetime.now(UTC).timestamp(), "SENSOR", None, None))
    for name, kind, on in (
        ("daily_job_schedule", InstigatorType.SCHEDULE, True),
        ("weekly_job_schedule", InstigatorType.SCHEDULE, False),
        ("landing_meter_readings_sensor", InstigatorType.SENSOR, True),
    ):
        data = (
            ScheduleInstigatorData("30 2 * * *", NOW.timestamp())
            if kind == InstigatorType.SCHEDULE
            else SensorInstigatorData()
        )
        origin = RemoteInstigatorOrigin(job_origin(name).repository_origin, name)
        status = InstigatorStatus.RUNNING if on else InstigatorStatus.STOPPED
        instance.add_instigator_state(InstigatorState(origin, kind, status, data))
    found = json.loads(CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False).stdout)
    assert found["daemon"]["running"] is True
    assert found["schedules_on"] == ["daily_job_schedule"]
    assert found["sensors_on"] == ["landing_meter_readings_sensor"]
    assert (
        "waiting: 1 landing file, 2 days touched (`metrify run` takes it, or the daemon's "
        "landing_meter_readings_sensor)"
    ) in found["attention"]
    assert not any("no schedule" in line for line in found["attention"])

    text = CliRunner().invoke(app, ["status"], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert "needs attention" in text.stdout and "refresh_job failed for 2026-03-02..2026-03-03" in text.stdout
    assert "2026-03-04..2026-03-05" in text.stdout
    assert "schedules turned on" in text.stdout and "landing_meter_readings_sensor" in text.stdout


def test_an_unreachable_database_is_said_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    found = json.loads(result.stdout)
    assert found["unreadable"]["PostgreSQL"].startswith("cannot reach the operational PostgreSQL database")
    assert found["attention"][0].startswith("PostgreSQL could not be read: cannot reach")
    # What PostgreSQL holds is unknown, not zero or none (the trial's status said "none" and 0s).
    meters = next(s for s in found["sources"] if s["source"] == "meter_readings")
    assert meters["last_batch"] is None
    assert (meters["landing_files"], meters["dead_letters"], meters["review_pending"]) == (None, None, None)
    assert (found["owed"], found["open_alerts"], found["grid_nodes"], found["touched_days"]) == (None,) * 4
    assert found["lifecycle"] is None
    text = CliRunner().invoke(app, ["status"], catch_exceptions=False)
    assert text.exit_code == 1
    # touched days, lifecycle, runs owed, alerts
    assert text.stdout.count("- (PostgreSQL could not be read)") == 4
    # (Dagster's storage was read: no schedule or sensor is turned on.)
    read_from_postgresql = [line for line in text.stdout.splitlines() if "turned on" not in line]
    assert not any("none" in line for line in read_from_postgresql)


@pytest.mark.postgres
@pytest.mark.kafka
def test_kafka_lag_per_source_and_brokers_down(
    pg: psycopg.Connection, pg_resource: PostgresResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    kafka_resource.ensure_topics(partitions=2)
    with kafka_resource.producer() as producer:
        for n in range(5):
            producer.send(kafka_resource.topic("meter_readings"), key=f"M{n}".encode(), value=b"{}")
        producer.send(kafka_resource.topic("grid_status"), key=b"N1", value=b"{}")
    instance = dg.DagsterInstance.ephemeral()
    status = gather(pg_resource, kafka_resource, tmp_path / "landing", instance, str)
    assert status.unreadable == {}
    assert {s.source: s.kafka_lag for s in status.sources} == {
        "meter_readings": 5,
        "grid_status": 1,
        "weather_observations": 0,
    }
    assert status.daemon_heartbeat is None and [job.last_status for job in status.jobs] == [None] * 4

    down = kafka_resource.model_copy(update={"bootstrap_servers": "127.0.0.1:9"})
    status = gather(pg_resource, down, tmp_path / "landing", instance, lambda err: type(err).__name__)
    assert list(status.unreadable) == ["Kafka"]
    assert {s.kafka_lag for s in status.sources} == {None}  # unknown, not 0
    assert attention(status)[0].startswith("Kafka could not be read: ")


def test_a_lifecycle_dry_run_is_not_the_jobs_last_run() -> None:
    """The trial: after `metrify lifecycle run --dry-run`, status said weekly_job succeeded a minute ago."""
    instance = dg.DagsterInstance.ephemeral()
    real = dg.DagsterRun(job_name="weekly_job", run_id="real", status=dg.DagsterRunStatus.SUCCESS)
    instance.add_run(real)
    dry = dg.DagsterRun(
        job_name="weekly_job", run_id="dry", status=dg.DagsterRunStatus.SUCCESS, tags={DRY_RUN_TAG: "true"}
    )
    instance.add_run(dry)
    newest = instance.get_run_records(dg.RunsFilter(job_name="weekly_job"), limit=1)[0]
    assert newest.dagster_run.run_id == "dry"  # what the status read before
    found = job_runs(instance, "weekly_job").status
    (record,) = instance.get_run_records(dg.RunsFilter(run_ids=["real"]))
    assert found.last_status == "success"
    assert found.last_run_at == datetime.fromtimestamp(record.create_timestamp.timestamp(), UTC)
    assert job_runs(instance, "daily_job").status == JobStatus("daily_job")


def test_one_read_of_a_jobs_runs_gives_its_status_and_failed_runs_as_three_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The status read each downstream job's newest runs, then its newest success, then its newest
    `RUNS_READ` failed runs (for those whose alert is not recorded). The newest runs hold the other
    two while a job has fewer than `RUNS_READ`; past that, a success among them is the newest."""
    instance = dg.DagsterInstance.ephemeral()
    failure, success = dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS

    def add(job: str, run_id: str, status: dg.DagsterRunStatus, dry: bool = False) -> None:
        """A run that started and ended (its end time is the job's last success)."""
        tags = {DRY_RUN_TAG: "true"} if dry else {}
        instance.add_run(dg.DagsterRun(job_name=job, run_id=run_id, tags=tags))
        ended = DagsterEventType.RUN_SUCCESS if status == success else DagsterEventType.RUN_FAILURE
        for kind in (DagsterEventType.RUN_START, ended):
            instance.report_dagster_event(DagsterEvent(kind.value, job_name=job), run_id)

    # weekly_job: a few runs. daily_job: two failures older than its newest RUNS_READ runs.
    for run_id, status, dry in (
        ("w-fail", failure, False),
        ("w-ok", success, False),
        ("w-dry", failure, True),
    ):
        add("weekly_job", run_id, status, dry)
    add("daily_job", "d-fail-1", failure)
    add("daily_job", "d-fail-2", failure)
    for n in range(RUNS_READ - 2):
        add("daily_job", f"d-ok-{n}", success)
    add("daily_job", "d-dry", failure, dry=True)
    add("daily_job", "d-fail-3", failure)

    def three_reads(job: str) -> tuple[str, str, list[str]]:
        """The newest real run, newest real success and real failed runs, as the status read them."""

        def real(runs: dg.RunsFilter) -> list[str]:
            records = instance.get_run_records(runs, limit=RUNS_READ)
            return [r.dagster_run.run_id for r in records if r.dagster_run.tags.get(DRY_RUN_TAG) != "true"]

        newest = real(dg.RunsFilter(job_name=job))
        done = real(dg.RunsFilter(job_name=job, statuses=[success]))
        return newest[0], done[0], real(dg.RunsFilter(job_name=job, statuses=[failure]))

    assert three_reads("daily_job") == (
        "d-fail-3",
        f"d-ok-{RUNS_READ - 3}",
        ["d-fail-3", "d-fail-2", "d-fail-1"],
    )
    reads: list[dg.RunsFilter] = []
    get_run_records = instance.get_run_records

    def counted(filters: dg.RunsFilter, **kwargs: object) -> object:
        reads.append(filters)
        return get_run_records(filters, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(instance, "get_run_records", counted)
    for job, expected_reads in (("weekly_job", 1), ("daily_job", 2)):
        reads.clear()
        found = job_runs(instance, job)
        assert len(reads) == expected_reads, job
        newest, done, failed = three_reads(job)
        assert [r.dagster_run.run_id for r in found.failed] == failed
        (last,) = get_run_records(dg.RunsFilter(run_ids=[newest]))
        (ended,) = get_run_records(dg.RunsFilter(run_ids=[done]))
        assert last.start_time and ended.end_time
        assert found.status == JobStatus(
            job,
            last.dagster_run.status.value.lower(),
            datetime.fromtimestamp(last.start_time, UTC),
            datetime.fromtimestamp(ended.end_time, UTC),
            last_run_id=newest,
        )


@pytest.mark.postgres
def test_a_missing_landing_directory_is_said_when_it_should_exist(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped METRIFY_LANDING_DIR showed 0 landing files and nothing to attend to. A fresh home has
    no landing directory until a file is landed: that is not said; a named one that does not exist is,
    as is the default one missing while the ledger holds batches landed there."""
    home = tmp_path / "home"
    monkeypatch.setenv("METRIFY_HOME", str(home))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("METRIFY_LANDING_DIR", raising=False)

    def landing_lines() -> list[str]:
        result = CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return [line for line in json.loads(result.stdout)["attention"] if "landing directory" in line]

    assert landing_lines() == []  # a fresh home
    mistyped = tmp_path / "nolanding"
    monkeypatch.setenv("METRIFY_LANDING_DIR", str(mistyped))
    assert landing_lines() == [
        f"the landing directory {mistyped} (METRIFY_LANDING_DIR) does not exist: no landing file can be read "
        "from it, so none is counted as waiting; check the path (`metrify simulate`, `metrify ingest` and "
        "the API create it when they land a file)"
    ]
    monkeypatch.delenv("METRIFY_LANDING_DIR")
    pg.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined) VALUES ('landing-grid_status-aaa', 'grid_status', 'landing', 'f', 'raw', 1, 1, 0, 0)"
    )
    pg.commit()
    (line,) = landing_lines()
    assert line.startswith(
        f"the landing directory {home / 'landing'} does not exist, though the ledger holds batches landed there"
    )
    (home / "landing").mkdir(parents=True)
    assert landing_lines() == []
