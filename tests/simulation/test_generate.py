"""The simulator: deterministic, DST-correct, contract-valid when clean, and honest about its faults."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import date, datetime
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from metrify_assets.contracts import METER_REGISTRY_COLUMNS, contract_for
from metrify_assets.grid.analysis import INPUT_COLUMNS, GridConfig, analyse
from metrify_assets.simulation import FAULT_KINDS, Simulation, SimulationConfig, simulate
from metrify_assets.simulation.config import FREQUENCY_EVENT

Row = dict[str, Any]
PY_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "str_list": list,
}


def violations(source: str, record: Row) -> list[str]:
    """Contract v1 problems of one record (empty when valid)."""
    contract = contract_for(source)
    problems = [f"missing {name}" for name in contract.required if name not in record]
    for f in contract.fields:
        value = record.get(f.name)
        if value is None:
            continue
        if f.type == "timestamp":
            if not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is None:
                problems.append(f"{f.name} without offset")
        elif not isinstance(value, PY_TYPES[f.type]) or isinstance(value, bool):
            problems.append(f"{f.name} has type {type(value).__name__}")
    return problems


def records(messages: list[str]) -> list[Row]:
    """Records of every decodable message, batches unpacked."""
    out: list[Row] = []
    for message in messages:
        try:
            body = json.loads(message)
        except json.JSONDecodeError:
            continue
        out.extend(body.get("records", [body]))
    return out


def by_key(source: str, rows: list[Row]) -> dict[tuple[object, ...], list[Row]]:
    index: dict[tuple[object, ...], list[Row]] = defaultdict(list)
    for row in rows:
        index[tuple(row.get(k) for k in contract_for(source).key)].append(row)
    return index


@cache
def faulty() -> Simulation:
    return simulate(SimulationConfig(meters=40, days=2, fault_rate=0.2, seed=7))


@cache
def clean() -> Simulation:
    return simulate(SimulationConfig(meters=60, days=2, fault_rate=0.0, seed=3))


def test_same_seed_same_data_other_seed_other_data() -> None:
    config = SimulationConfig(meters=20, days=1, fault_rate=0.05, seed=11)
    first, again = simulate(config), simulate(config)
    assert first.messages == again.messages
    assert first.labels == again.labels
    assert first.meters.equals(again.meters)
    other = simulate(SimulationConfig(meters=20, days=1, fault_rate=0.05, seed=12))
    assert other.messages["meter_readings"] != first.messages["meter_readings"]


def test_dst_day_has_92_quarter_hours_in_local_time() -> None:
    rows = records(clean().messages["meter_readings"])
    meter = rows[0]["meter_id"]
    days: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row["meter_id"] == meter:
            days[str(row["reading_start"])[:10]].append(str(row["reading_start"]))
    assert len(days["2026-03-28"]) == 96
    assert len(days["2026-03-29"]) == 92
    dst_day = days["2026-03-29"]
    assert "2026-03-29T00:45:00+00:00" in dst_day and "2026-03-29T02:00:00+01:00" in dst_day
    assert not any(ts.startswith("2026-03-29T01:") for ts in dst_day)  # 01:00-02:00 does not exist


def test_clean_run_has_no_labels_and_every_record_is_valid() -> None:
    sim = clean()
    assert sim.labels == []
    for source, messages in sim.messages.items():
        rows = records(messages)
        assert len(rows) >= len(messages) > 0
        assert all(violations(source, row) == [] for row in rows)
        assert all(len(group) == 1 for group in by_key(source, rows).values())
    readings = records(sim.messages["meter_readings"])
    assert all(datetime.fromisoformat(str(r["reading_start"])).minute % 15 == 0 for r in readings)
    assert all(r["energy_kwh"] >= 0 or r.get("direction") == "export" for r in readings)
    assert any(r.get("direction") == "export" for r in readings), "solar meters should export at midday"
    assert all(207.0 <= r["voltage_v"] <= 253.0 for r in readings)
    grid = records(sim.messages["grid_status"])
    assert all(49.8 < g["frequency_hz"] < 50.2 for g in grid)


def test_register_grows_by_the_interval_import_energy() -> None:
    rows = [r for r in records(clean().messages["meter_readings"]) if r["meter_id"] == "MTR-000001"]
    rows.sort(key=lambda r: datetime.fromisoformat(str(r["reading_start"])))
    for before, after in pairwise(rows):
        delta = float(after["register_kwh"]) - float(before["register_kwh"])
        assert delta == pytest.approx(max(float(after["energy_kwh"]), 0.0), abs=2e-4)


def test_grid_frequency_deviation_is_like_the_real_grid() -> None:
    sim = simulate(SimulationConfig(meters=1, days=7, grid_nodes=1, weather_stations=1, fault_rate=0.0))
    freq = [float(g["frequency_hz"]) for g in records(sim.messages["grid_status"])]
    mean = sum(freq) / len(freq)
    std = (sum((f - mean) ** 2 for f in freq) / len(freq)) ** 0.5
    assert abs(mean - 50.0) < 0.01
    assert 0.012 < std < 0.026  # the Paris sample: 19 mHz


def event_run(area_name: str) -> tuple[Simulation, pd.DataFrame]:
    """A day of three nodes with one frequency event (almost no other fault), and its grid samples."""
    config = SimulationConfig(
        meters=1, days=1, grid_nodes=3, weather_stations=1, fault_rate=1e-4, grid_area=area_name
    )
    sim = simulate(config)
    rows = [r for r in records(sim.messages["grid_status"]) if isinstance(r.get("frequency_hz"), float)]
    return sim, pd.DataFrame(rows).reindex(columns=INPUT_COLUMNS)


@pytest.mark.parametrize(
    ("area_name", "deviation_hz", "minutes"),
    [("great_britain", -0.375, 13), ("continental_europe", -0.15, 8)],
)
def test_the_frequency_event_is_an_alert_of_every_node_by_its_networks_area(
    area_name: str, deviation_hz: float, minutes: int
) -> None:
    """The simulated network is GB's by default; its event is sized to its area: an alert (not an
    emergency) of each node when judged by that area's standards."""
    assert SimulationConfig().grid_area == "great_britain"
    sim, samples = event_run(area_name)
    labelled = [entry for entry in sim.labels if entry["kind"] == FREQUENCY_EVENT]
    assert len(labelled) == 3
    assert all(
        entry["detail"] == {"deviation_hz": pytest.approx(deviation_hz), "minutes": minutes}
        for entry in labelled
    )
    events = analyse(samples, GridConfig(default_area=area_name)).events
    assert sorted(events["grid_node_id"]) == sorted({str(e["key"]["grid_node_id"]) for e in labelled})  # type: ignore[index]
    assert set(events["state"]) == {"alert"} and set(events["rule"]) == {"beyond_half_max_steady_state"}


