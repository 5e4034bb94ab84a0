"""Read a CSV, JSON Lines or Parquet file, map its columns to the source's contract, and land the records
(or send them to Kafka with --to kafka).

`metrify ingest SOURCE PATH`: the file's rows become contract v1 messages, landed as a file (default)
or sent to the source's Kafka topic (`--to kafka`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from metrify_assets.cli.console import command_console
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion.limits import MAX_BATCH_MESSAGES
from metrify_assets.ingestion.preset_names import PRESETS

# The reason prefix of a local time that happens twice (readers/mapping.py's AMBIGUOUS; not imported
# here, which would import pandas for every command).
AMBIGUOUS = "ambiguous_local_time_in_"
# An example of a rejected number written with a decimal comma: `row 1: invalid_energy_kwh ('0,5')`.
_DECIMAL_COMMA = re.compile(r"invalid_\w+ \('[+-]?[0-9]*,[0-9]+'\)$")
# The reason prefix of a timestamp without an offset and no --timezone (readers/mapping.py).
NO_OFFSET = "no_offset_in_"
# Reasons that say how the file was read (its options), not what a record holds: a file whose every
# row is rejected for them was read wrongly, and is not landed unless --force says so.
MAPPING_REASONS = (NO_OFFSET, "invalid_", "missing_", AMBIGUOUS, "nonexistent_local_time_in_")

if TYPE_CHECKING:
    from metrify_assets.ingestion.readers.result import IngestResult
    from metrify_assets.resources.kafka import KafkaResource


def _send(
    console: Console, kafka: KafkaResource, source: str, lines: list[str], backfill: bool
) -> tuple[int, list[BaseException]]:
    """Produce `lines` to the source's topic, keyed like `metrify simulate --to kafka`: one message of
    one meter (grid node, station) each, a line of several split; the bar counts acknowledged messages.
    Returns the messages sent and the errors of those never acknowledged."""
    from metrify_assets.ingestion.kafka.produce import BACKFILL_HEADER, line_messages

    topic = kafka.topic(source)
    headers = [(BACKFILL_HEADER, b"1")] if backfill else None
    messages = [message for line in lines for message in line_messages(source, line)]
    failed: list[BaseException] = []
    with (
        Progress(
            *Progress.get_default_columns(), MofNCompleteColumn(), console=console, transient=True
        ) as bar,
        kafka.producer() as producer,  # idempotent: a retried batch is not written twice
    ):
        task = bar.add_task(f"sending to {topic}", total=len(messages))
        for key, value in messages:
            future = producer.send(topic, key=key, value=value, headers=headers)
            future.add_callback(lambda _: bar.advance(task))
            future.add_errback(failed.append)
    return len(messages), failed


def _kafka(source: str, topic: str | None) -> KafkaResource:
    """Kafka as configured, with `topic` for the source when given; a usage error when not configured."""
    from metrify_assets.resources.build import kafka_resource

    settings = resolve_settings()
    if not settings.uses_kafka:
        raise typer.BadParameter(
            "--to kafka needs KAFKA_BOOTSTRAP_SERVERS (for a local broker: `metrify kafka broker`)",
            param_hint="--to",
        )
    kafka = kafka_resource(settings)
    return kafka.model_copy(update={"topics": {**kafka.topics, source: topic}}) if topic else kafka


def _to_kafka(console: Console, kafka: KafkaResource, source: str, lines: list[str], backfill: bool) -> None:
    """Send, then say how it went; exit 1 when the brokers are unreachable or refuse a message."""
    from kafka.errors import KafkaError

    began = time.monotonic()
    try:
        kafka.ensure_topics()  # as `metrify simulate --to kafka`: missing topics get 3 partitions
        sent, failed = _send(console, kafka, source, lines, backfill)
    except KafkaError as err:
        console.print(f"could not send to Kafka at {kafka.bootstrap_servers}: {type(err).__name__}: {err}")
        raise typer.Exit(code=1) from err
    if failed:
        console.print(
            f"{len(failed):,} of {sent:,} messages were not acknowledged by {kafka.bootstrap_servers} "
            f"(first: {type(failed[0]).__name__}: {failed[0]}); sending the file again is safe: records "
            "are stored by natural key"
        )
        raise typer.Exit(code=1)
    took = time.monotonic() - began
    console.print(
        f"sent {sent:,} messages to {kafka.topic(source)} at {kafka.bootstrap_servers} in {took:.1f} s"
    )


def _print_result(
    console: Console, path: Path, source: str, result: IngestResult, verb: str, refused: bool = False
) -> None:
    """The counts, then where the first rejected rows are: they go along with the records (unless the
    file is `refused`), so the pipeline quarantines them with a reason and nothing read is lost
    without a trace."""
    table = Table(title=f"{path.name} -> {source}")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("rows read", f"{result.rows_read:,}")
    table.add_row("records", f"{result.records:,}")
    for label, counts in (("rejected: ", result.rejected), ("skipped: ", result.skipped), ("", result.notes)):
        for name, count in counts.items():
            table.add_row(f"{label}{name}", f"{count:,}")
    console.print(table)
    if result.rejected:
        rejected = sum(result.rejected.values())
        first = f"; the first {len(result.examples)}:" if rejected > len(result.examples) else ":"
        if refused:
            console.print(f"{rejected:,} rejected {'row' if rejected == 1 else 'rows'}{first}")
        else:
            console.print(
                f"{rejected:,} rejected {'row is' if rejected == 1 else 'rows are'} {verb} as given too: "
                f"the pipeline quarantines {'it' if rejected == 1 else 'them'} with the reason "
                f"(`metrify dlq list`){first}"
            )
        for example in result.examples:
            console.print(f"  {example}", highlight=False, markup=False)
        if any(_DECIMAL_COMMA.search(example) for example in result.examples):
            console.print("numbers with a decimal comma (0,5): --decimal-comma reads them")
        no_offset = sum(n for reason, n in result.rejected.items() if reason.startswith(NO_OFFSET))
        if no_offset * 2 >= result.rows_read:
            console.print(
                "timestamps without a UTC offset: --timezone ZONE (the IANA zone they were written in, "
                "e.g. Europe/Berlin) reads them as local time; without it they are never guessed"
            )
        if any(reason.startswith(AMBIGUOUS) for reason in result.rejected):
            console.print(
                "local times that happen twice when the clocks go back: --ambiguous earlier|later takes "
                "them as the first or the second"
            )


def _record_replacement(console: Console, source: str, path: Path, lines: list[str], refs: list[str]) -> None:
    """Check the batches `refs` name and record that the file's last landing file replaces them, committed
    before anything lands (so the sensor cannot ingest the file without it); exit 2 when one cannot be
    replaced. The last file: by the time it is ingested the earlier ones have stored their keys, so only
    keys the whole file does not hold are withdrawn."""
    from metrify_assets.cli.audit import cli_caller, who
    from metrify_assets.cli.db import connect
    from metrify_assets.ingestion import replacements
    from metrify_assets.ingestion.landing import planned_batch_ids
    from metrify_assets.lifecycle.holds import covering
    from metrify_assets.lifecycle.tiers import holding

    batch_id = planned_batch_ids(source, lines)[-1]
    with connect(resolve_settings()) as conn:
        try:
            replaced = [replacements.resolve(conn, source, ref) for ref in refs]
            for old in replaced:
                if old.first_day is None or old.last_day is None:
                    continue
                held = holding(covering(conn, source, old.first_day, old.last_day), source)
                if held:
                    raise replacements.ReplaceError(
                        f"--replaces {old.batch_id}: its days {old.first_day}..{old.last_day} are under a legal "
                        f"hold (hold {held[0].hold_id}: {held[0].reason}), and withdrawing deletes readings: "
                        "release the hold first (`metrify holds release`)"
                    )
            replacements.request(conn, source, batch_id, path.name, replaced, cli_caller(who()))
        except replacements.ReplaceError as err:
            raise typer.BadParameter(str(err), param_hint="--replaces") from err
        conn.commit()
    names = ", ".join(f"{old.batch_id} ({old.origin_ref}, {old.accepted:,} accepted)" for old in replaced)
    console.print(
        f"replaces {names}: when `metrify run` ingests batch {batch_id}, the readings of the earlier "
        "batches it does not hold again are withdrawn and their days rebuilt"
    )


def misread(result: IngestResult) -> bool:
    """Whether every row was rejected for how the file was read (`MAPPING_REASONS`): landing it would
    quarantine the whole file, which no replay fixes (ingesting it again with the right options does)."""
    return (
        result.records == 0
        and bool(result.rejected)
        and all(reason.startswith(MAPPING_REASONS) for reason in result.rejected)
    )


def _said_landed_before(
    console: Console, path: Path, source: str, landing_dir: Path, lines: list[str]
) -> bool:
    """Whether the landing directory holds these very lines already (`landed_before`), which it then
    says, with whether `metrify run` ingested them: the file is not landed again, since the same
    content is the same batch, which a run ingests once."""
    from metrify_assets.cli.db import connect
    from metrify_assets.ingestion.landed_before import landed_before
    from metrify_assets.ingestion.provenance import read_origin

    earlier = landed_before(landing_dir, source, lines, lambda: connect(resolve_settings()))
    if earlier is None:
        return False
    for twin in earlier:
        if twin.ingested_at is not None:
            state = f"ingested {twin.ingested_at:%Y-%m-%d %H:%M} UTC"
        elif twin.unread:
            state = f"whether it was ingested could not be read ({twin.unread})"
        else:
            state = "not ingested yet: `metrify run` takes it"
        origin = read_origin(twin.landed.path)
        read_from = f" from {origin.file}" if origin is not None else ""
        console.print(
            f"{path.name} was landed before with the same records: {twin.landed.path}{read_from} "
            f"(batch {twin.landed.batch_id}), {state}"
        )
    console.print(
        "not landed again: the same content is the same batch, which is ingested once (to run its "
        "rejected rows again after a fix: `metrify dlq replay`)"
    )
    return True


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest_cmd(
        source: Annotated[str, typer.Argument(help="meter_readings, grid_status or weather_observations.")],
        path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file to ingest.")],
        fmt: Annotated[
            str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from the extension).")
        ] = None,
        mapping: Annotated[
            list[str] | None, typer.Option("--map", help="FIELD=COLUMN: read a contract field from a column.")
        ] = None,
        constants: Annotated[
            list[str] | None, typer.Option("--set", help="FIELD=VALUE: the same value for every record.")
        ] = None,
        preset: Annotated[str | None, typer.Option(help=f"A known layout: {', '.join(PRESETS)}.")] = None,
        meter_id: Annotated[
            str | None,
            typer.Option(help="meter_id for a preset's readings (default: UCI-HOUSEHOLD-1, OPENSTEF-307)."),
        ] = None,
        station_id: Annotated[
            str | None,
            typer.Option(help="station_id for a preset's weather observations (default: OPENSTEF-307)."),
        ] = None,
        timezone: Annotated[
            str | None, typer.Option(help="IANA timezone of timestamps without an offset.")
        ] = None,
        ambiguous: Annotated[
            str | None,
            typer.Option(
                help="earlier or later: the instant a local time that happens twice (when the clocks go "
                "back) is taken as; without it such rows are rejected (ambiguous_local_time_in_<field>)."
            ),
        ] = None,
        delimiter: Annotated[
            str,
            typer.Option(
                "--delimiter",
                help="A CSV's field separator: one character, e.g. ';', or tab ('tab' or '\\t').",
            ),
        ] = ",",
        decimal_comma: Annotated[
            bool,
            typer.Option(
                "--decimal-comma",
                help="Numbers in text have a decimal comma (0,5 is 0.5, as European Excel exports write "
                "them); one with a point is then invalid, not guessed.",
            ),
        ] = False,
        to: Annotated[
            str,
            typer.Option(
                help="'landing' (a file in the landing directory) or 'kafka' (the source's topic at "
                "KAFKA_BOOTSTRAP_SERVERS, through an idempotent, batched producer, keyed by meter, grid "
                "node or station)."
            ),
        ] = "landing",
        topic: Annotated[
            str | None,
            typer.Option(
                help="With --to kafka: the topic (default: the source's, e.g. metrify.meter-readings.v1)."
            ),
        ] = None,
        landing_dir: Annotated[
            Path | None,
            typer.Option(
                help="Landing directory (default: METRIFY_LANDING_DIR, HOME/landing); --to landing only."
            ),
        ] = None,
        backfill: Annotated[
            bool,
            typer.Option(
                "--backfill/--live",
                help="Declare the file history (default: an import is not a live feed, so its records are "
                "not scored for timeliness); --live scores them against the time they land (or are sent).",
            ),
        ] = True,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Land (or send) a file even when every row is rejected for how it was read (no "
                "--timezone for local times, a decimal comma, a wrong column): such a file is refused.",
            ),
        ] = False,
        replaces: Annotated[
            list[str] | None,
            typer.Option(
                "--replaces",
                help="A batch id, or the landing file name, of an earlier file of SOURCE that this one "
                "corrects (repeatable): the file is its complete replacement. When `metrify run` ingests "
                "it, the earlier batch's readings it does not hold again (by key: a wrong meter id or "
                "time) are withdrawn, audited, and their days rebuilt. Refused for an unknown batch, "
                "another source's, one under a legal hold or with days archived out of PostgreSQL "
                "(restore them first). --to landing only.",
            ),
        ] = None,
    ) -> None:
        """Read a file, map its columns to the source's contract, and land the records (or send them to
        Kafka with --to kafka). With --replaces, a corrected file withdraws what the earlier one stored
        that it does not hold (docs/ingest-mapping.md#correcting-a-file)."""
        from metrify_assets.ingestion.landing import land_batches
        from metrify_assets.ingestion.readers import ingest_file, parse_pairs
        from metrify_assets.ingestion.readers.csvfile import delimiter as parse_delimiter

        if to not in ("landing", "kafka"):
            raise typer.BadParameter(f"--to must be 'landing' or 'kafka', not {to!r}", param_hint="--to")
        if topic and to != "kafka":
            raise typer.BadParameter("--topic goes with --to kafka", param_hint="--topic")
        if replaces and to != "landing":
            raise typer.BadParameter(
                "--replaces goes with --to landing: a landing file's batch is known before it lands, a "
                "Kafka range's is not",
                param_hint="--replaces",
            )
        kafka = _kafka(source, topic) if to == "kafka" else None  # before reading: fail fast
        try:
            result = ingest_file(
                path,
                source,
                fmt=fmt,
                mapping=parse_pairs(mapping or []),
                constants=parse_pairs(constants or []),
                preset=preset,
                meter_id=meter_id,
                timezone=timezone,
                station_id=station_id,
                sep=parse_delimiter(delimiter),
                decimal_comma=decimal_comma,
                ambiguous=ambiguous,
            )
        except (ValueError, OSError) as err:  # a file that cannot be read at all, or bad options
            raise typer.BadParameter(str(err)) from err
        console = command_console()
        if not result.rows_read:
            console.print(
                f"{path.name} holds no records (an empty file, a header without rows, or only empty record "
                "lists): nothing to do"
            )
            raise typer.Exit(code=1)
        refused = misread(result) and not force
        _print_result(console, path, source, result, "landed" if kafka is None else "sent", refused)
        if refused:
            console.print(
                f"nothing {'landed' if kafka is None else 'sent'}: every row was rejected for how the file "
                "was read, so all of it would be quarantined, and no replay can fix that; ingest it again "
                "with the options above, or with --force to land it for quarantine all the same"
            )
            raise typer.Exit(code=1)
        if not result.lines:
            console.print("nothing to land" if kafka is None else "nothing to send")
            raise typer.Exit(code=1)
        if kafka is not None:
            _to_kafka(console, kafka, source, result.lines, backfill)
        else:
            if replaces:
                _record_replacement(console, source, path, result.lines, replaces)
            target = landing_dir or resolve_settings().landing_dir
            if _said_landed_before(console, path, source, target, result.lines):
                return
            # The path as the user gave it (`exports/vendor.csv`), kept with each batch for `metrify dlq`
            # and `metrify status`, with the line of each record in it.
            files = land_batches(
                target, source, result.lines, backfill=backfill, source_file=str(path), places=result.places
            )
            where = (
                f"{files[0].path}"
                if len(files) == 1
                else f"{len(files)} files of at most {MAX_BATCH_MESSAGES:,} lines (one batch each) in "
                f"{files[0].path.parent}"
            )
            console.print(
                f"landed {where}" + (" (declared backfill: timeliness not scored)" if backfill else "")
            )
