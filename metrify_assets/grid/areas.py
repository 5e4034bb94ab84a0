"""Synchronous areas and their frequency quality defining parameters (ENTSO-E SOGL, Regulation (EU)
2017/1485, Annex III, table 1), from which the system states of `states.py` are decided.

`frequency.FrequencyBands` is a different thing: the bands a single *record* is judged by (flagged
beyond the statutory band, rejected as implausible beyond 5 Hz). The areas here say how the *system*
behaves over minutes. The nominal frequency is defined once, in `frequency.GRID_FREQUENCY`.
docs/grid.md relates the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrify_assets.grid.frequency import GRID_FREQUENCY


@dataclass(frozen=True)
class SynchronousArea:
    """One synchronous area's frequency quality defining parameters (deviations are +/- around nominal)."""

    name: str
    standard_range_hz: float  # standard frequency range
    max_instantaneous_deviation_hz: float
    max_steady_state_deviation_hz: float
    time_to_restore_s: float  # time to restore frequency
    alert_trigger_s: float  # alert state trigger time
    nominal_hz: float = GRID_FREQUENCY.nominal_hz

    @property
    def alert_deviation_hz(self) -> float:
        """SOGL Art. 18(2): 50 % of the maximum steady-state frequency deviation."""
        return 0.5 * self.max_steady_state_deviation_hz


def _area(name: str, standard_mhz: float, instantaneous_mhz: float, steady_mhz: float, restore_min: float,
          trigger_min: float) -> SynchronousArea:  # fmt: skip
    return SynchronousArea(
        name,
        standard_mhz / 1000,
        instantaneous_mhz / 1000,
        steady_mhz / 1000,
        restore_min * 60,
        trigger_min * 60,
    )


# SOGL Annex III, table 1 (mHz and minutes, as the regulation writes them).
AREAS: dict[str, SynchronousArea] = {
    a.name: a
    for a in (
        _area("continental_europe", 50, 800, 200, 15, 5),
        _area("great_britain", 200, 800, 500, 10, 10),
        _area("ireland", 200, 1000, 500, 20, 10),
        _area("nordic", 100, 1000, 500, 15, 5),
    )
}
DEFAULT_AREA = "continental_europe"


def area(name: str = DEFAULT_AREA) -> SynchronousArea:
    """The parameters of a synchronous area by name (a `ValueError` names the known ones)."""
    try:
        return AREAS[name]
    except KeyError:
        raise ValueError(f"unknown synchronous area {name!r}; known: {', '.join(sorted(AREAS))}") from None