def test_a_continental_sized_event_is_inside_gb_standards() -> None:
    """Why the demo's area matters: Continental Europe's alert (150 mHz for 8 minutes) is within GB's
    +/-200 mHz standard range, and GB's event an emergency by Continental Europe's 200 mHz maximum."""
    _, continental = event_run("continental_europe")
    assert analyse(continental, GridConfig(default_area="great_britain")).events.empty
    _, british = event_run("great_britain")
    assert "emergency" in set(analyse(british, GridConfig(default_area="continental_europe")).events["state"])


def test_registry_has_the_ops_meters_columns() -> None:
    meters = clean().meters
    assert tuple(meters.columns) == METER_REGISTRY_COLUMNS
    assert meters["meter_id"].is_unique and meters["meter_id"].iloc[0] == "MTR-000001"
    assert set(meters["segment"]) <= {"residential", "commercial", "industrial"}
    assert (meters["installed_on"] < date(2026, 3, 28)).all()


def test_a_meters_registry_row_does_not_depend_on_the_runs_size_or_period() -> None:
    """A later or larger run of the same seed sends the same rows for the meters it shares (they
    drew every attribute anew, so a second `metrify simulate` versioned every meter in `dim_meter`);
    another seed is another network."""
    first = simulate(SimulationConfig(meters=20, days=1, seed=11)).meters
    later = simulate(SimulationConfig(meters=1100, days=2, start=date(2026, 5, 2), seed=11, fault_rate=0.1))
    pd.testing.assert_frame_equal(later.meters.head(20), first)
    assert later.meters["meter_id"].is_unique and len(later.meters) == 1100  # more than one block
    other = simulate(SimulationConfig(meters=20, days=1, seed=12)).meters
    assert not other.drop(columns="meter_id").equals(first.drop(columns="meter_id"))


@pytest.mark.parametrize("seed", [3, 8, 42])
def test_a_network_of_three_meters_has_every_segment(seed: int) -> None:
    """Industrial meters are 5 % of a network: a small one still has one (its load shape, tariff and
    forecast series), whatever the seed."""
    meters = simulate(SimulationConfig(meters=3, days=1, seed=seed)).meters
    assert sorted(meters["segment"]) == ["commercial", "industrial", "residential"]


