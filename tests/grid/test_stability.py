"""Stability figures: on the real Paris frequency sample against an independent numpy computation,
and on synthetic series for sample durations, gaps, RoCoF windows, EN 50160 voltage and load margin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrify_assets.grid.analysis import GridConfig, analyse
from metrify_assets.grid.stability import VoltageConfig, weekly_voltage_compliance
from metrify_assets.grid.timeline import timeline
from tests.grid.series import START, profile, samples, single

FIXTURES = Path(__file__).parents[1] / "fixtures"


def paris() -> pd.DataFrame:
    """The Paris sample as published: timestamp (taken as UTC), deviation from 50 Hz in mHz."""
    frame = pd.read_csv(FIXTURES / "freq_paris_2014_10.csv", header=None, names=["timestamp", "mhz"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")
    return frame


def paris_samples() -> pd.DataFrame:
    frame = paris()
    return pd.DataFrame(
        {
            "grid_node_id": "RTE-PARIS",
            "measured_at": frame["timestamp"],
            "frequency_hz": 50.0 + frame["mhz"] / 1000.0,
            "voltage_v": None,
            "load_mw": None,
            "capacity_mw": None,
        }
    )


def expected_paris_hours(frame: pd.DataFrame) -> pd.DataFrame:
    """Per UTC hour, from the file with numpy alone: each sample stands for its 10 s; RoCoF is the
    largest |difference| from the sample before over 10 s."""
    mhz = frame["mhz"].to_numpy()
    times = frame["timestamp"].dt.tz_localize(None).to_numpy().astype("datetime64[ms]")
    hours = times.astype("datetime64[h]")
    step = np.diff(times).astype(float) / 1000
    assert (step == 10.0).all()  # the sample has no gaps
    slope = np.insert(np.abs(np.diff(mhz)) / 1000 / 10.0, 0, np.nan)  # from the sample before to each
    rows = []
    for hour in np.unique(hours):
        d, s = mhz[hours == hour] / 1000, slope[hours == hour]
        rows.append(
            {
                "hour_start": pd.Timestamp(hour).tz_localize("UTC"),
                "sample_count": len(d),
                "mean_deviation_hz": d.mean(),
                "std_deviation_hz": d.std(),
                "min_deviation_hz": d.min(),
                "max_deviation_hz": d.max(),
                "share_outside_standard": np.mean(np.abs(d) > 0.05),
                "minutes_outside_standard": np.sum(np.abs(d) > 0.05) * 10 / 60,
                "covered_minutes": len(d) * 10 / 60,
                "rocof_max_hz_s": np.nanmax(s),
            }
        )
    return pd.DataFrame(rows)


def test_paris_sample_figures_equal_numpy_per_hour() -> None:
    figures = analyse(paris_samples(), GridConfig()).figures.set_index("hour_start")
    expected = expected_paris_hours(paris()).set_index("hour_start")
    assert list(figures.index) == list(expected.index)
    assert len(figures) == 14  # 00:00 .. 13:53
    for column in expected.columns:
        np.testing.assert_allclose(
            figures[column].astype(float),
            expected[column].astype(float),
            rtol=1e-9,
            atol=1e-12,
            err_msg=column,
        )
    assert (figures["rocof_window_s"] == 10.0).all()  # 10 s data: RoCoF over 10 s, not 500 ms
    assert (figures["standard_range_hz"] == 0.05).all() and (figures["area"] == "continental_europe").all()
    # Frequency-only: no voltage or load figure is invented, and the risk says it had frequency alone.
    for column in (
        "mean_voltage_v",
        "voltage_within_share",
        "mean_load_mw",
        "min_load_margin_share",
        "risk_voltage",
    ):
        assert figures[column].isna().all(), column
    assert (figures["voltage_samples"] == 0).all() and (figures["voltage_windows"] == 0).all()
    assert set(figures["risk_components"]) == {"frequency"}
    np.testing.assert_allclose(figures["risk_score"].astype(float), figures["risk_frequency"].astype(float))
    assert set(figures["worst_state"]) == {"normal"}  # never beyond 100 mHz, nor 15 minutes beyond 50
    assert analyse(paris_samples(), GridConfig()).events.empty


def test_paris_sample_over_one_window_gives_the_published_figures() -> None:
    day = single(analyse(paris_samples(), GridConfig(window="1D")).figures)
    assert day.sample_count == 4999
    assert 1000 * day.mean_deviation_hz == pytest.approx(0.46, abs=0.005)
    assert 1000 * day.std_deviation_hz == pytest.approx(18.99, abs=0.01)
    assert 1000 * day.min_deviation_hz == pytest.approx(-75.7)
    assert 1000 * day.max_deviation_hz == pytest.approx(79.6)
    assert 100 * day.share_outside_standard == pytest.approx(1.32, abs=0.005)
    assert day.max_abs_deviation_hz < 0.2  # none beyond +/-200 mHz
    mhz = paris()["mhz"].to_numpy()
    assert day.mean_deviation_hz == pytest.approx(mhz.mean() / 1000, rel=1e-9)
    assert day.std_deviation_hz == pytest.approx(mhz.std() / 1000, rel=1e-9)


def test_a_sample_stands_for_the_time_to_the_next_capped_at_the_median_spacing() -> None:
    seconds = [0, 10, 20, 30, 100, 110, 121]
    line = timeline(START + pd.to_timedelta(seconds, unit="s"))
    np.testing.assert_allclose(line.cadence_s, [10.0] * 7)
    np.testing.assert_allclose(line.duration_s, [10, 10, 10, 10, 10, 10, 10])
    assert line.segment.tolist() == [0, 0, 0, 0, 1, 1, 1]  # 70 s > 2 x 10 s: a gap
    single = timeline(pd.DatetimeIndex([START]))
    assert np.isnan(single.cadence_s).all() and single.duration_s.tolist() == [0.0]
    with pytest.raises(ValueError, match="sorted"):
        timeline(pd.DatetimeIndex([START, START]))


def test_the_cadence_is_local_so_a_switch_from_1_s_to_10_s_sampling_is_not_a_run_of_gaps() -> None:
    """1 s samples for an hour, then 10 s samples for two: only the first four 10 s spacings (before
    the median of the last nine spacings turns to 10 s) are taken for gaps, not all of them."""
    ones = START + pd.to_timedelta(np.arange(3600), unit="s")
    tens = ones[-1] + pd.to_timedelta(1 + 10 * np.arange(720), unit="s")
    line = timeline(pd.DatetimeIndex(ones.append(tens)))
    assert line.segment.max() == 4
    assert line.cadence_s[0] == 1.0 and line.cadence_s[-1] == 10.0
    # The 10 s hours stand for their time (two hours, less 4 x 9 s just after the switch).
    assert line.duration_s[3600:].sum() == pytest.approx(7200 - 36)
    raw = pd.concat([samples(np.zeros(3600), step_s=1.0), samples(np.zeros(720), start=tens[0], step_s=10.0)])
    hours = analyse(raw, GridConfig()).figures.set_index("hour_start")
    assert hours["covered_minutes"].tolist() == pytest.approx([60.0, 60.0 - 36 / 60, 60.0])
    assert hours["rocof_window_s"].tolist() == [1.0, 10.0, 10.0]


def test_a_gap_is_not_time_outside() -> None:
    raw = pd.concat(
        [samples(profile((2, 0.08))), samples(profile((2, 0.08)), start=START + pd.Timedelta(minutes=30))]
    )
    hour = single(analyse(raw, GridConfig()).figures)
    assert hour.minutes_outside_standard == pytest.approx(4.0)  # not the 30 minutes the data spans
    assert hour.covered_minutes == pytest.approx(4.0)
    assert hour.share_outside_standard == 1.0


@pytest.mark.parametrize(
    ("step_s", "window_s"), [(10.0, 10.0), (1.0, 1.0), (0.2, 0.6), (0.1, 0.5), (0.02, 0.5), (0.5, 0.5)]
)
def test_rocof_window_is_the_shortest_the_sample_rate_allows_of_at_least_500_ms(
    step_s: float, window_s: float
) -> None:
    n = round(120 / step_s)
    ramp = 0.01 * np.arange(n) * step_s  # 10 mHz/s
    hour = single(analyse(samples(ramp, step_s=step_s), GridConfig()).figures)
    assert hour.rocof_window_s == pytest.approx(window_s)
    assert hour.rocof_max_hz_s == pytest.approx(0.01)


def test_rocof_leaves_out_pairs_across_a_gap() -> None:
    raw = pd.concat([samples([0.0] * 10), samples([0.15] * 10, start=START + pd.Timedelta(minutes=10))])
    hour = single(analyse(raw, GridConfig()).figures)
    assert hour.rocof_max_hz_s == 0.0


def test_voltage_10_minute_means_and_load_margin() -> None:
    # 30 minutes of 1-minute samples: 10 minutes around 230 V, 10 at 256 V (+11 %), 10 at 240 V.
    voltage = [230.0] * 10 + [256.0] * 10 + [240.0] * 9 + [None]
    raw = samples([0.0] * 30, step_s=60, voltage_v=voltage, load_mw=[40.0] * 29 + [45.0], capacity_mw=50.0)
    hour = single(analyse(raw, GridConfig()).figures)
    assert (hour.voltage_samples, hour.voltage_windows, hour.voltage_windows_within) == (29, 3, 2)
    assert hour.voltage_within_share == pytest.approx(2 / 3)
    assert hour.max_voltage_deviation_share == pytest.approx(26 / 230)
    assert hour.mean_voltage_v == pytest.approx(np.mean([v for v in voltage if v is not None]))
    assert (hour.max_load_mw, hour.capacity_mw, hour.min_load_margin_mw) == (45.0, 50.0, 5.0)
    assert hour.min_load_margin_share == pytest.approx(0.1)
    assert hour.risk_components == "frequency,voltage,load"


def test_weekly_voltage_compliance_over_the_seven_days_ending_each_day() -> None:
    days = pd.date_range("2026-01-01", periods=9, freq="D").date
    within = [144] * 4 + [100] + [144] * 4  # 2026-01-05: 44 of 144 ten-minute means outside
    daily = pd.DataFrame(
        {"grid_node_id": "GN-1", "day": days, "voltage_windows": 144, "voltage_windows_within": within}
    )
    weekly = weekly_voltage_compliance(daily, VoltageConfig()).set_index("day")
    assert weekly.loc[days[0], "week_windows"] == 144  # only what the days before hold
    assert weekly.loc[days[6], "week_windows"] == 7 * 144
    assert weekly.loc[days[6], "week_within_share"] == pytest.approx(1 - 44 / (7 * 144))  # 95.6 %: complies
    assert bool(weekly.loc[days[6], "week_compliant"])
    assert not bool(weekly.loc[days[4], "week_compliant"])  # 44 of 5 x 144 outside: 93.9 %
    assert bool(weekly.loc[days[8], "week_compliant"])
    no_voltage = daily.assign(voltage_windows=0, voltage_windows_within=0)
    weekly = weekly_voltage_compliance(no_voltage, VoltageConfig())
    assert weekly["week_within_share"].isna().all() and weekly["week_compliant"].isna().all()
