"""The pure planning of a VEE run: how a range's meters are grouped."""

from __future__ import annotations

from metrify_assets.meters.vee.process import meter_groups


def test_groups_hold_about_the_meter_days_asked_for_and_every_meter_once() -> None:
    meters = [f"M{i:03d}" for i in range(250)]
    groups = meter_groups(meters, days=30, meter_days_per_group=3_000)  # 100 meters of 30 days
    assert [len(g) for g in groups] == [100, 100, 50]
    assert [m for g in groups for m in g] == meters


def test_a_range_longer_than_a_group_still_moves_one_meter_at_a_time() -> None:
    assert meter_groups(["A", "B"], days=400, meter_days_per_group=365) == [["A"], ["B"]]
    assert meter_groups([], days=1, meter_days_per_group=10) == []
