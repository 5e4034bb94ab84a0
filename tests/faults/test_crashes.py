"""The run process SIGKILLed at each stage boundary of a Kafka batch, then retried.

Each kill is real (a forked run process kills itself right at the boundary, so the timing is exact);
the retry is the same run config again. Before the transaction commits nothing is visible; after
it, only the Kafka commit is missing. Either way the retry ends in the clean run's state, with the
raw batch written once and every dead letter in the DLQ.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from kafka import TopicPartition

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.orchestration.instance import execute_job
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.migrate import truncate_ops
from tests.faults.conftest import assert_ledger_balances, dead_letters, table_checksum

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]
SOURCE = "weather_observations"
JOB = f"ingest_{SOURCE}_job"

# Each stage: the function the child wraps (module, name) to SIGKILL itself before or after it runs.
STAGES = {
    "after read": ("metrify_assets.ingestion.assets", "read_batch", "after"),
    "after lake write": ("metrify_assets.ingestion.batch", "write_raw", "after"),
    "mid-upsert (rows copied, not merged)": ("metrify_assets.storage.writes", "_copy_frame", "after"),
    "after upsert, before commit": ("metrify_assets.storage.writes", "record_batch", "after"),
    "after commit, before DLQ": ("metrify_assets.ingestion.assets", "dead_letter", "before"),
    "after DLQ, before offset commit": ("metrify_assets.ingestion.assets", "commit_range", "before"),
}


def run_and_kill(defs: dg.Definitions, stage: str, run_config: dict[str, object]) -> None:
    """In a forked child (this warm process: no second import of the code location): wrap the
    stage's function to SIGKILL the process before or after it runs, then execute the job."""
    module, name, when = STAGES[stage]
    target = importlib.import_module(module)
    original = getattr(target, name)

    def killed(*args: object, **kwargs: object) -> object:
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(target, name, killed)
    execute_job(defs, JOB, dg.DagsterInstance.ephemeral(), run_config=run_config)


def observation(station: str, minute: int) -> str:
    return json.dumps(
        {"station_id": station, "observed_at": f"2026-03-29T10:{minute:02d}:00Z", "temperature_c": 9.5 + minute,
         "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip


MESSAGES = [observation(f"W{i % 3}", i) for i in range(24)] + ["{torn", json.dumps({"station_id": "W9"})]


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_run_killed_at_a_stage_boundary_recovers_to_the_clean_state(
    stage: str,
    kafka_defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    tmp_path: Path,
    fault_log: object,
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    produce(kafka_resource, {SOURCE: MESSAGES})
    rng = OffsetRange(topic, 0, 0, len(MESSAGES))

    # The clean run: the same records, versions and batch id, straight through process_batch.
    spec = BatchSpec(CONTRACTS[SOURCE], rng.batch_id, "kafka", rng.batch_id, pd.Timestamp.now().date())
    now = pd.Timestamp.now(tz="UTC")
    process_batch(spec, MESSAGES, list(range(len(MESSAGES))), Lake(str(tmp_path / "clean")), pg, now)
    pg.commit()
    clean = table_checksum(pg, SOURCE)
    truncate_ops(pg)

    child = multiprocessing.get_context("fork").Process(
        target=run_and_kill, args=(kafka_defs, stage, rng.run_config(SOURCE))
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL, f"the run ended with {child.exitcode}, not killed at {stage}"
    killed_at = time.monotonic()
    name = STAGES[stage][1]
    committed_before = name in ("dead_letter", "commit_range")
    assert table_checksum(pg, SOURCE)[0] == (clean[0] if committed_before else 0)  # all or nothing
    with kafka_resource.consumer() as consumer:
        assert consumer.committed(TopicPartition(topic, 0)) is None  # the range stays re-requestable

    execute_job(kafka_defs, JOB, dg.DagsterInstance.ephemeral(), run_config=rng.run_config(SOURCE))
    recovered = time.monotonic() - killed_at

    assert table_checksum(pg, SOURCE) == clean
    held = assert_ledger_balances(pg, len(MESSAGES))
    with kafka_resource.consumer() as consumer:
        assert consumer.committed(TopicPartition(topic, 0)) == rng.end
    quarantined = {int(r[0]) for r in pg.execute("SELECT record_index FROM ops.quarantine").fetchall()}
    letters = [int(h["offset"]) for _, h in dead_letters(kafka_resource, SOURCE)]
    assert set(letters) == quarantined == {24, 25}  # at least once: a kill after the DLQ sends repeats
    assert len(letters) == (4 if name == "commit_range" else 2)
    raw = list((tmp_path / "lake" / "raw" / SOURCE).glob(f"dt=*/{rng.batch_id}.jsonl.gz"))
    assert len(raw) == 1
    fault_log(
        f"run SIGKILLed {stage}",
        "same range re-run (sensor re-request / run retry)",
        recovered,
        [*held, "checksum = clean run", "DLQ = quarantine", "offset committed", "raw written once"],
    )
