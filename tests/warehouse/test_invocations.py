"""dbt's per-invocation target directories do not pile up: the newest are kept, the rest removed."""

from __future__ import annotations

import os
from pathlib import Path

from metrify_assets.warehouse.invocations import prune_invocations


def invocation(target: Path, name: str, age_s: int) -> Path:
    path = target / name
    path.mkdir()
    (path / "dbt.log").write_text("log")
    os.utime(path, (1_800_000_000 - age_s, 1_800_000_000 - age_s))
    return path


def test_keeps_the_newest_and_removes_the_rest(tmp_path: Path) -> None:
    runs = [invocation(tmp_path, f"metrify_dbt-{i:07x}-{i + 100:07x}", age_s=i) for i in range(7)]
    freshness = invocation(tmp_path, "abcdef0", age_s=100)  # `source freshness` runs without a context
    (tmp_path / "manifest.json").write_text("{}")  # `dbt parse`'s, beside the invocations
    ours = tmp_path / "docs"
    ours.mkdir()
    os.utime(ours, (0, 0))  # the oldest of all, but no invocation's name

    removed = prune_invocations(tmp_path, keep=3)

    assert removed == [runs[3], runs[4], runs[5], runs[6], freshness]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["docs", "manifest.json", *(r.name for r in runs[:3])]
    )
    assert prune_invocations(tmp_path, keep=3) == []


def test_a_missing_target_directory_is_nothing_to_prune(tmp_path: Path) -> None:
    assert prune_invocations(tmp_path / "target") == []
