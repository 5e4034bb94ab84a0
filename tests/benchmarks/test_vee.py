"""The VEE benchmark's removed gaps: the value kept as truth is what the meter used (the register's
movement), never a value a simulator fault altered, and a run is the consecutive intervals it claims."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from benchmarks.cases.labels import natural_key
from benchmarks.cases.vee import _faulted, _remove_gaps
from metrify_assets.simulation import SimulationConfig, simulate

METER = "MTR-VEEGAP-1"


def _reading(t: pd.Timestamp, kwh: float) -> dict[str, object]:
    return {"meter_id": METER, "reading_start": t.isoformat(), "interval_minutes": 15, "energy_kwh": kwh}


def _day(skip: int | None = None) -> tuple[list[str], list[str]]:
    """(messages, keys) of 12 quarter-hours of one meter, the interval `skip` not sent."""
    times = pd.date_range("2026-05-04T00:00Z", periods=12, freq="15min")
    records = [_reading(t, round(0.1 * (i + 1), 4)) for i, t in enumerate(times) if i != skip]
    return [json.dumps({"records": records})], [natural_key(METER, t) for t in times]


def test_a_run_holds_no_faulted_interval_and_no_missing_one() -> None:
    messages, keys = _day(skip=8)
    spiked = keys[4]
    seen: set[str] = set()
    for seed in range(40):
        kept, removed = _remove_gaps(messages, np.random.default_rng(seed), [2], {spiked})
        seen |= set(removed)
        assert spiked not in removed
        at = sorted(keys.index(k) for k in removed)
        assert at == list(range(at[0], at[0] + 2)), "a run is consecutive intervals"
        # the missing interval 8 is neither inside the run nor its anchor: VEE sees a gap of 2
        assert not set(range(at[0] - 1, at[-1] + 2)) & {8}
        assert all(v == (round(0.1 * (keys.index(k) + 1), 4), 2) for k, v in removed.items())
        left = {natural_key(r["meter_id"], r["reading_start"]) for r in json.loads(kept[0])["records"]}
        assert not left & set(removed)
    # runs at 1-2, 2-3 and 5-6: 3-4 and 4-5 hold the spike, 6-7, 7-9 and 9-10 adjoin the missing 8
    assert seen == {keys[i] for i in (1, 2, 3, 5, 6)}


def test_a_resent_interval_is_one_interval_of_the_run() -> None:
    messages, keys = _day()
    resent = json.dumps(_reading(pd.Timestamp(keys[5].split("|")[1]), 9.9))
    for seed in range(40):
        kept, removed = _remove_gaps([*messages, resent], np.random.default_rng(seed), [3], set())
        assert len(removed) == 3
        if keys[5] in removed:
            assert resent not in kept
            assert removed[keys[5]] == (0.6, 3), "the first copy sent is the truth"


def test_the_truth_kept_is_the_registers_movement_on_simulated_faults() -> None:
    config = SimulationConfig(meters=12, days=3, start=date(2026, 5, 4), seed=21, fault_rate=0.08)
    sim = simulate(config)
    faulted = _faulted(sim.labels, pd.Timedelta(minutes=config.interval_minutes))
    assert any(label["kind"] == "spike" for label in sim.labels)
    records = [
        r
        for messages in sim.messages_by_day["meter_readings"].values()
        for m in messages
        for r in _records(m)
    ]
    sent = pd.DataFrame(records).dropna(subset=["register_kwh"])
    sent["key"] = [natural_key(m, t) for m, t in zip(sent["meter_id"], sent["reading_start"], strict=True)]
    sent = sent.drop_duplicates("key").set_index("key")
    rng = np.random.default_rng(3)
    removed: dict[str, tuple[float, int]] = {}
    for _, messages in sorted(sim.messages_by_day["meter_readings"].items()):
        removed |= _remove_gaps(messages, rng, iter([16] * config.meters), faulted)[1]
    assert len(removed) > 16 * config.meters
    step = pd.Timedelta(minutes=config.interval_minutes)
    checked = 0
    for key, (true_kwh, _) in removed.items():
        meter, at = key.split("|")
        before = natural_key(meter, pd.Timestamp(at) - step)
        if true_kwh > 0 and before in sent.index and before not in faulted:
            moved = float(sent.at[key, "register_kwh"]) - float(sent.at[before, "register_kwh"])
            assert abs(moved - true_kwh) < 1e-3, key
            checked += 1
    assert checked > len(removed) // 2


def _records(message: str) -> list[dict[str, object]]:
    try:
        body = json.loads(message)
    except json.JSONDecodeError:
        return []
    return [r for r in body.get("records", [body]) if isinstance(r.get("energy_kwh"), float | int)]
