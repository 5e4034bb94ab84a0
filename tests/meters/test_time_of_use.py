"""Time-of-use periods."""

from metrify_assets.meters.time_of_use import tou_period, tou_sql


def test_periods() -> None:
    assert tou_period(17, is_weekend=False) == "peak"
    assert tou_period(17, is_weekend=True) == "off_peak"
    assert tou_period(8, is_weekend=False) == "shoulder"
    assert tou_period(2, is_weekend=False) == "off_peak"
    assert tou_period(23, is_weekend=False) == "off_peak"


def test_sql_lists_the_same_hours() -> None:
    sql = tou_sql("h", "d")
    assert "IN (16, 17, 18) THEN 'peak'" in sql
    assert "d IN (0, 6) THEN 'off_peak'" in sql
