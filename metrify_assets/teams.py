"""The teams that own Metrify's assets and answer its alerts: asset `owners` (`team:<name>`), the
`team` of an alert (`ops.alerts` kinds here, Prometheus rules by their `team` label), and what
routing reads to reach the right people (docs/alerts.md#routing-by-team)."""

from __future__ import annotations

DATA_ENGINEERING = "data-engineering"  # ingestion (sources, Kafka, files), registry, lifecycle
DATA_QUALITY = "data-quality"  # record rules, GX suites, quarantine, the quality report
METER_DATA = "meter-data"  # VEE: billing-grade series
GRID_OPERATIONS = "grid-operations"  # grid frequency states and stability
DATA_SCIENCE = "data-science"  # anomaly model, load forecasts
DATA_PLATFORM = "data-platform"  # orchestration, warehouse, API, monitoring

TEAMS = (DATA_ENGINEERING, DATA_QUALITY, METER_DATA, GRID_OPERATIONS, DATA_SCIENCE, DATA_PLATFORM)

# The team that answers each kind of `ops.alerts` row (docs/alerts.md): the owners of what raised it.
# A run failure goes to the platform's on-call, who can tell a code fault from a data one.
TEAM_BY_ALERT_KIND = {
    "grid_state": GRID_OPERATIONS,
    "quality": DATA_QUALITY,
    "kafka_expired": DATA_ENGINEERING,
    "kafka_restarted": DATA_ENGINEERING,
    "lifecycle": DATA_ENGINEERING,
    "run_failure": DATA_PLATFORM,
}


def owner(team: str) -> str:
    """An asset's `owners` entry for `team`."""
    if team not in TEAMS:
        raise ValueError(f"unknown team {team!r} (one of {', '.join(TEAMS)})")
    return f"team:{team}"


def alert_team(kind: str) -> str:
    """The team that answers an alert of `kind`; the platform's for a kind not listed."""
    return TEAM_BY_ALERT_KIND.get(kind, DATA_PLATFORM)
