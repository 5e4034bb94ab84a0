"""Teams: every asset's owner and every alert kind name one of the teams routing knows."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from metrify_assets.alerts.store import KINDS
from metrify_assets.definitions import defs as load_defs
from metrify_assets.teams import DATA_PLATFORM, GRID_OPERATIONS, TEAM_BY_ALERT_KIND, TEAMS, alert_team, owner


def test_every_alert_kind_has_its_team() -> None:
    assert set(TEAM_BY_ALERT_KIND) == set(KINDS)
    assert alert_team("grid_state") == GRID_OPERATIONS
    assert alert_team("a_kind_added_later") == DATA_PLATFORM


def test_an_owner_names_a_known_team() -> None:
    assert owner(GRID_OPERATIONS) == "team:grid-operations"
    with pytest.raises(ValueError, match="unknown team 'grid-ops'"):
        owner("grid-ops")


def test_every_asset_is_owned_by_known_teams(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    graph = load_defs().resolve_asset_graph()
    owners: set[str] = set()
    for key in graph.get_all_asset_keys():
        node: dg.BaseAssetNode = graph.get(key)
        if not node.is_external:
            owners |= set(node.owners)
    assert owners and owners <= {owner(team) for team in TEAMS}, owners


def test_team_names_are_written_once() -> None:
    """Owners go through `owner(...)`: a literal `team:...` elsewhere could name a team routing does not know."""
    package = Path(__file__).parents[1] / "metrify_assets"
    literal = [str(p) for p in package.rglob("*.py") if p.name != "teams.py" and '"team:' in p.read_text()]
    assert literal == []
