"""Case 6: how well rule flags and anomaly scores find the simulator's injected faults.

Ground truth is the simulator's labels file; each fault kind is matched against the signal meant to
catch it (a rule reason, the anomaly model, the decoder, or gap detection) by natural key.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from benchmarks.harness import CaseResult
from metrify_assets.contracts import contract_for
from metrify_assets.ingestion.decode import decode
from metrify_assets.meters.anomaly_model import fit_model, score_readings
from metrify_assets.quality import rules
from metrify_assets.simulation import SimulationConfig, simulate

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


def _key(meter: object, ts: object) -> str:
    return f"{meter}|{pd.Timestamp(str(ts)).tz_convert('UTC').isoformat()}"


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
            keys.update(_key(name, t) for t in pd.date_range(start, last, freq=interval))
        else:
            keys.add(_key(name, ts))
    return keys


def _scores(truth: set[str], predicted: set[str]) -> dict[str, float | int]:
    tp = len(truth & predicted)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"labelled": len(truth), "flagged": len(predicted), "precision": round(precision, 3),
            "recall": round(recall, 3), "f1": round(f1, 3)}  # fmt: skip


def _gaps(records: pd.DataFrame, interval: pd.Timedelta) -> set[str]:
    """Keys missing from each meter's interval grid between its first and last reading.

    A malformed record also leaves a gap (its key cannot be read), so precision counts those too.
    """
    missing: set[str] = set()
    on_grid = records[records["reading_start"].dt.floor(interval) == records["reading_start"]]
    for meter, times in on_grid.groupby("meter_id")["reading_start"]:
        grid = pd.date_range(times.min(), times.max(), freq=interval)
        missing.update(_key(meter, t) for t in grid.difference(pd.DatetimeIndex(times.unique())))
    return missing


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
                _key(a, b)
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
                    {"source": source, "fault": kind, "signal": "decoder", **_scores(truth, predicted)}
                )
                continue
            truth = _label_keys((lb for lb in sim.labels if lb["source"] == source), kind, interval)
            if kind == "missing_interval":
                # Gaps among all decoded records: a rejected reading is a known reading, not a gap.
                rows.append({"source": source, "fault": kind, "signal": "gap detection",
                             **_scores(truth, _gaps(batch.records, interval))})  # fmt: skip
                continue
            reason = RULE_SIGNAL[kind]
            flagged = set(keys[outcome.masks[reason].to_numpy()])
            rows.append(
                {"source": source, "fault": kind, "signal": f"rule {reason}", **_scores(truth, flagged)}
            )
            if kind == "spike":
                kept = batch.records[(outcome.decision != "reject").to_numpy()]
                scored, _ = score_readings(kept, fit_model(kept), "detection")
                anomalous = {
                    _key(m, t)
                    for m, t in scored.loc[scored["is_anomaly"], ["meter_id", "reading_start"]].itertuples(
                        index=False
                    )
                }
                rows.append(
                    {"source": source, "fault": kind, "signal": "anomaly model", **_scores(truth, anomalous)}
                )
    table = pd.DataFrame(rows)
    return CaseResult(
        name="detection",
        title="6. Detection quality",
        figures={
            "meters x days": f"{config.meters} x {config.days}",
            "labelled faults": len(sim.labels),
            "macro F1 (best signal per fault)": round(float(table.groupby("fault")["f1"].max().mean()), 3),
        },
        rows=rows,
    )
