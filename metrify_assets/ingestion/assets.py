"""Raw and validated assets per source: one run = one batch (a landing file or a Kafka range).

`raw_<source>` is the immutable batch in the lake; `validated_<source>` is its accepted rows merged
into `ops.<table>`. One op produces both, because the order of writes is the recovery contract (see
`ingestion.batch`). The GX suite on the validated rows is a blocking check: it runs before the write.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
from pydantic import Field

from metrify_assets.contracts import CONTRACTS, SourceContract
from metrify_assets.errors import RETRY_POLICY, classified
from metrify_assets.ingestion.batch import (
    BatchResult,
    BatchSpec,
    SuiteFailedError,
    process_batch,
    refresh_cache,
)
from metrify_assets.ingestion.decode import Message
from metrify_assets.ingestion.kafka.batches import KafkaBatch, commit_range, dead_letter, read_batch
from metrify_assets.ingestion.kafka.expired import Expired, report_expired
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.landing import LandedFile, landed_messages
from metrify_assets.ingestion.provenance import Origin, read_origin
from metrify_assets.metadata import figure
from metrify_assets.observability.stages import BatchTrace, trace_batch
from metrify_assets.quality.checks import rule_counts_metadata, suite_check_result
from metrify_assets.resources import LakeResource, PostgresResource, QualityResource, RedisResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.storage import writes
from metrify_assets.teams import DATA_ENGINEERING, owner

OWNERS = [owner(DATA_ENGINEERING)]


class IngestBatchConfig(dg.Config):
    """Which batch this run processes. Set by the landing (or Kafka) sensor, not by hand."""

    landing_file: str = Field(
        default="", description="Path of the landing file (<landing>/<source>/<seq>-<digest>.jsonl)."
    )
    topic: str = Field(default="", description="Kafka topic of the offset range (instead of a file).")
    partition: int = Field(default=0, description="Kafka partition of the range.")
    start: int = Field(default=0, description="First offset of the range.")
    end: int = Field(default=0, description="Offset after the range's last (committed when done).")


def raw_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"raw_{source}")


def validated_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"validated_{source}")


def landing_spec(contract: SourceContract, landed: LandedFile) -> BatchSpec:
    """A landing file's batch: content-addressed id, lake day from its landing time."""
    return BatchSpec(
        contract=contract,
        batch_id=landed.batch_id,
        origin="landing",
        origin_ref=landed.path.name,
        dt=landed.landed_on,
    )


@dataclass(frozen=True)
class LoadedBatch:
    """The run's batch as read: what `process_batch` needs, and the Kafka range to settle after it."""

    spec: BatchSpec
    messages: Sequence[Message]
    versions: list[int]
    received_at: pd.Timestamp  # when it arrived (timeliness is measured to it)
    backfill: bool | list[bool]  # declared history: for the batch, or per message
    kafka_batch: KafkaBatch | None = None
    origin: Origin | None = None  # the file `metrify ingest` read a landing file from (provenance.py)


def _load(contract: SourceContract, config: IngestBatchConfig, kafka: KafkaResource) -> LoadedBatch:
    """The run's batch: a Kafka offset range or a landing file."""
    if config.topic:
        rng = OffsetRange(config.topic, config.partition, config.start, config.end)
        batch = read_batch(kafka, contract, rng)
        return LoadedBatch(
            batch.spec, batch.messages, batch.offsets, batch.received_at, batch.backfill, batch
        )
    if not config.landing_file:
        raise dg.Failure(
            f"No batch given. Runs of ingest_{contract.source} are requested by the landing or Kafka "
            "sensor with `landing_file` or `topic`/`partition`/`start`/`end` set; to ingest by hand, "
            "use `metrify ingest` and let the sensor pick it up.",
            allow_retries=False,
        )
    landed = LandedFile.from_path(Path(config.landing_file))
    if not landed.path.is_file():
        raise dg.Failure(
            f"Landing file not found: {landed.path}. Retention deletes a landing file `landing_days` "
            "after it landed once its batch is ingested (docs/lifecycle.md); the batch's raw copy in the "
            "lake holds its messages (`metrify restore --using raw` replays it).",
            allow_retries=False,
        )
    messages = landed_messages(landed.path.read_bytes())
    received_at = pd.Timestamp(landed.seq, unit="us", tz="UTC")
    return LoadedBatch(
        landing_spec(contract, landed),
        messages,
        [landed.seq] * len(messages),
        received_at,
        landed.backfill,
        origin=read_origin(landed.path),
    )


