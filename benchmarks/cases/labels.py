"""Matching the simulator's ground-truth labels: one key format and one precision/recall, shared by
the detection cases."""

from __future__ import annotations

import pandas as pd


def natural_key(meter: object, ts: object) -> str:
    """`meter|UTC ISO timestamp`: the same interval whatever offset its timestamp was written with."""
    return f"{meter}|{pd.Timestamp(str(ts)).tz_convert('UTC').isoformat()}"


def precision_recall(truth: set[str], predicted: set[str]) -> dict[str, float | int]:
    tp = len(truth & predicted)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"labelled": len(truth), "flagged": len(predicted), "precision": round(precision, 3),
            "recall": round(recall, 3), "f1": round(f1, 3)}  # fmt: skip
