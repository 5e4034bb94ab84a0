"""Case 1: Kafka -> PostgreSQL and lake end to end, readings per minute, beside its two raw ceilings.

The same produced messages are (a) consumed by kafka-python doing nothing with them, (b) written as
decoded rows through `upsert_rows` (COPY + merge) into an empty table (each the fastest of three
tries), and (c) ingested by `drain` (sensor planning + one ingest run per offset range, as many at
once as there are cores, in workers forked once GX is imported: the warm start the daemon's run
launcher gives) followed by the archive asset. (c) is reported as a ratio to the lower of (a) and
(b), with and without the archive (a daily job, not part of a micro-batch); the one-off warm-up is
reported beside it. One range is then replayed on empty tables, as an ingest run and stage by
stage, three times (the medians are reported), to show where a run's time goes (the Dagster
overhead included), with the imported heap frozen as in a drain's runs.
The CPU the machine spent on the ceiling and the drain is counted by program (benchmarks/cpu.py):
the broker and PostgreSQL share the cores with Metrify, so the drain's CPU over the cores is the
fewest seconds this work could take here, and the ratio it would give is reported as "at best".
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import dagster as dg
import pandas as pd
from kafka import TopicPartition

from benchmarks.cpu import CpuUse, cpu_use
from benchmarks.harness import CaseResult, stopwatch
from benchmarks.kafka_env import KafkaBench, kafka_bench
from benchmarks.stages import timed_stages
from metrify_assets.contracts import METER_READINGS
from metrify_assets.definitions import defs as load_defs
from metrify_assets.ingestion.batch import process_batch, stored_rows
from metrify_assets.ingestion.decode import decode
from metrify_assets.ingestion.kafka.batches import commit_range, dead_letter, read_batch
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.limits import MAX_BATCH_MESSAGES
from metrify_assets.ingestion.sensors import ingest_job_name
from metrify_assets.lifecycle.assets import warm_tier
from metrify_assets.orchestration.drain import drain, frozen_heap
from metrify_assets.orchestration.instance import execute_job, local_instance
from metrify_assets.partitions import partition_range_tags
from metrify_assets.quality import gx, rules
from metrify_assets.resources import LakeResource
from metrify_assets.simulation import SimulationConfig, simulate
from metrify_assets.storage.migrate import truncate_ops
from metrify_assets.storage.writes import upsert_rows

SOURCE = METER_READINGS.source


# The per-stage profile of one range is the median of this many replays.
PROFILE_TRIES = 3
# Each ceiling is the fastest of this many tries: a single try varied by a third from run to run on
# these machines, and a slow one flattered every ratio to it.
CEILING_TRIES = 3


def per_minute(readings: int, seconds: float) -> int:
    return round(readings / seconds * 60) if seconds > 0 else 0


def consume_all(env: KafkaBench) -> float:
    """Seconds for kafka-python to fetch every message of the topic (assign, seek, poll, discard):
    the fastest of `CEILING_TRIES`, as the other ceiling."""
    topic = env.kafka.topic(SOURCE)
    tries: list[float] = []
    for _ in range(CEILING_TRIES):
        with stopwatch() as elapsed, env.kafka.consumer() as consumer:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            while any(consumer.position(tp) < end[tp] for tp in tps):
                consumer.poll(timeout_ms=1000)
            tries.append(elapsed())
    return min(tries)


def upsert_all(env: KafkaBench, messages: list[str]) -> tuple[float, CpuUse]:
    """Seconds to COPY + merge the accepted decoded rows into an empty table, 50k rows a transaction,
    and the CPU the machine spent on it: the fastest of `CEILING_TRIES`.

    Decoding and the rules run before the clock starts: only the database's share is timed.
    """
    records = decode(METER_READINGS, messages, list(range(len(messages)))).records
    outcome = rules.evaluate(SOURCE, records, pd.Timestamp.now(tz="UTC"))
    rows = records[(outcome.decision != "reject").to_numpy()]
    rows = rows.drop_duplicates(list(METER_READINGS.key), keep="last")
    stored = stored_rows(METER_READINGS, rows, "ceiling", None)
    tries: list[tuple[float, CpuUse]] = []
    with env.postgres.connect() as conn:
        for _ in range(CEILING_TRIES):
            truncate_ops(conn)
            with stopwatch() as elapsed, cpu_use() as use:
                for start in range(0, len(stored), MAX_BATCH_MESSAGES):
                    with conn.transaction():
                        upsert_rows(conn, METER_READINGS, stored.iloc[start : start + MAX_BATCH_MESSAGES])
                tries.append((elapsed(), use))
        truncate_ops(conn)
    return min(tries, key=lambda t: t[0])


def largest_range(env: KafkaBench) -> tuple[OffsetRange, int]:
    with env.postgres.connect() as conn:
        row = conn.execute(
            "SELECT batch_id, records_in FROM ops.ingest_ledger WHERE source = %s "
            "ORDER BY records_in DESC LIMIT 1",
            (SOURCE,),
        ).fetchone()
    if row is None:
        raise RuntimeError("the drain recorded no batch")
    return OffsetRange.parse(row[0]), int(row[1])


def fresh_replay(env: KafkaBench, rng: OffsetRange) -> None:
    """Empty tables and no raw batch in the lake: the replay does a first ingest's work again."""
    with env.postgres.connect() as conn:
        truncate_ops(conn)
    for raw in (Path(env.settings.lake_url) / "raw" / SOURCE).glob(f"dt=*/{rng.batch_id}.jsonl.gz"):
        raw.unlink()


