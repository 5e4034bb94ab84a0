"""UI metadata helpers: floats are shown as a person reads them."""

from __future__ import annotations

import math

import pytest

from metrify_assets.metadata import figure


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (99.75255977272056, 99.75),  # a quality score, as a new user saw it on validated_meter_readings
        (0.018164893617021276, 0.01816),  # a rate
        (2 / 3, 0.6667),
        (100.0, 100.0),
        (1234.567, 1234.6),  # never fewer digits than the whole part, nor a whole number it is not
        (123456.7, 123456.7),
        (123456.0, 123456.0),
        (94.996, 94.996),  # beside a threshold of 95: not shown as 95.0, a failed check that reads passed
        (99.9996, 99.9996),  # one bad record in 100,000 is not a score of 100
        (0.99996, 0.99996),  # a share short of all is not 1.0
        (89.99999999999999, 90.0),  # float noise of a sum is not a difference worth showing
        (12.3456, 12.35),  # seconds
        (-0.000123456, -0.0001235),
        (0, 0.0),
    ],
)
def test_figure_keeps_four_significant_digits(value: float, shown: float) -> None:
    assert figure(value).value == shown


def test_figure_leaves_a_non_finite_value_alone() -> None:
    """An R^2 of a single held-out reading is NaN: shown as such, not an error."""
    value = figure(float("nan")).value
    assert value is not None and math.isnan(value)
