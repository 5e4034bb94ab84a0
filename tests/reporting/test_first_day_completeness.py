"""The report's completeness counts a meter-day against what VEE expects of it: a meter commissioned at
13:00 is not 46% complete on its first day in the report while VEE and the marts count it whole."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days
from metrify_assets.reporting import queries
from metrify_assets.resources.lake import Lake
from tests.meters.vee.test_store import NOW, day_messages, ingest

pytestmark = pytest.mark.postgres
DAY = date(2026, 4, 21)  # CMP-1's first day: readings from 13:00 (unregistered: a UTC day)


def test_a_meters_first_day_is_as_complete_in_the_report_as_in_vee(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """From 13:00 with 15:00 missing: 43 of VEE's 44 intervals arrived, so 43/44 in the report (it was
    43/96). A meter-day VEE has not run yet counts against the whole local day, as the marts do."""
    lake, later = Lake(str(tmp_path / "lake")), DAY + timedelta(days=1)
    first_day = day_messages("CMP-1", DAY, skip=set(range(52)) | {60})
    half_day = day_messages("CMP-1", later, skip=set(range(48)), seed=1)
    ingest(pg, lake, "cmp-1", [*first_day, *half_day])
    run_days(pg, DAY, DAY, VeeConfig(), now=NOW)

    vee = pg.execute(
        "SELECT expected_intervals, actual_intervals FROM ops.vee_days WHERE meter_id = 'CMP-1'"
    ).fetchall()
    assert vee == [(44, 43)]
    days = queries.read(pg, {DAY, later}).report(DAY, later).meter_days.set_index("local_date")
    assert days.loc[DAY, ["received", "expected"]].tolist() == [43, 44]
    assert days.loc[DAY, "completeness"] == pytest.approx(43 / 44)  # VEE's actual share of the day
    assert days.loc[later, ["received", "expected", "completeness"]].tolist() == [48, 96, 0.5]
