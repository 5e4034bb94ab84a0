"""dbt's per-invocation target directories do not pile up: the newest are kept, the rest removed."""

from __future__ import annotations

import os
from pathlib import Path

from metrify_assets.warehouse.invocations import (
    INVOCATION_DIR,
    KEEP_STATES,
    PARSE_STATE,
    invocation_dir,
    keep_parse_state,
    prune_invocations,
    state_path,
)


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


def test_a_command_starts_from_the_last_parse_state_of_the_same_vars(tmp_path: Path) -> None:
    """A state is copied into a new invocation's directory (named for `prune_invocations`) from the
    last command with the same vars, never another's, and kept replaced whole; an invocation that
    never parsed leaves the last one; the newest `KEEP_STATES` are kept."""
    days = {"min_date": "2026-03-28", "max_date": "2026-03-28"}
    first = invocation_dir(tmp_path, "metrify_dbt", "abcdef123456", days)
    assert INVOCATION_DIR.fullmatch(first.name) and not (first / PARSE_STATE).exists()
    (first / PARSE_STATE).write_bytes(b"state 1")
    keep_parse_state(first, tmp_path, days)
    second = invocation_dir(tmp_path, "metrify_dbt", "abcdef123456", dict(reversed(days.items())))
    assert (second / PARSE_STATE).read_bytes() == b"state 1"  # the same vars, in any order
    other = invocation_dir(tmp_path, "metrify_dbt", "abcdef123456", {**days, "max_date": "2026-03-29"})
    assert not (other / PARSE_STATE).exists()  # other days: dbt would parse in full anyway
    (second / PARSE_STATE).write_bytes(b"state 2")
    keep_parse_state(second, tmp_path, days)
    unparsed = tmp_path / "metrify_dbt-0000000-0000000"
    unparsed.mkdir()
    keep_parse_state(unparsed, tmp_path, days)  # dbt failed before it parsed: the last state stays
    assert state_path(tmp_path, days).read_bytes() == b"state 2"
    for day in range(KEEP_STATES + 2):
        made = invocation_dir(tmp_path, "dbt_source_freshness", "abcdef1", {"day": day})
        (made / PARSE_STATE).write_bytes(b"x")
        keep_parse_state(made, tmp_path, {"day": day})
    states = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert len(states) == KEEP_STATES and state_path(tmp_path, {"day": KEEP_STATES + 1}).name in states
