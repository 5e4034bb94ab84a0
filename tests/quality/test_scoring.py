"""Quality score: each dimension on a crafted batch, DST-aware expected intervals, weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrify_assets.quality.rules import evaluate
from metrify_assets.quality.scoring import ScoreWeights, ScoringConfig, batch_quality, meter_day_quality

NOW = pd.Timestamp("2026-11-01T00:00Z")


def readings(meter_id: str, starts: list[pd.Timestamp], energy: float = 0.4) -> pd.DataFrame:
    n = len(starts)
    return pd.DataFrame(
        {
            "meter_id": pd.array([meter_id] * n, dtype="string"),
            "reading_start": pd.to_datetime(pd.Series(starts, dtype=object), utc=True).dt.as_unit("us"),
            "interval_minutes": pd.array([15] * n, dtype="Int64"),
            "energy_kwh": np.full(n, energy),
            "direction": pd.array([pd.NA] * n, dtype="string"),
            "register_kwh": np.full(n, np.nan),
            "voltage_v": np.full(n, 231.0),
            "power_factor": np.full(n, 0.97),
            "status_flags": pd.array([pd.NA] * n, dtype="string"),
            "source": pd.array(["head-end"] * n, dtype="string"),
        }
    )


def quarter_hours(start: str, count: int) -> list[pd.Timestamp]:
    return list(pd.date_range(start, periods=count, freq="15min"))


def with_index(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True).assign(record_index=lambda d: np.arange(len(d)))


def test_batch_dimensions_on_a_crafted_batch() -> None:
    starts = quarter_hours("2026-03-10T00:00Z", 8)
    kept = [s for i, s in enumerate(starts) if i != 5]  # interval 5 never arrives
    df = readings("MTR-1", kept)
    df.loc[3, "energy_kwh"] = -1.0  # negative_energy: received but wrong
    df = with_index(pd.concat([df, df.iloc[[2]]]))  # duplicate_exact of interval 2
    ends = df["reading_start"] + pd.Timedelta(minutes=15)
    ingested = ends + pd.Timedelta(minutes=30)
    ingested.iloc[[0, 1]] = ends.iloc[[0, 1]] + pd.Timedelta(hours=3)  # two late records
    outcome = evaluate("meter_readings", df, NOW)

    q = batch_quality("meter_readings", df, outcome, ingested)
    assert q.records == 8
    assert q.completeness == pytest.approx(7 / 8)  # 7 distinct slots of the 8 spanned
    assert q.accuracy == pytest.approx(1 - 1 / 8)
    assert q.consistency == pytest.approx(1 - 1 / 8)
    assert q.timeliness == pytest.approx(6 / 8)
    assert q.score == pytest.approx(100 * (0.4 * 7 / 8 + 0.3 * 7 / 8 + 0.2 * 7 / 8 + 0.1 * 6 / 8))

    with_malformed = batch_quality("meter_readings", df, outcome, ingested, malformed=2)
    assert with_malformed.records == 10
    assert with_malformed.accuracy == pytest.approx(1 - 3 / 10)


def test_a_clean_timely_batch_scores_100() -> None:
    df = with_index(readings("MTR-1", quarter_hours("2026-03-10T00:00Z", 12)))
    ingested = df["reading_start"] + pd.Timedelta(minutes=75)  # 60 min after each interval's end
    q = batch_quality("meter_readings", df, evaluate("meter_readings", df, NOW), ingested)
    assert (q.records, q.completeness, q.accuracy, q.consistency, q.timeliness, q.backfill) == (
        12,
        1.0,
        1.0,
        1.0,
        1.0,
        0,
    )
    assert q.score == pytest.approx(100.0)


def test_a_declared_backfill_is_not_late_and_scores_on_the_other_dimensions() -> None:
    df = with_index(readings("MTR-1", quarter_hours("2025-03-10T00:00Z", 8)))
    df.loc[3, "energy_kwh"] = -1.0  # one value rejected: accuracy 7/8
    outcome = evaluate("meter_readings", df, NOW)
    a_year_later = pd.Timestamp("2026-03-10T00:00Z")

    live = batch_quality("meter_readings", df, outcome, a_year_later)
    assert live.timeliness == 0.0 and live.backfill == 0  # as a live feed it is a year late
    assert live.score == pytest.approx(100 * (0.4 + 0.3 * 7 / 8 + 0.2 + 0.1 * 0))

    history = batch_quality("meter_readings", df, outcome, a_year_later, backfill=True)
    assert history.timeliness is None and history.backfill == 8
    assert "timeliness" not in history.dimensions()
    # Timeliness's weight is shared out: (0.4 + 0.3 * 7/8 + 0.2) / 0.9.
    assert history.score == pytest.approx(100 * (0.4 + 0.3 * 7 / 8 + 0.2) / 0.9)

    # Per record: the live half is scored (both late), the declared half is not.
    mixed = batch_quality(
        "meter_readings",
        df,
        outcome,
        a_year_later,
        backfill=pd.Series([True] * 4 + [False] * 4, index=df.index),
    )
    assert (mixed.timeliness, mixed.backfill) == (0.0, 4)


def test_lag_threshold_is_configurable() -> None:
    df = with_index(readings("MTR-1", quarter_hours("2026-03-10T00:00Z", 4)))
    outcome = evaluate("meter_readings", df, NOW)
    ingested = pd.Timestamp("2026-03-10T02:00Z")  # 1 h 0 min to 1 h 45 min after each interval's end
    assert batch_quality("meter_readings", df, outcome, ingested).timeliness == pytest.approx(1 / 4)
    lenient = ScoringConfig(max_lag_minutes=120)
    assert batch_quality("meter_readings", df, outcome, ingested, lenient).timeliness == 1.0


def test_grid_completeness_uses_the_node_cadence() -> None:
    times = pd.date_range("2026-03-10T00:00Z", periods=10, freq="1min").as_unit("us").delete([4, 7])
    df = pd.DataFrame(
        {
            "grid_node_id": pd.array(["GN-1"] * len(times), dtype="string"),
            "measured_at": times,
            "frequency_hz": 50.0,
            "voltage_v": 230.0,
            "load_mw": 10.0,
            "capacity_mw": 50.0,
            "record_index": np.arange(len(times)),
        }
    )
    q = batch_quality("grid_status", df, evaluate("grid_status", df, NOW), pd.Timestamp("2026-03-10T00:30Z"))
    assert q.completeness == pytest.approx(8 / 10)
    assert (q.accuracy, q.consistency, q.timeliness) == (1.0, 1.0, 1.0)


def test_meter_day_expects_92_quarter_hours_on_the_spring_dst_day() -> None:
    # Europe/London 2026-03-29: local midnight to midnight is 23 h (00:00Z to 23:00Z).
    full = quarter_hours("2026-03-29T00:00Z", 92)
    gappy = [s for i, s in enumerate(full) if i not in (10, 11, 50, 91)]  # 88 of 92
    autumn = quarter_hours("2026-10-24T23:00Z", 100)  # 2026-10-25 local is 25 h long
    df = with_index(pd.concat([readings("MTR-A", full), readings("MTR-B", gappy), readings("MTR-C", autumn)]))
    outcome = evaluate("meter_readings", df, NOW)
    days = meter_day_quality(df, outcome, df["reading_start"] + pd.Timedelta(minutes=20))

    by_meter = days.set_index("meter_id")
    assert list(days["local_date"].astype(str)) == ["2026-03-29", "2026-03-29", "2026-10-25"]
    assert list(by_meter["expected_intervals"]) == [92, 92, 100]
    assert list(by_meter["received_intervals"]) == [92, 88, 100]
    assert by_meter.loc["MTR-A", "completeness"] == 1.0
    assert by_meter.loc["MTR-B", "completeness"] == pytest.approx(88 / 92)  # not 88 / 96
    assert by_meter.loc["MTR-B", "score"] == pytest.approx(100 * (0.4 * 88 / 92 + 0.6))
    assert by_meter.loc["MTR-C", "score"] == pytest.approx(100.0)


def test_meter_day_counts_rejects_and_duplicates_per_day() -> None:
    day1 = readings("MTR-A", quarter_hours("2026-03-10T00:00Z", 96))
    day1.loc[[4, 5], "energy_kwh"] = 2000.0  # energy_implausible
    day2 = readings("MTR-A", quarter_hours("2026-03-11T00:00Z", 96))
    df = with_index(pd.concat([day1, day1.iloc[[7]], day2]))
    outcome = evaluate("meter_readings", df, NOW)
    lenient = ScoringConfig(max_lag_minutes=3000)
    days = meter_day_quality(df, outcome, pd.Timestamp("2026-03-12T00:00Z"), lenient)
    first, second = days.itertuples(index=False)
    assert (first.records, first.received_intervals, first.expected_intervals) == (97, 96, 96)
    assert first.accuracy == pytest.approx(1 - 2 / 97)
    assert first.consistency == pytest.approx(1 - 1 / 97)
    assert (second.accuracy, second.consistency, second.completeness) == (1.0, 1.0, 1.0)


def test_weights_are_normalised_and_validated() -> None:
    df = with_index(readings("MTR-1", quarter_hours("2026-03-10T00:00Z", 4)))
    outcome = evaluate("meter_readings", df, NOW)
    late = pd.Timestamp("2026-03-10T12:00Z")  # completeness 1, timeliness 0
    only_timeliness = ScoringConfig(weights=ScoreWeights(0, 0, 0, 5))
    assert batch_quality("meter_readings", df, outcome, late, only_timeliness).score == 0.0
    assert batch_quality("meter_readings", df, outcome, late).score == pytest.approx(90.0)
    with pytest.raises(ValueError, match="weights"):
        ScoreWeights(1, -1, 0, 0).normalised()


def test_an_empty_batch_scores_zero() -> None:
    df = with_index(readings("MTR-1", []))
    q = batch_quality("meter_readings", df, evaluate("meter_readings", df, NOW), NOW, malformed=3)
    assert (q.records, q.score, q.timeliness) == (3, 0.0, 0.0)


def test_an_empty_batch_declared_history_has_no_timeliness() -> None:
    """Nothing decodable in a declared backfill: still history, not a late live feed."""
    df = with_index(readings("MTR-1", []))
    outcome = evaluate("meter_readings", df, NOW)
    history = batch_quality("meter_readings", df, outcome, NOW, malformed=3, backfill=True)
    assert (history.records, history.score, history.timeliness) == (3, 0.0, None)
    assert "timeliness" not in history.dimensions()
    per_record = batch_quality(
        "meter_readings", df, outcome, NOW, malformed=3, backfill=pd.Series([], dtype=bool)
    )
    assert per_record.timeliness == 0.0  # per record, an empty batch declares nothing
