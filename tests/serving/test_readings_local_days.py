"""A meter's readings by local day on the day summer time ends (Europe/London, 2026-10-25: 25 hours,
100 quarter-hours): `from`/`to` are UTC instants, so a UTC-midnight day held 96 intervals and less
energy than the daily mart's row (a new-user trial's 1,039.35 kWh against 1,082.68);
`from_local_date`/`to_local_date` select the meter's local days, as /v1/consumption/daily counts
them. On a home simulated over that day and refreshed (`metrify run`: VEE and the dbt marts), on
embedded PostgreSQL and Redis."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metrify_assets.env import Settings
from metrify_assets.serving.app import create_app
from tests.serving.test_api import query, settings_for, simulated_home, token

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.e2e]
DST_END = date(2026, 10, 25)


@pytest.fixture(scope="module")
def dst_home(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[Path]:
    """Three meters over 24 to 26 October 2026, ingested and refreshed."""
    simulate = ("--meters", "3", "--days", "3", "--start", "2026-10-24", "--seed", "25")
    with simulated_home(tmp_path_factory, redis_server, "dst-end-home", *simulate) as home:
        yield home


@pytest.fixture(scope="module")
def dst_settings(dst_home: Path, redis_server: str) -> Settings:
    return settings_for(dst_home, redis_server)


@pytest.fixture(scope="module")
def dst_client(dst_settings: Settings) -> Iterator[TestClient]:
    """The API over that home, its lifespan run (the pool, the revocation list, Redis)."""
    client = TestClient(create_app(dst_settings))
    with client:
        yield client


def _total(rows: list[dict[str, object]], direction: str) -> Decimal:
    return sum(
        (
            Decimal(str(r["energy_kwh"]))
            for r in rows
            if r["direction"] == direction and r["energy_kwh"] is not None
        ),
        Decimal(0),
    )


def test_the_local_day_summer_time_ends_is_the_daily_marts_100_intervals(
    dst_client: TestClient, dst_settings: Settings
) -> None:
    meter, intervals, kwh_import, kwh_export = query(
        dst_settings,
        "SELECT meter_id, interval_count, kwh_import, kwh_export FROM marts.fct_consumption_daily "
        "WHERE local_date = %s ORDER BY meter_id LIMIT 1",
        (DST_END,),
    )[0]
    assert intervals == 100
    url, headers = f"/v1/meters/{meter}/readings", token("read")
    local = {"from_local_date": "2026-10-25", "to_local_date": "2026-10-26"}
    body = dst_client.get(url, headers=headers, params={**local, "limit": 1000}).json()
    rows = body["data"]
    assert len(rows) == 100 and body["next_cursor"] is None
    # The local day: 00:00 BST (23:00 UTC the day before) to 00:00 GMT; 01:00-02:00 is read twice.
    assert rows[0]["reading_start"].startswith("2026-10-24T23:00:00")
    assert rows[-1]["reading_start"].startswith("2026-10-25T23:45:00")
    assert _total(rows, "import") == pytest.approx(Decimal(str(kwh_import)))
    assert _total(rows, "export") == pytest.approx(Decimal(str(kwh_export)))
    # The whole-result CSV of the same local day holds the same intervals.
    download = dst_client.get(url, headers=headers, params={**local, "format": "csv"})
    assert download.headers["x-row-count"] == "100"
    assert len(list(csv.DictReader(io.StringIO(download.text)))) == 100
    # `from`/`to` are UTC instants: the UTC day is 96 intervals, not the meter's day.
    utc = dst_client.get(
        url, headers=headers, params={"from": "2026-10-25", "to": "2026-10-26", "limit": 1000}
    )
    assert len(utc.json()["data"]) == 96


def test_a_range_given_as_instants_and_local_days_at_once_is_a_422(
    dst_client: TestClient, dst_settings: Settings
) -> None:
    meter = query(dst_settings, "SELECT min(meter_id) FROM ops.meter_readings")[0][0]
    both = {"from": "2026-10-25T00:00:00Z", "to_local_date": "2026-10-26"}
    refused = dst_client.get(f"/v1/meters/{meter}/readings", headers=token("read"), params=both)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert "UTC instants" in error["message"] and "local days" in error["message"]
    assert [d["field"] for d in error["details"]] == ["query.from", "query.to_local_date"]
    assert {d["type"] for d in error["details"]} == {"conflict"}
    reversed_days = {"from_local_date": "2026-10-26", "to_local_date": "2026-10-25"}
    refused = dst_client.get(f"/v1/meters/{meter}/readings", headers=token("read"), params=reversed_days)
    assert refused.status_code == 422
    assert {d["field"] for d in refused.json()["error"]["details"]} == {
        "query.from_local_date",
        "query.to_local_date",
    }
