"""Offsets a topic's retention deleted before Metrify read them: records lost upstream, made an alert.

Metrify cannot read what the broker no longer holds (Metrify down, or runs failing, for longer than
the topic's `retention.ms`), but the loss must not pass in silence: a sensor tick whose cursor lies
below a partition's first retained offset, and a run whose range starts below it, each raise a
critical `kafka_expired` alert naming the offsets lost (docs/alerts.md). A person resolves it once
the records are recovered from the producer's side, or judged gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from metrify_assets.alerts.store import Alert, raise_alert


@dataclass(frozen=True)
class Expired:
    """Offsets `[start, end)` of a topic-partition that retention deleted unread."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def messages(self) -> int:
        return self.end - self.start

    @property
    def alert(self) -> Alert:
        where = f"{self.topic} partition {self.partition}"
        return Alert(
            kind="kafka_expired",
            severity="critical",
            subject=where,
            # One alert per lost range: a retried run finding the same loss refreshes it.
            dedup_key=f"kafka_expired:{self.topic}:{self.partition}@{self.start}-{self.end}",
            summary=(
                f"{self.messages:,} {'message' if self.messages == 1 else 'messages'} of {where} (offsets "
                f"{self.start}..{self.end - 1}) {'was' if self.messages == 1 else 'were'} deleted by the "
                "topic's retention before Metrify read them: recover them from the producer, or resolve "
                "this alert once judged lost"
            ),
            details={
                "topic": self.topic,
                "partition": self.partition,
                "first_offset": self.start,
                "end_offset": self.end,
                "messages": self.messages,
            },
        )


def expired_below(
    topic: str, beginning: Mapping[int, int], cursor: Mapping[int, int], committed: Mapping[int, int]
) -> list[Expired]:
    """The offsets of each partition between where a tick was to go on (`cursor`) and the first
    offset the broker still holds; none below the ingest group's `committed` offset, which only an
    ingested range moves (a drain may have run on past a sensor stopped meanwhile). Pure: unit-tested."""
    starts = {p: max(offset, committed.get(p, offset)) for p, offset in cursor.items()}
    return [
        Expired(topic, partition, start, beginning[partition])
        for partition, start in sorted(starts.items())
        if partition in beginning and start < beginning[partition]
    ]


def report_expired(conn: psycopg.Connection, expired: list[Expired]) -> None:
    """Raise each loss's alert, in the caller's transaction."""
    for loss in expired:
        raise_alert(conn, loss.alert)
