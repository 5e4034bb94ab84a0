"""The commands' `--json` text: times as the API writes them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal

from metrify_assets.cli.console import to_json


def test_times_are_iso_8601_with_a_t_and_the_rest_text() -> None:
    value = {
        "at": datetime(2026, 12, 6, 2, 41, 24, tzinfo=UTC),
        "day": date(2026, 3, 28),
        "clock": time(9, 15),
        "amount": Decimal("1.50"),
        "n": 3,
    }
    assert json.loads(to_json(value)) == {
        "at": "2026-12-06T02:41:24+00:00",
        "day": "2026-03-28",
        "clock": "09:15:00",
        "amount": "1.50",
        "n": 3,
    }
    assert to_json([1], indent=2) == "[\n  1\n]"
