"""A reviewer's decision on a meter reading becomes an edit of its VEE series at once.

The one sequence `metrify review approve|reject` and the API's review routes both run: the decision
(quality/review.py, its own transaction), then, for a meter reading, VEE re-run over the meter-day
that holds it with the reviewer as the edit's author (docs/quality.md#review-of-flagged-records).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import VeeRun, revee_reading
from metrify_assets.quality import review
from metrify_assets.resources.cache import Cache
from metrify_assets.storage.audit import Caller

VERDICTS = ("approve", "reject")
ARCHIVED = (
    "the reading's day left PostgreSQL (archived): VEE is not re-run and its series and the marts keep "
    "what they hold; `metrify restore` brings the day back, and the next `metrify run` rebuilds it "
    "with this decision"
)


@dataclass(frozen=True)
class Decided:
    item: review.ReviewItem
    vee: VeeRun | None  # the meter-day's re-run; None for a source VEE does not cover
    vee_status: str | None  # the interval's VEE status and method after it; None when not in a day
    vee_method: str | None
    # The decision stands, but the meter-day's re-run series failed its GX suite and was not written.
    vee_error: str | None = None
    # Why VEE was not re-run: the reading's day left PostgreSQL (archived); its series stays.
    vee_skipped: str | None = None


def decide(
    conn: psycopg.Connection,
    verdict: str,
    batch_id: str,
    record_index: int,
    by: str,
    note: str,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> Decided:
    """Approve or reject the item, then re-run VEE for a meter reading's meter-day. Raises
    `review.ReviewError` (or its `UnknownItemError`) for a decision that cannot be made. A decision
    whose meter-day's new series fails the GX suite `vee_meter_readings` is recorded all the same,
    and the series is not written (the one stored before stays): `Decided.vee_error` says so."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    make = review.approve if verdict == "approve" else review.reject
    item = make(conn, batch_id, record_index, by, note, cache=cache, caller=caller)
    if item.source != "meter_readings" or item.status == review.SUPERSEDED:  # no data changed
        return Decided(item, None, None, None)
    if item.status == "approved" and review.stored_row(conn, item) is None:  # its day was archived
        return Decided(item, None, None, None, vee_skipped=ARCHIVED)
    meter_id, start = item.record_key.split("|", 1)
    at = pd.Timestamp(start)
    run = revee_reading(conn, meter_id, at, VeeConfig(), cache=cache, caller=caller)
    if not run.written:
        failed = ", ".join(f"{e.expectation_type}({e.column})" for e in run.suite.failed)
        error = (
            f"the {item.status} decision is recorded, but the VEE series of {meter_id}'s day failed the GX "
            f"suite {run.suite.suite_name} ({failed}) and was not written; the series stored before stays"
        )
        return Decided(item, run, None, None, vee_error=error)
    series = run.result.series
    interval = series[series["reading_start"] == at.tz_convert("UTC")]
    if not len(interval):
        return Decided(item, run, None, None)
    return Decided(item, run, str(interval["status"].iloc[0]), str(interval["method"].iloc[0]))