def _identify(stages: BatchTrace, loaded: LoadedBatch) -> None:
    """The batch's id on its span and log lines, and for a Kafka range the offsets it covers (an API
    request sent to Kafka names its offset: docs/operations.md#traces)."""
    attributes: dict[str, str | int] = {"metrify.origin": loaded.spec.origin}
    if loaded.kafka_batch is not None:
        rng = loaded.kafka_batch.range
        attributes |= {
            "metrify.kafka.topic": rng.topic,
            "metrify.kafka.partition": rng.partition,
            "metrify.kafka.offset_start": rng.start,
            "metrify.kafka.offset_end": rng.end,
        }
    stages.identify(loaded.spec.batch_id, attributes)


def ingest_batch(
    contract: SourceContract,
    config: IngestBatchConfig,
    run_id: str,
    postgres: PostgresResource,
    lake: LakeResource,
    kafka: KafkaResource,
    quality: QualityResource,
    redis: RedisResource,
) -> tuple[LoadedBatch, BatchResult]:
    """Read, process and settle the run's batch under its span, each stage timed (docs/operations.md);
    raises `SuiteFailedError` when the guard refuses it."""
    with trace_batch(contract.source, run_id=run_id) as stages:
        with stages.stage("read"):
            loaded = _load(contract, config, kafka)
        _identify(stages, loaded)
        spec, kafka_batch = loaded.spec, loaded.kafka_batch
        with postgres.connect() as conn:
            if kafka_batch is not None and kafka_batch.expired is not None:
                _refuse_a_shrunken_replay(conn, spec, kafka_batch.expired)
            result = process_batch(
                spec,
                loaded.messages,
                loaded.versions,
                lake.get_lake(),
                conn,
                now=pd.Timestamp.now(tz="UTC"),
                received_at=loaded.received_at,
                run_id=run_id,
                alert_threshold=quality.alert_threshold,
                backfill=loaded.backfill,
                stages=stages,
            )
            if loaded.origin is not None:  # in the batch's transaction
                writes.record_source_file(conn, spec.batch_id, loaded.origin.file, loaded.origin.lines)
            with stages.stage("commit"):
                conn.commit()
            cache = redis.get_cache()
            if cache is not None:
                refresh_cache(cache, conn, result)
                cache.close()
        if kafka_batch is not None:  # only after the DB transaction committed: see ingestion.batch
            with stages.stage("dlq"):
                dead_letter(kafka, kafka_batch, result)
            # One transaction holds the partition's commit lock and records the row's dlq and commit times.
            with postgres.connect() as conn:
                with stages.stage("commit"):
                    commit_range(kafka, kafka_batch.range, conn)
                writes.mark_delivered(conn, spec.batch_id, stages.elapsed(("dlq", "commit")))
                if kafka_batch.expired is not None:
                    report_expired(conn, [kafka_batch.expired])
    return loaded, result


def _refuse_a_shrunken_replay(conn: psycopg.Connection, spec: BatchSpec, expired: Expired) -> None:
    """A range ingested before and re-run by hand after retention deleted some of it would rewrite
    its ledger row from what is left: refused (its raw batch in the lake still holds every message)."""
    row = conn.execute(
        "SELECT records_in, raw_key FROM ops.ingest_ledger WHERE batch_id = %s", (spec.batch_id,)
    ).fetchone()
    if row is not None:
        raise dg.Failure(
            f"{spec.batch_id} was ingested before ({row[0]:,} records in ops.ingest_ledger) and Kafka no "
            f"longer holds its offsets {expired.start}..{expired.end - 1}: re-running it would rewrite its "
            f"ledger row from what is left. Its raw batch in the lake holds every message: {row[1]}",
            allow_retries=False,
        )


def _batch_metadata(result: BatchResult) -> dict[str, dg.MetadataValue]:
    ledger = result.ledger
    return {
        "batch_id": dg.MetadataValue.text(ledger.batch_id),
        "records_in": dg.MetadataValue.int(ledger.records_in),
        "accepted": dg.MetadataValue.int(ledger.accepted),
        "flagged": dg.MetadataValue.int(ledger.flagged),
        "quarantined": dg.MetadataValue.int(ledger.quarantined),
        "quality_score": figure(result.quality.score),
        **{f"quality_{k}": figure(v) for k, v in result.quality.dimensions().items()},
        "backfill_records": dg.MetadataValue.int(result.quality.backfill),
        **rule_counts_metadata(result.outcome),
        **(
            {
                "replaces": dg.MetadataValue.text(", ".join(result.withdrawal.replaces)),
                "superseded": dg.MetadataValue.int(result.withdrawal.superseded),
                "withdrawn": dg.MetadataValue.int(result.withdrawal.withdrawn),
            }
            if result.withdrawal
            else {}
        ),
    }


