"""The content checksum is part of every manifest already written: its value must never drift."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from metrify_assets.lifecycle.tables import content_checksum

KEY = ("meter_id", "reading_start")
# Computed by the checksum as first released (text joined value by value in Python); manifests in
# existing lakes hold values made that way, and verification compares against them.
PINNED = "9ec6451a02a003fe789337db812880f1a399ea820baccf89ea53c4a3978634da"


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "meter_id": ["MTR-2", "MTR-1", "MTR-1", "ünï ✓"],
            "reading_start": pd.to_datetime(
                ["2026-03-29 01:00", "2026-03-29 00:45", "2026-03-29 01:00", "2026-03-29 00:00"]
            ).tz_localize("Europe/Amsterdam"),
            "energy_kwh": [0.1, float("nan"), 2.5, -1.0],
            "record_version": [3, 1, 2, 4],
            "status_flags": ["a,b", None, "", "x"],
            "nothing": [None, None, None, None],
            "when": [
                datetime(2026, 1, 1, tzinfo=UTC),
                None,
                datetime(2026, 1, 2, tzinfo=UTC),
                datetime(2026, 1, 3, tzinfo=UTC),
            ],
        }
    )


def test_the_checksum_of_known_rows_is_the_value_manifests_hold() -> None:
    frame = rows()
    assert isinstance(frame["meter_id"].dtype, pd.StringDtype)  # Arrow-backed text, as reads give
    assert content_checksum(frame, KEY) == PINNED


def test_text_held_as_python_objects_and_rows_in_any_order_give_the_same_checksum() -> None:
    objects = rows().astype({"meter_id": object, "status_flags": object})
    assert content_checksum(objects, KEY) == PINNED
    assert content_checksum(rows().iloc[::-1], KEY) == PINNED
    halves = pd.concat([rows().iloc[:2], rows().iloc[2:]], ignore_index=True)  # text in two chunks
    assert content_checksum(halves, KEY) == PINNED


def test_any_changed_value_changes_the_checksum() -> None:
    for column, value in [("status_flags", "a,c"), ("energy_kwh", 0.1000001), ("meter_id", "MTR-3")]:
        changed = rows()
        changed.loc[0, column] = value
        assert content_checksum(changed, KEY) != PINNED, column
    empty_for_null = rows()
    empty_for_null.loc[1, "status_flags"] = ""  # NULL and empty text differ through the null mask
    assert content_checksum(empty_for_null, KEY) != PINNED
