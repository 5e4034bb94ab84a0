"""Case 6: how well rule flags and anomaly scores find the simulator's injected faults.

Ground truth is the simulator's labels file; each fault kind is matched against the signal meant to
catch it (a rule reason, the anomaly model, the decoder, or gap detection) by natural key.

The anomaly models are compared on a second, longer run: the expected-consumption model and the
robust seasonal baseline are trained on its first weeks (no consumption shifts there) and score its
last week, where some meters read 25-35 % off for days. Spikes are matched per reading, shifts per
meter-day (the baseline flags a meter-day when it flags any of its readings).

The VEE catalogue and estimation are measured on a third run, through PostgreSQL (`cases/vee.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import pandas as pd

from benchmarks.cases.labels import natural_key, precision_recall
from benchmarks.cases.vee import vee_quality
from benchmarks.harness import CaseResult
from metrify_assets.contracts import contract_for
from metrify_assets.grid.analysis import INPUT_COLUMNS, GridConfig, analyse
from metrify_assets.grid.areas import area
from metrify_assets.ingestion.decode import decode
from metrify_assets.meters.anomaly import features, model
from metrify_assets.meters.anomaly.baseline import fit_baseline, score_baseline
from metrify_assets.meters.anomaly.scoring import score_run
from metrify_assets.quality import rules
from metrify_assets.simulation import SimulationConfig, simulate
from metrify_assets.simulation.config import FREQUENCY_EVENT, SHIFT_FAULT
from metrify_assets.simulation.grid_status import event_shape

# fault kind -> the rule reason meant to catch it
RULE_SIGNAL = {
    "spike": "spike",
    "negative_energy": "negative_energy",
    "zero_run": "zero_run",
    "duplicate_exact": "duplicate_exact",
    "duplicate_conflict": "duplicate_conflict",
    "clock_shift": "timestamp_misaligned",
    "voltage_out_of_range": "voltage_out_of_range",
    "frequency_out_of_range": "frequency_out_of_range",
}
NOW = pd.Timestamp("2030-01-01T00:00:00Z")
COMPARISON_START = date(2026, 2, 2)  # a Monday; Good Friday and Easter Monday fall in the run
TRAINING_DAYS, SCORED_DAYS = 35, 7


def _label_keys(labels: Iterable[dict[str, object]], kind: str, interval: pd.Timedelta) -> set[str]:
    keys: set[str] = set()
    for label in labels:
        if label["kind"] != kind or not isinstance(label["key"], dict):
            continue
        key = label["key"]
        name, ts = list(key.values())[:2]
        if kind == "zero_run" and isinstance(label.get("detail"), dict):
            detail = label["detail"]
            # Both ends in UTC: a zero run can span a meter's DST change (different offsets).
            start = pd.Timestamp(str(ts)).tz_convert("UTC")
            last = pd.Timestamp(str(detail["last"])).tz_convert("UTC")  # type: ignore[index]
            keys.update(natural_key(name, t) for t in pd.date_range(start, last, freq=interval))
        else:
            keys.add(natural_key(name, ts))
    return keys


def _gaps(records: pd.DataFrame, interval: pd.Timedelta) -> set[str]:
    """Keys missing from each meter's interval grid between its first and last reading.

    A malformed record also leaves a gap (its key cannot be read), so precision counts those too.
    """
    missing: set[str] = set()
    on_grid = records[records["reading_start"].dt.floor(interval) == records["reading_start"]]
    for meter, times in on_grid.groupby("meter_id")["reading_start"]:
        grid = pd.date_range(times.min(), times.max(), freq=interval)
        missing.update(natural_key(meter, t) for t in grid.difference(pd.DatetimeIndex(times.unique())))
    return missing


def _event_keys(grid_records: pd.DataFrame, truth: set[str], area_name: str) -> set[str]:
    """Keys of the alert/emergency events the grid analysis finds, judged by the simulated network's
    area: an event that starts within a labelled drop (node, first sample) takes the label's key, any
    other its own (a false alarm)."""
    events = analyse(grid_records[INPUT_COLUMNS], GridConfig(default_area=area_name)).events
    minutes = event_shape(area(area_name))[1]
    labelled: dict[str, list[tuple[pd.Timestamp, str]]] = {}
    for key in truth:
        node, start = key.split("|", 1)
        labelled.setdefault(node, []).append((pd.Timestamp(start), key))
    found = set()
    for node, started in zip(
        events["grid_node_id"], pd.to_datetime(events["started_at"], utc=True), strict=True
    ):
        match = [k for s, k in labelled.get(node, []) if s <= started <= s + pd.Timedelta(minutes=minutes)]
        found.add(match[0] if match else natural_key(node, started))
    return found


def detection(scale: float) -> CaseResult:
    config = SimulationConfig(meters=max(20, int(500 * scale)), days=7, fault_rate=0.01, seed=11)
    sim = simulate(config)
    interval = pd.Timedelta(minutes=config.interval_minutes)
    rows: list[dict[str, object]] = []
    for source, messages in sim.messages.items():
        contract = contract_for(source)
        batch = decode(contract, messages, [1] * len(messages))
        outcome = rules.evaluate(source, batch.records, NOW)
        keys = pd.Series(
            [
                natural_key(a, b)
                for a, b in zip(batch.records[contract.key[0]], batch.records[contract.key[1]], strict=True)
            ],
            index=batch.records.index,
        )
        kinds = {str(label["kind"]) for label in sim.labels if label["source"] == source}
        for kind in sorted(kinds):
            if kind == "malformed":
                truth = {
                    str(lb["payload"]) for lb in sim.labels if lb["kind"] == kind and lb["source"] == source
                }
                predicted = {m.payload for m in batch.malformed}
                rows.append(
                    {
                        "source": source,
                        "fault": kind,
                        "signal": "decoder",
                        **precision_recall(truth, predicted),
                    }
                )
                continue
            truth = _label_keys((lb for lb in sim.labels if lb["source"] == source), kind, interval)
            if kind == FREQUENCY_EVENT:  # a system state over minutes: the grid state machine's job
                kept = batch.records[(outcome.decision != "reject").to_numpy()]
                rows.append({"source": source, "fault": kind, "signal": "grid state events",
                             **precision_recall(truth, _event_keys(kept, truth, config.grid_area))})  # fmt: skip
                continue
            if kind == "missing_interval":
                # Gaps among all decoded records: a rejected reading is a known reading, not a gap.
                rows.append({"source": source, "fault": kind, "signal": "gap detection",
                             **precision_recall(truth, _gaps(batch.records, interval))})  # fmt: skip
                continue
            reason = RULE_SIGNAL[kind]
            flagged = set(keys[outcome.masks[reason].to_numpy()])
            rows.append(
                {
                    "source": source,
                    "fault": kind,
                    "signal": f"rule {reason}",
                    **precision_recall(truth, flagged),
                }
            )
            if kind == "spike":
                kept = batch.records[(outcome.decision != "reject").to_numpy()]
                scored, _ = score_baseline(kept, fit_baseline(kept), "detection")
                anomalous = {
                    natural_key(m, t)
                    for m, t in scored.loc[scored["is_anomaly"], ["meter_id", "reading_start"]].itertuples(
                        index=False
                    )
                }
                rows.append(
                    {
                        "source": source,
                        "fault": kind,
                        "signal": "baseline model",
                        **precision_recall(truth, anomalous),
                    }
                )
    table = pd.DataFrame(rows)
    comparison, figures = model_comparison(scale)
    vee_rows, vee_figures = vee_quality(scale)
    return CaseResult(
        name="detection",
        title="6. Detection quality",
        figures={
            "meters x days": f"{config.meters} x {config.days}",
            "labelled faults": len(sim.labels),
            "macro F1 (best signal per fault)": round(float(table.groupby("fault")["f1"].max().mean()), 3),
            **figures,
            **vee_figures,
        },
        rows=rows + comparison + vee_rows,
    )


def _decoded(sim_messages: list[str], source: str) -> pd.DataFrame:
    contract = contract_for(source)
    return decode(contract, sim_messages, [1] * len(sim_messages)).records


def model_comparison(scale: float) -> tuple[list[dict[str, object]], dict[str, str]]:
    """The expected-consumption model vs the baseline on spikes (per reading) and consumption shifts
    (per meter-day), trained on TRAINING_DAYS clean of shifts and scoring the SCORED_DAYS after."""
    scored_from = COMPARISON_START + timedelta(days=TRAINING_DAYS)
    config = SimulationConfig(
        meters=max(20, int(200 * scale)),
        days=TRAINING_DAYS + SCORED_DAYS,
        start=COMPARISON_START,
        seed=13,
        fault_rate=0.005,
        shift_share=0.25,
        shift_from=scored_from,
    )
    sim = simulate(config)
    readings = _decoded(sim.messages["meter_readings"], "meter_readings")
    kept = readings[(rules.evaluate("meter_readings", readings, NOW).decision != "reject").to_numpy()]
    kept = kept.drop_duplicates(["meter_id", "reading_start"], keep="last")
    weather = _decoded(sim.messages["weather_observations"], "weather_observations")
    prepared = features.prepare(kept, sim.meters, weather)
    training = prepared[prepared["local_date"] < scored_from]
    scoring = prepared[prepared["local_date"] >= scored_from].reset_index(drop=True)
    last_training = (scored_from - timedelta(days=1)).isoformat()
    fitted = model.fit(training, COMPARISON_START.isoformat(), last_training, features.DEFAULT_COUNTRY)
    if fitted is None:
        raise RuntimeError("no training readings")
    baseline = fit_baseline(training)
    scores = score_run(scoring, fitted, baseline)
    readings_scored, days = scores.readings, scores.days

    keys = [(str(lb["kind"]), lb["key"]) for lb in sim.labels if isinstance(lb["key"], dict)]
    spikes = {
        natural_key(key["meter_id"], key["reading_start"])
        for kind, key in keys
        if kind == "spike" and pd.Timestamp(str(key["reading_start"])).date() >= scored_from
    }
    shifts = {f"{key['meter_id']}|{key['local_date']}" for kind, key in keys if kind == SHIFT_FAULT}

    def reading_keys(mask: pd.Series) -> set[str]:
        flagged = readings_scored.loc[mask.fillna(False).astype(bool), ["meter_id", "reading_start"]]
        return {natural_key(m, t) for m, t in flagged.itertuples(index=False)}

    def day_keys(mask: pd.Series) -> set[str]:
        return {
            f"{m}|{d.isoformat()}"
            for m, d in days.loc[mask, ["meter_id", "local_date"]].itertuples(index=False)
        }

    rows: list[dict[str, object]] = []
    for signal, reading_mask, day_mask in (
        ("expected-consumption model", readings_scored["is_anomaly"], days["is_anomaly"]),
        ("baseline model", readings_scored["baseline_is_anomaly"], days["baseline_anomalies"] > 0),
    ):
        rows.append({"source": "meter_readings (6 weeks)", "fault": "spike", "signal": signal,
                     **precision_recall(spikes, reading_keys(reading_mask))})  # fmt: skip
        rows.append({"source": "meter_readings (6 weeks)", "fault": SHIFT_FAULT, "signal": signal,
                     **precision_recall(shifts, day_keys(day_mask))})  # fmt: skip
    f1 = {(r["signal"], r["fault"]): r["f1"] for r in rows}
    figures = {
        "model comparison meters x days": f"{config.meters} x {TRAINING_DAYS} + {SCORED_DAYS}",
        "model holdout MAE kWh / R^2": f"{fitted.metrics['mae_kwh']} / {fitted.metrics['r2']}",
        "shift F1 model / baseline": f"{f1[('expected-consumption model', SHIFT_FAULT)]} / "
        f"{f1[('baseline model', SHIFT_FAULT)]}",
        "spike F1 model / baseline": f"{f1[('expected-consumption model', 'spike')]} / "
        f"{f1[('baseline model', 'spike')]}",
    }
    return rows, figures