def build_ingest_asset(contract: SourceContract) -> dg.AssetsDefinition:
    source = contract.source
    raw, validated = raw_key(source), validated_key(source)

    @dg.multi_asset(
        name=f"ingest_{source}",
        specs=[
            dg.AssetSpec(
                raw,
                description=f"Immutable raw batches of {source} in the lake, verbatim (unknown fields kept).",
                group_name="ingestion",
                kinds={"s3", "json"},
                owners=OWNERS,
                metadata={"lake_prefix": f"raw/{source}/"},
            ),
            dg.AssetSpec(
                validated,
                deps=[raw],
                description=(
                    f"Accepted {source} rows merged by natural key into ops.{contract.table}; rejected rows "
                    "in ops.quarantine with reasons, flagged rows in ops.review_queue."
                ),
                group_name="ingestion",
                kinds={"postgres", "pandas"},
                owners=OWNERS,
                metadata={
                    "table": f"ops.{contract.table}",
                    "natural_key": ", ".join(contract.key),
                },
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                f"gx_raw_{source}",
                asset=raw,
                description=f"GX suite raw_{source} on the batch's decoded records: at least one record, "
                "the contract's columns present, the natural key not null. A failure means an empty batch "
                "or records that decode without their columns or keys; it blocks nothing: the batch still "
                "goes through the rules, which quarantine the bad records.",
            ),
            dg.AssetCheckSpec(
                f"gx_validated_{source}",
                asset=validated,
                blocking=True,
                description=f"GX suite validated_{source} on the records the rules accepted, before the write "
                f"to ops.{contract.table}: keys not null and unique, values within their ranges. A failure "
                "means the rules let through what the guard refuses (a bug): nothing is written and the run "
                "fails without retry.",
            ),
        ],
        op_tags={"metrify/source": source},
        retry_policy=RETRY_POLICY,
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        config: IngestBatchConfig,
        postgres: PostgresResource,
        lake: LakeResource,
        kafka: KafkaResource,
        quality: QualityResource,
        redis: RedisResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with classified(f"ingest_{source}"):
            try:
                loaded, result = ingest_batch(
                    contract, config, context.run.run_id, postgres, lake, kafka, quality, redis
                )
            except SuiteFailedError as err:
                # The rules let through what the guard refuses: a gap in the rules, so a bug.
                yield suite_check_result(err.result, asset_key=validated.to_user_string())
                raise dg.Failure(str(err), allow_retries=False) from err
            spec, messages = loaded.spec, loaded.messages
        expired = loaded.kafka_batch.expired if loaded.kafka_batch else None
        if expired is not None:
            context.log.error(expired.alert.summary)
        context.log.info(
            f"{spec.batch_id}: {result.ledger.records_in} in, {result.ledger.accepted} accepted "
            f"({result.ledger.flagged} flagged), {result.ledger.quarantined} quarantined"
        )
        if result.withdrawal is not None:
            w = result.withdrawal
            context.log.info(
                f"{spec.batch_id} replaces {', '.join(w.replaces)}: {w.superseded} of their rows stored again, "
                f"{w.withdrawn} withdrawn (keys the new file does not store), {len(w.days)} days to rebuild"
            )
        yield dg.MaterializeResult(
            asset_key=raw,
            metadata={
                "uri": dg.MetadataValue.path(result.raw_uri),
                "batch_id": dg.MetadataValue.text(spec.batch_id),
                "messages": dg.MetadataValue.int(len(messages)),
                "written": dg.MetadataValue.bool(result.raw_written),
                **({"expired_messages": dg.MetadataValue.int(expired.messages)} if expired else {}),
            },
        )
        yield suite_check_result(result.raw_suite, asset_key=raw.to_user_string())
        yield suite_check_result(
            result.validated_suite,
            asset_key=validated.to_user_string(),
            blocking_description=f"Guards the write to ops.{contract.table}.",
        )
        yield dg.MaterializeResult(asset_key=validated, metadata=_batch_metadata(result))

    return _ingest


INGEST_ASSETS = {source: build_ingest_asset(contract) for source, contract in CONTRACTS.items()}