def _profile_once(
    env: KafkaBench, defs: dg.Definitions, instance: dg.DagsterInstance, rng: OffsetRange
) -> tuple[float, dict[str, float]]:
    """`rng` replayed as an ingest run, then stage by stage: the run's seconds and each stage's."""
    fresh_replay(env, rng)
    with stopwatch() as elapsed:
        execute_job(defs, ingest_job_name(SOURCE), instance, run_config=rng.run_config(SOURCE))
    run_s = elapsed()
    fresh_replay(env, rng)
    timings: dict[str, float] = {}
    with stopwatch() as elapsed:
        batch = read_batch(env.kafka, METER_READINGS, rng)
    timings["Kafka read (assign, seek, poll)"] = elapsed()
    lake = LakeResource(url=env.settings.lake_url).get_lake()
    with env.postgres.connect() as conn, timed_stages() as stages, stopwatch() as elapsed:
        result = process_batch(
            batch.spec,
            batch.messages,
            batch.offsets,
            lake,
            conn,
            pd.Timestamp.now(tz="UTC"),
            batch.received_at,
        )
        process_s = elapsed()
    timings.update(stages)
    timings["frames, keys, transaction commit (rest of process_batch)"] = process_s - sum(stages.values())
    with stopwatch() as elapsed:
        dead_letter(env.kafka, batch, result)
    timings[f"DLQ ({len(result.quarantined)} records)"] = elapsed()
    own_group = env.kafka.model_copy(update={"group_id": "bench-profile"})  # the ingest group holds it
    with env.postgres.connect() as conn, stopwatch() as elapsed:
        commit_range(own_group, rng, conn)
    timings["offset commit"] = elapsed()
    return run_s, timings


def profile_range(
    env: KafkaBench, defs: dg.Definitions, instance: dg.DagsterInstance
) -> list[dict[str, object]]:
    """One range as an ingest run, then the same work called directly, each stage timed: the median
    of `PROFILE_TRIES` of each (one try's noise could exceed the Dagster overhead it measures)."""
    rng, readings = largest_range(env)
    tries = [_profile_once(env, defs, instance, rng) for _ in range(PROFILE_TRIES)]
    run_s = statistics.median(run for run, _ in tries)
    timings = {stage: statistics.median(t[stage] for _, t in tries) for stage in tries[0][1]}
    timings["Dagster run overhead (run - direct)"] = run_s - sum(timings.values())
    rows: list[dict[str, object]] = [
        {
            "stage": stage,
            "seconds": round(seconds, 3),
            "share of run %": round(100 * seconds / run_s, 1),
            "readings/min alone": per_minute(readings, seconds),
        }
        for stage, seconds in sorted(timings.items(), key=lambda kv: -kv[1])
    ]
    rows.append({"stage": f"ingest run of {rng.batch_id}", "seconds": round(run_s, 3),
                 "share of run %": 100.0, "readings/min alone": per_minute(readings, run_s)})  # fmt: skip
    return rows