def test_meters_are_installed_before_an_early_runs_first_day() -> None:
    """A run starting before the install span ends moves only the meters installed on or after its
    first day, back before it."""
    usual = simulate(SimulationConfig(meters=200, days=1, seed=5)).meters
    early = simulate(SimulationConfig(meters=200, days=1, start=date(2019, 6, 1), seed=5)).meters
    assert (early["installed_on"] < date(2019, 6, 1)).all()
    before = usual["installed_on"] < date(2019, 6, 1)
    assert 0 < before.sum() < len(usual)
    assert early["installed_on"][before].equals(usual["installed_on"][before])
    assert early.drop(columns="installed_on").equals(usual.drop(columns="installed_on"))


def day_records(sim: Simulation, day: date, meters: int, drop: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Each source's records of one local day (of the first `meters` meters), messages unpacked,
    malformed payloads as sent, without the fields `drop`, in a canonical order."""
    ids = {f"MTR-{i:06d}" for i in range(1, meters + 1)}
    out: dict[str, list[str]] = {}
    for source, days in sim.messages_by_day.items():
        rows = []
        for message in days[day]:
            try:
                body = json.loads(message)
            except json.JSONDecodeError:  # cut short: its meter is named at its start
                if source != "meter_readings" or message[15:25] in ids:
                    rows.append(message)
                continue
            for row in body.get("records", [body]):
                if source != "meter_readings" or row.get("meter_id") in ids:
                    rows.append(json.dumps({k: v for k, v in row.items() if k not in drop}, sort_keys=True))
        out[source] = sorted(rows)
    return out


def day_labels(sim: Simulation, day: date, meters: int) -> list[str]:
    """The labels of one local day's records (of the first `meters` meters), canonical."""
    ids = {f"MTR-{i:06d}" for i in range(1, meters + 1)}
    chosen = []
    for entry in sim.labels:
        key: dict[str, str] = entry["key"]  # type: ignore[assignment]
        if "meter_id" in key and key["meter_id"] not in ids:
            continue
        instant = key.get("reading_start") or key.get("measured_at") or key.get("observed_at")
        if instant is None:  # a consumption shift's meter-day
            on = date.fromisoformat(key["local_date"])
        else:
            on = datetime.fromisoformat(instant).astimezone(ZoneInfo("Europe/London")).date()
        if on == day:
            chosen.append(json.dumps(entry, sort_keys=True))
    return sorted(chosen)


def test_a_meters_readings_do_not_depend_on_how_many_meters_the_run_has() -> None:
    """Simulating a day again with more meters sends the same readings and faults for the meters it
    shares (they drew from one stream for every meter, so meter 1's readings changed with --meters
    and a second `metrify simulate` of the day landed other values under the same record version)."""
    config = {"days": 2, "seed": 9, "fault_rate": 0.05, "shift_share": 0.2}
    small = simulate(SimulationConfig(meters=20, **config))  # type: ignore[arg-type]
    large = simulate(SimulationConfig(meters=1100, **config))  # type: ignore[arg-type]  # two blocks
    for day in (date(2026, 3, 28), date(2026, 3, 29)):
        assert day_records(small, day, 20) == day_records(large, day, 20)
        assert day_labels(small, day, 20) == day_labels(large, day, 20)
    assert len(day_labels(small, date(2026, 3, 28), 20)) > 20  # faults of every kind were compared
    other = simulate(SimulationConfig(meters=20, **{**config, "seed": 10}))  # type: ignore[arg-type]
    assert day_records(other, date(2026, 3, 28), 20) != day_records(small, date(2026, 3, 28), 20)


def test_a_days_readings_do_not_depend_on_where_the_run_starts() -> None:
    """A run over more days that covers a day sends the same readings, faults, grid and weather for it.
    The register is the exception: it counts from a value at the run's first interval, so it moves
    by a constant and its increments are the same."""
    day = date(2026, 3, 29)  # the DST change
    config = {"meters": 20, "seed": 4, "fault_rate": 0.05, "frequency_events": 0}
    alone = simulate(SimulationConfig(days=1, start=day, **config))  # type: ignore[arg-type]
    within = simulate(SimulationConfig(days=3, start=date(2026, 3, 28), **config))  # type: ignore[arg-type]
    ignore = ("register_kwh",)
    a, b = day_records(alone, day, 20, drop=ignore), day_records(within, day, 20, drop=ignore)
    for source in ("grid_status", "weather_observations"):
        assert a[source] == b[source]
    parsed = [[r for r in rows if r.startswith("{")] for rows in (a["meter_readings"], b["meter_readings"])]
    assert parsed[0] == parsed[1] and len(parsed[0]) > 20 * 90
    # a malformed reading's payload carries the register; which records are malformed, and how, is the same
    unparsed = [
        [r for r in rows if not r.startswith("{")] for rows in (a["meter_readings"], b["meter_readings"])
    ]
    assert len(unparsed[0]) == len(unparsed[1])

    def without_payload(sim: Simulation) -> list[str]:
        return [
            json.dumps({**json.loads(e), "payload": None}, sort_keys=True) for e in day_labels(sim, day, 20)
        ]

    assert without_payload(alone) == without_payload(within)
    registers = [
        pd.DataFrame(records(sim.messages_by_day["meter_readings"][day]))
        .query("meter_id == 'MTR-000001'")
        .drop_duplicates("reading_start")
        .sort_values("reading_start")["register_kwh"]
        .to_numpy()
        for sim in (alone, within)
    ]
    offset = registers[1] - registers[0]
    assert offset == pytest.approx(offset[0], abs=2e-4)


def test_series_are_continuous_across_midnight() -> None:
    """Each day's slow series (cloud, temperature, pressure, frequency, node load) draws from a stream
    of that day, faded into the next day's: a step at midnight is an ordinary step (a series restarted
    each day would jump there by more than its std)."""
    sim = simulate(SimulationConfig(meters=1, days=6, fault_rate=0.0, grid_interval_minutes=15))
    weather = pd.DataFrame(records(sim.messages["weather_observations"]))
    local = pd.to_datetime(weather["observed_at"], utc=True).dt.tz_convert("Europe/London")
    midnight = (local.dt.hour == 0) & (local.dt.minute == 0)
    for column in ("temperature_c", "pressure_hpa"):
        steps = weather.groupby("station_id")[column].diff().abs()
        assert steps[midnight].count() == 5 * 5
        assert steps[midnight].mean() < 1.5 * steps.mean(), column


def test_every_fault_kind_is_labelled_and_visible_in_the_messages() -> None:
    sim = faulty()
    assert {str(entry["kind"]) for entry in sim.labels} == set(FAULT_KINDS)
    rows = {source: by_key(source, records(messages)) for source, messages in sim.messages.items()}
    labels: list[Row] = sim.labels
    for entry in labels:
        source, kind, detail = str(entry["source"]), entry["kind"], entry["detail"]
        assert isinstance(detail, dict)
        key_fields = contract_for(source).key
        key = entry["key"]
        found = rows[source].get(tuple(key[k] for k in key_fields), [])
        if kind == "missing_interval":
            assert found == []
        elif kind == "malformed":
            payload = str(entry["payload"])
            assert payload in sim.messages[source]
            if detail["variant"] == "invalid_json":
                with pytest.raises(json.JSONDecodeError):
                    json.loads(payload)
            else:
                assert violations(source, json.loads(payload)) != []
        elif kind == "negative_energy":
            assert len(found) == 1 and found[0]["energy_kwh"] < 0 and found[0].get("direction") != "export"
        elif kind == "spike":
            assert found[0]["energy_kwh"] >= 10 * abs(detail["original_kwh"]) - 1e-3
        elif kind == "zero_run":
            first, last = datetime.fromisoformat(key["reading_start"]), datetime.fromisoformat(detail["last"])
            run = [
                r
                for (meter, start), group in rows[source].items()
                for r in group
                if meter == key["meter_id"] and first <= datetime.fromisoformat(str(start)) <= last
            ]
            assert detail["intervals"] >= 8 and len(run) == detail["intervals"]
            assert all(r["energy_kwh"] == 0 for r in run)
        elif kind == "duplicate_exact":
            assert len(found) == 2 and found[0] == found[1]
        elif kind == "duplicate_conflict":
            assert len(found) == 2 and found[0]["energy_kwh"] != found[1]["energy_kwh"]
        elif kind == "clock_shift":
            assert len(found) == 1 and datetime.fromisoformat(key["reading_start"]).minute % 15 != 0
        elif kind == "voltage_out_of_range":
            assert not 207.0 <= found[0]["voltage_v"] <= 253.0
        elif kind == "frequency_out_of_range":
            assert not 49.5 <= found[0]["frequency_hz"] <= 50.5


def test_fault_count_follows_the_rate() -> None:
    sim = faulty()
    meter_labels = [e for e in sim.labels if e["source"] == "meter_readings"]
    expected = 40 * (96 + 92) * 0.2
    assert 0.6 * expected < len(meter_labels) < 1.1 * expected  # zero runs absorb faults inside them


def test_default_size_generates_well_under_five_seconds() -> None:
    began = time.perf_counter()
    sim = simulate(SimulationConfig())
    assert time.perf_counter() - began < 5.0
    assert len(sim.meters) == 200
