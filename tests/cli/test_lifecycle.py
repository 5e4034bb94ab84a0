"""`metrify lifecycle run`'s day lists: ranges of consecutive days, the first few of them. Pure; the
command itself is tests/lifecycle/test_cli.py's."""

from __future__ import annotations

from datetime import date, timedelta

from metrify_assets.cli.lifecycle import days_text

D = date(2026, 1, 1)


def test_days_show_as_ranges_of_consecutive_days_the_first_few_and_a_count_of_the_rest() -> None:
    assert days_text([]) == "-"
    assert days_text([D]) == "2026-01-01"
    month = [D + timedelta(days=n) for n in range(31)]
    assert days_text([month[5], *month[:3]]) == "2026-01-01..2026-01-03, 2026-01-06"
    every_other = month[::2]  # 16 ranges of one day
    assert days_text(every_other, most=2) == (
        "2026-01-01, 2026-01-03, and 14 more days in 14 ranges (--json lists them)"
    )
    assert days_text([*month[:10], *month[20:]], most=1) == (
        "2026-01-01..2026-01-10, and 11 more days in 1 range (--json lists them)"
    )