DAYS = 2


def throughput(scale: float) -> CaseResult:
    meters = max(20, int(1000 * scale))
    with kafka_bench("throughput") as env:
        messages = simulate(SimulationConfig(meters=meters, days=DAYS, fault_rate=0.005, seed=1)).messages[
            SOURCE
        ]
        with stopwatch() as elapsed:
            produce(env.kafka, {SOURCE: messages}, backfill=True)  # simulated history
        produce_s = elapsed()
        consumer_s = consume_all(env)
        upsert_s, ceiling_cpu = upsert_all(env, messages)
        instance = local_instance(env.settings)
        defs = load_defs()
        with stopwatch() as elapsed:
            gx.warm_up([f"raw_{SOURCE}", f"validated_{SOURCE}"])
        warm_s = elapsed()
        workers = os.cpu_count() or 1
        with stopwatch() as elapsed, cpu_use() as drain_cpu:
            summary = drain(defs, instance, env.kafka, env.postgres, sources=[SOURCE], workers=workers)
        drain_s = elapsed()
        with env.postgres.connect() as conn:
            row = conn.execute("SELECT min(day), max(day) FROM ops.ingest_days").fetchone()
        assert row is not None and row[0] is not None, "the drain recorded no days"
        # the archive of the days the drained readings fall on, as one run
        with stopwatch() as elapsed, cpu_use() as archive_cpu:
            dg.materialize(
                [warm_tier],
                instance=instance,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                resources={"postgres": env.postgres, "lake": LakeResource(url=env.settings.lake_url)},
                tags=partition_range_tags(row[0], row[1]),
            )
        archive_s = elapsed()
        with frozen_heap():  # as a drain's runs execute
            rows = profile_range(env, defs, instance)
    readings = summary.records
    rates = {
        "consumer": per_minute(readings, consumer_s),
        "upsert": per_minute(readings, upsert_s),
        "e2e": per_minute(readings, drain_s + archive_s),
        "ingest": per_minute(readings, drain_s),
        # the same CPU spread over every core all the time: what the work allows on this machine
        "e2e floor": per_minute(readings, drain_cpu.floor_seconds + archive_cpu.floor_seconds),
    }
    lower = min(rates["consumer"], rates["upsert"])
    slowest = rows[0]
    return CaseResult(
        name="throughput",
        title="1. Throughput Kafka -> PostgreSQL + lake",
        figures={
            "meters x days": f"{meters} x {DAYS}",
            "messages": len(messages),
            "readings": readings,
            "accepted": summary.accepted,
            "ingest runs": summary.batches,
            "produce s": round(produce_s, 1),
            "ceiling: kafka-python consume readings/min": rates["consumer"],
            "ceiling: PostgreSQL COPY + upsert readings/min": rates["upsert"],
            "warm-up s (GX import, once per process)": round(warm_s, 1),
            "drain workers": workers,
            "end to end s (drain + archive)": f"{drain_s:.1f} + {archive_s:.1f}",
            "end to end readings/min": rates["e2e"],
            "end to end / lower ceiling": round(rates["e2e"] / lower, 3) if lower else 0.0,
            "ingest (drain) readings/min": rates["ingest"],
            "ingest / lower ceiling": round(rates["ingest"] / lower, 3) if lower else 0.0,
            "ceiling: COPY + upsert CPU s (PostgreSQL + Python)": (
                f"{ceiling_cpu.by_program.get('PostgreSQL', 0.0):.2f} + {ceiling_cpu.by_program.get('Python', 0.0):.2f}"
            ),
            "drain CPU s": round(drain_cpu.busy, 2),
            "drain CPU s by program": ", ".join(f"{k} {v:.2f}" for k, v in drain_cpu.by_program.items()),
            "drain cores busy %": round(100 * drain_cpu.busy_share),
            "end to end / lower ceiling at best (drain + archive CPU over every core)": (
                round(rates["e2e floor"] / lower, 3) if lower else 0.0
            ),
            "slowest stage of one ingest run": f"{slowest['stage']} ({slowest['share of run %']} %)",
        },
        rows=rows,
    )
