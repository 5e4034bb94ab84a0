"""The risk score: each component a ramp to its limit, combined over the components the hour has."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from metrify_assets.grid.areas import AREAS
from metrify_assets.grid.risk import RiskConfig, ramp, risk


def figures(**columns: list[float | None]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base: dict[str, list[object]] = {
        "area": ["continental_europe"] * n,
        "max_abs_steady_state_hz": [None] * n,
        "max_voltage_deviation_share": [None] * n,
        "min_load_margin_share": [None] * n,
    }
    return pd.DataFrame({**base, **columns})


def test_ramp_is_clipped_and_keeps_nan() -> None:
    out = ramp(pd.Series([0.0, 0.05, 0.125, 0.2, 0.5, np.nan]), 0.05, 0.2)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0, np.nan])


def test_components_reach_one_at_their_limits() -> None:
    f = figures(
        max_abs_steady_state_hz=[0.03, 0.125, 0.2, 0.3],
        max_voltage_deviation_share=[0.02, 0.075, 0.10, 0.2],
        min_load_margin_share=[0.5, 0.1, 0.0, -0.1],  # utilisation 50 %, 90 %, 100 %, 110 %
    )
    r = risk(f, AREAS, RiskConfig())
    np.testing.assert_allclose(r["risk_frequency"], [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(r["risk_voltage"], [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(r["risk_load"], [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(r["risk_score"], [0.0, 1 - 0.5**3, 1.0, 1.0])
    assert set(r["risk_components"]) == {"frequency,voltage,load"}


def test_score_combines_only_the_components_present() -> None:
    f = figures(
        max_abs_steady_state_hz=[0.125, 0.125, None, None],
        max_voltage_deviation_share=[None, 0.075, None, 0.075],
        min_load_margin_share=[None, None, None, 0.1],
    )
    r = risk(f, AREAS, RiskConfig())
    assert r["risk_components"].tolist() == ["frequency", "frequency,voltage", "", "voltage,load"]
    assert r["risk_score"][0] == pytest.approx(0.5)  # one component: the score is that component
    assert r["risk_score"][1] == pytest.approx(0.75)  # 1 - 0.5 x 0.5, never below the largest
    assert math.isnan(r["risk_score"][2])  # nothing known: no score, not 0
    assert r["risk_score"][3] == pytest.approx(0.75)
    assert r["risk_voltage"].isna().tolist() == [True, False, True, False]


def test_frequency_component_follows_the_area() -> None:
    f = figures(max_abs_steady_state_hz=[0.35, 0.35]).assign(area=["continental_europe", "great_britain"])
    r = risk(f, AREAS, RiskConfig())
    # CE: beyond its 200 mHz maximum; GB: (350 - 200) / (500 - 200) of the way to its maximum.
    np.testing.assert_allclose(r["risk_frequency"], [1.0, 0.5])
