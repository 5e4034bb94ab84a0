"""A partition whose log restarted: its end offset fell below where Metrify reads on (the topic deleted
and recreated under the same name, or a broker's data lost), made an alert.

Offsets are Metrify's batch ids (`<topic>-<partition>-<start>-<end>`) and record versions, so a log
that counts from 0 again would name its batches as the old log's and lose every correction to the old
versions. Metrify does not read it: each sensor tick finds the partition below its cursor, plans
nothing there and keeps a critical `kafka_restarted` alert open that says what to do (produce to a
topic under a new name; docs/reliability.md). The other partitions go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from metrify_assets.alerts.store import Alert, raise_alert


@dataclass(frozen=True)
class Restarted:
    """A topic-partition whose end offset (`end`) is below the next offset Metrify would read (`cursor`)."""

    topic: str
    partition: int
    cursor: int
    end: int

    @property
    def alert(self) -> Alert:
        where = f"{self.topic} partition {self.partition}"
        return Alert(
            kind="kafka_restarted",
            severity="critical",
            subject=where,
            dedup_key=f"kafka_restarted:{self.topic}:{self.partition}",
            summary=(
                f"{where} ends at offset {self.end}, below offset {self.cursor} where Metrify reads on: its log "
                "restarted (the topic recreated?). Metrify does not read it, as its offsets would reuse the "
                "old log's batch ids and versions: produce to a topic under a new name (the kafka resource's "
                "`topics`), then resolve this alert"
            ),
            details={
                "topic": self.topic,
                "partition": self.partition,
                "cursor": self.cursor,
                "end_offset": self.end,
            },
        )


def restarted_below(topic: str, end: Mapping[int, int], cursor: Mapping[int, int]) -> list[Restarted]:
    """The partitions whose end offset is below the tick's cursor. Pure: unit-tested."""
    return [
        Restarted(topic, partition, cursor[partition], end[partition])
        for partition in sorted(end)
        if partition in cursor and end[partition] < cursor[partition]
    ]


def report_restarted(conn: psycopg.Connection, restarted: list[Restarted]) -> None:
    """Raise (or refresh) each partition's alert, in the caller's transaction."""
    for partition in restarted:
        raise_alert(conn, partition.alert)
